"""``convert --in-place DIR``: convert every checkpoint of a directory, keeping the originals.

Each original is moved to ``DIR/.ckptguard-backup/<its path under DIR>`` just before the
converted file replaces it. A directory scan does not walk ``.ckptguard-backup`` (it is listed in
``skipped``), so ``ckptguard scan DIR`` in CI is green after a migration; roll a file back with
``mv DIR/.ckptguard-backup/x.pt DIR/x.pt``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from ckptguard._convert import convert_file
from ckptguard._convert._pipeline import ConvertResult
from ckptguard._convert._values import weights_only_globals
from ckptguard._errors import CheckpointError, UnsafeCheckpointError, UsageError
from ckptguard._formats import read_file
from ckptguard._policy import Policy
from ckptguard._scan import BACKUP_DIR, collect_targets

_CONVERTIBLE = ("pytorch-zip", "pytorch-legacy", "pickle")


@dataclass(frozen=True)
class Outcome:
    path: str
    status: str  # converted | unchanged | refused | error
    message: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "status": self.status, "message": self.message}


def needs_conversion(path: str) -> tuple[bool, str]:
    """(whether stock weights-only loading would refuse the file, its format)."""

    ex = read_file(path)
    if ex.format not in _CONVERTIBLE:
        return False, ex.format
    allowed = weights_only_globals()
    names = {f"{g.module}.{g.name}" for s in ex.pickles for g in s.analysis.globals}
    return ex.format != "pytorch-zip" or not names <= allowed, ex.format


def _convert_keeping(
    path: str, backup: str, *, force: bool, policy: Policy, fsync: bool
) -> ConvertResult:
    """Convert ``path`` over itself, the original moved to ``backup``; the backup directories
    this call created are removed again when the conversion fails (nothing left behind)."""

    created: list[str] = []
    parent = os.path.dirname(backup)
    while not os.path.isdir(parent):
        created.append(parent)
        parent = os.path.dirname(parent)
    for d in reversed(created):
        os.mkdir(d)
    try:
        return convert_file(path, path, force=force, policy=policy, backup=backup, fsync=fsync)
    except BaseException:
        for d in created:
            with contextlib.suppress(OSError):
                os.rmdir(d)  # only if still empty
        raise


def convert_in_place(
    directory: str,
    *,
    policy: Policy,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
    fsync: bool = False,
) -> list[Outcome]:
    if not os.path.isdir(directory):
        raise UsageError(f"{directory} is not a directory", hint="ckptguard convert SRC DST")
    targets, _ = collect_targets([directory])
    targets = [t for t in targets if not t.endswith(".bak")]  # backups of older versions
    outcomes: list[Outcome] = []
    for i, path in enumerate(targets, 1):
        try:
            needed, fmt = needs_conversion(path)
            if fmt == "torchscript":  # a program: replacing it by its weights is not in place
                outcomes.append(
                    Outcome(
                        path,
                        "unchanged",
                        "torchscript: a TorchScript program, left as it is; to get its weights "
                        f"without running it: ckptguard convert {path} weights.pt",
                    )
                )
            elif not needed:
                outcomes.append(
                    Outcome(path, "unchanged", f"{fmt}: already loads with weights-only torch.load")
                )
            else:
                backup = os.path.join(directory, BACKUP_DIR, os.path.relpath(path, directory))
                res = _convert_keeping(path, backup, force=force, policy=policy, fsync=fsync)
                plain = ", ".join(f"{t} -> {how}" for t, how in res.plain_types.items())
                outcomes.append(
                    Outcome(
                        path,
                        "converted",
                        f"{res.summary()}; original kept as {os.path.normpath(backup)}"
                        + (f"; now plain data: {plain}" if plain else ""),
                    )
                )
        except UnsafeCheckpointError as exc:
            outcomes.append(Outcome(path, "refused", exc.problem))
        except (CheckpointError, UsageError) as exc:
            outcomes.append(Outcome(path, "error", exc.diagnostics().replace("\n", " ")))
        if progress is not None:
            progress(i, len(targets))
    return outcomes
