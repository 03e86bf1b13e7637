"""``ckptguard.dcp.load``: ``torch.distributed.checkpoint.load`` through ckptguard, and
``SafeFileSystemReader``, the storage reader it reads with (the reading itself: :mod:`._reader`)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from torch.distributed.checkpoint.filesystem import FileSystemReader

from ckptguard._errors import CheckpointError, UsageError
from ckptguard._gc import gc_paused
from ckptguard._load import patched
from ckptguard._policy import Policy, resolve_policy
from ckptguard._results import FileRecord

from ._reader import check_storage_data, read_data, read_metadata, scanned_for


class SafeFileSystemReader(FileSystemReader):
    """A ``FileSystemReader`` for ``dcp.load(..., storage_reader=...)`` that loads only what
    ckptguard's scan approved under ``allow``/``policy`` (see the module doc)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        allow: Iterable[str] = (),
        policy: str | os.PathLike[str] | Policy | None = None,
    ) -> None:
        super().__init__(path)
        self.policy = resolve_policy(allow=allow, policy=policy, targets=[os.fspath(path)])

    def check(self) -> FileRecord:
        """Scan the checkpoint now; raise unless it is safe (``dcp.load`` would swallow it)."""
        return scanned_for(self, self.policy).record

    def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
        return read_metadata(self, self.policy, kwargs)

    def set_up_storage_reader(
        self, metadata: Any, is_coordinator: bool, *args: Any, **kwargs: Any
    ) -> None:
        check_storage_data(self, self.policy, metadata)
        super().set_up_storage_reader(metadata, is_coordinator, *args, **kwargs)

    def read_data(self, plan: Any, planner: Any) -> Any:
        return read_data(self, self.policy, plan, planner, patched)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike[str]) -> bool:
        return FileSystemReader.validate_checkpoint_id(checkpoint_id)


def load(
    state_dict: dict[str, Any],
    *,
    checkpoint_id: str | os.PathLike[str] | None = None,
    storage_reader: SafeFileSystemReader | None = None,
    planner: Any = None,
    process_group: Any = None,
    no_dist: bool = False,
    allow: Iterable[str] = (),
    policy: str | os.PathLike[str] | Policy | None = None,
) -> None:
    """Load a DCP checkpoint into ``state_dict`` in place, as ``dcp.load`` does (planners,
    process groups, single process and multi-rank), with ``.metadata`` and every item going
    through ckptguard's restricted loading. The checkpoint is scanned first and refused
    (:class:`~ckptguard.UnsafeCheckpointError` / :class:`~ckptguard.CorruptCheckpointError`)
    before anything is unpickled."""
    from torch.distributed.checkpoint.state_dict_loader import load as dcp_load  # noqa: PLC0415

    if storage_reader is None:
        if checkpoint_id is None:
            raise UsageError("ckptguard.dcp.load needs checkpoint_id= (the DCP directory)")
        storage_reader = SafeFileSystemReader(checkpoint_id, allow=allow, policy=policy)
    elif not isinstance(storage_reader, SafeFileSystemReader):
        raise UsageError(
            "ckptguard.dcp.load reads only through ckptguard.dcp.SafeFileSystemReader",
            hint="pass checkpoint_id=DIR (and allow=/policy=) instead of storage_reader",
        )
    storage_reader.check()  # refuse here: dcp.load turns a reader's error into a warning
    from torch.distributed.checkpoint.api import CheckpointException  # noqa: PLC0415

    with gc_paused():
        try:
            dcp_load(
                state_dict,
                storage_reader=storage_reader,
                planner=planner,
                process_group=process_group,
                no_dist=no_dist,
            )
        except CheckpointException as exc:
            # a refusal while reading (e.g. a tensor chunk's pickle, which the scan does not
            # read): raise ckptguard's own error, not torch's BaseException wrapper
            for failure in getattr(exc, "failures", {}).values():
                err = failure[0] if isinstance(failure, tuple) else failure
                if isinstance(err, CheckpointError):
                    raise err from None
            raise
