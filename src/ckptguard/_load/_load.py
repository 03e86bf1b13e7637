"""``ckptguard.load``: scan the file, refuse what is not allowed, unpickle through the policy.

The order of work for one call:

1. resolve the policy (``allow=``, ``policy=``, ``$CKPTGUARD_POLICY``, ``pyproject.toml``);
2. read and scan the file (zip archives are memory-mapped, so only the central directory and
   the pickle are read; every other format is read into memory once and that buffer is both
   scanned and loaded);
3. refuse anything whose verdict is not ``safe`` with every global and finding explained;
4. call PyTorch's own ``torch.load`` with a per-call pickle module (:mod:`._engine`) that
   imports only the globals this scan approved and checks that the pickle it is given is the
   one that was scanned.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from ckptguard._errors import CheckpointError, CorruptCheckpointError, UsageError
from ckptguard._formats import Extracted, read_buffer, read_fd, read_file
from ckptguard._gc import gc_paused
from ckptguard._load._engine import build_engine
from ckptguard._load._refusal import refusal
from ckptguard._policy import Policy, resolve_policy
from ckptguard._results import FileRecord
from ckptguard._scan import report_for
from ckptguard._verdict import FileVerdict

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_TRUE = ("1", "y", "yes", "true")


class LoadWarning(UserWarning):
    """ckptguard.load ignored an argument that would have switched the safety off."""


@dataclass(frozen=True)
class _Scanned:
    """A scanned file and what to hand to torch.load for it."""

    name: str  # the path as given, or "<file object>"
    target: str | IO[bytes]  # a path (zip checkpoints) or an in-memory copy of the scanned bytes
    extracted: Extracted
    report: FileRecord


def _name_of(f: object) -> str:
    name = getattr(f, "name", None)
    return name if isinstance(name, str) else "<file object>"


def _head(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(4)


def _scan_source(f: Any, policy: Policy) -> _Scanned:
    """Scan ``f`` (a path or a binary file object) and keep what torch.load must read."""
    if isinstance(f, (str, os.PathLike)):
        name = os.fspath(f)
        if isinstance(name, bytes):  # pragma: no cover - os.PathLike[bytes]
            name = os.fsdecode(name)
        size: int | None = os.stat(name).st_size  # FileNotFoundError names the path
        if _head(name).startswith(_ZIP_MAGIC):
            extracted = _read(lambda: read_file(name), name)
            target: str | IO[bytes] = name
        else:  # legacy/pickle/safetensors: scan and load the very same bytes
            with open(name, "rb") as fh:
                data = fh.read()
            extracted = _read(lambda: read_buffer(data, name=name), name)
            target = io.BytesIO(data)
    elif (fd := _regular_fd(f)) is not None:  # an open file: map it, don't copy it
        name = _name_of(f)
        size = os.fstat(fd).st_size
        head = os.pread(fd, 4, 0)
        if head.startswith(_ZIP_MAGIC):
            extracted = _read(lambda: read_fd(fd), name)
            f.seek(0)
            target = f
        else:
            data = _read_fd_bytes(fd, size)
            extracted = _read(lambda: read_buffer(data, name=name), name)
            target = io.BytesIO(data)
    else:
        read = getattr(f, "read", None)
        if read is None:
            raise UsageError(
                f"ckptguard.load takes a path or a binary file object, not {type(f).__name__}"
            )
        name = _name_of(f)
        data = read()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise UsageError(f"{name}: the file object must be opened in binary mode ('rb')")
        data = bytes(data)
        size = len(data)
        extracted = _read(lambda: read_buffer(data, name=name), name)
        target = io.BytesIO(data)
    report = report_for(name, extracted, policy, size)
    return _Scanned(name, target, extracted, report)


def _regular_fd(f: Any) -> int | None:
    """The descriptor of a binary file object on a regular file positioned at its start."""
    try:
        if f.tell() != 0 or not f.seekable():
            return None
        fd = f.fileno()
        if not isinstance(fd, int) or not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return fd


def _read_fd_bytes(fd: int, size: int) -> bytes:
    chunks, pos = [], 0
    while pos < size:
        chunk = os.pread(fd, size - pos, pos)
        if not chunk:
            break
        chunks.append(chunk)
        pos += len(chunk)
    return b"".join(chunks)


def _read(reader: Any, name: str) -> Extracted:
    try:
        result: Extracted = reader()
    except CheckpointError as exc:
        raise exc.with_path(name) from None
    return result


def _approved(extracted: Extracted, name: str) -> dict[tuple[str, str], tuple[str, str]]:
    """Map each global as written in the pickles to the name the scan resolved it to."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for stream in extracted.pickles:
        for g in stream.analysis.globals:
            raw = g.raw or (g.module, g.name)
            target = (g.module, g.name)
            if out.setdefault(raw, target) != target:
                raise CorruptCheckpointError(
                    f"the pickle names {raw[0]}.{raw[1]} under two pickle protocols that "
                    "resolve it differently: refused",
                    path=name,
                    hint=f"ckptguard scan {name}",
                )
    return out


def _data_pkl_digest(extracted: Extracted) -> bytes:
    archive = extracted.details.get("archive", "")
    wanted = f"{archive}/data.pkl"
    for stream in extracted.pickles:
        if stream.name == wanted and stream.digest:
            return stream.digest
    raise CorruptCheckpointError("the archive's data.pkl was not scanned")  # pragma: no cover


def _torch_load() -> Any:
    """PyTorch's own ``torch.serialization.load``, even while ckptguard's patch is installed."""
    from ckptguard._load._patch import original_torch_load  # noqa: PLC0415

    return original_torch_load()


def drop_unsafe_kwargs(kwargs: dict[str, Any], *, stacklevel: int) -> None:
    """Remove ``weights_only``/``pickle_module`` from torch.load kwargs, warning when ignored.

    ``stacklevel`` counts from the caller of this function, as for :func:`warnings.warn`.
    """
    weights_only = kwargs.pop("weights_only", None)
    if weights_only is False:
        warnings.warn(
            "ckptguard.load ignores weights_only=False: it never unpickles outside its policy "
            "(allow a trusted class with allow=[...] instead)",
            LoadWarning,
            stacklevel=stacklevel + 1,
        )
    if kwargs.pop("pickle_module", None) is not None:
        warnings.warn(
            "ckptguard.load ignores pickle_module=: it unpickles with its own policy-enforcing "
            "unpickler",
            LoadWarning,
            stacklevel=stacklevel + 1,
        )
    if os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0").lower() in _TRUE:
        raise UsageError(
            "TORCH_FORCE_WEIGHTS_ONLY_LOAD is set, and with it PyTorch refuses every unpickler "
            "but its own, including ckptguard's policy-enforcing one",
            hint="unset TORCH_FORCE_WEIGHTS_ONLY_LOAD: ckptguard.load is already weights-only "
            "safe by its policy",
        )


def load(
    f: Any,
    map_location: Any = None,
    *,
    allow: Iterable[str] = (),
    policy: str | os.PathLike[str] | Policy | None = None,
    mmap: bool | None = None,
    restore_types: bool = False,
    **kwargs: Any,
) -> Any:
    """A drop-in for ``torch.load`` that loads only what the policy allows.

    ``f`` is a path or a binary file object, ``map_location`` and ``mmap`` mean what they mean
    for ``torch.load``; ``allow`` adds trusted globals (``"module.Name"`` or ``"package.*"``) for
    this call only; ``policy`` is a policy file or :class:`~ckptguard._policy.Policy` (default:
    ``$CKPTGUARD_POLICY``, else ``[tool.ckptguard]`` in the nearest ``pyproject.toml``, else the
    shipped profiles). Other keyword arguments go to the unpickler as in ``torch.load``;
    ``weights_only=False`` and ``pickle_module=`` are ignored with a :class:`LoadWarning`.
    ``restore_types=True`` rebuilds, in a file written by ``ckptguard convert``, the original
    objects recorded in its ``__ckptguard__`` entry whose types the policy allows.

    Raises :class:`~ckptguard.UnsafeCheckpointError` when the file needs globals that are not
    allowed, :class:`~ckptguard.CorruptCheckpointError` when it is unreadable or inconsistent,
    and ``FileNotFoundError`` when it does not exist.
    """
    drop_unsafe_kwargs(kwargs, stacklevel=2)
    resolved = resolve_policy(allow=allow, policy=policy, targets=[f])
    # Scanning and unpickling an optimizer state build hundreds of thousands of objects that
    # all live on: the cyclic collector would walk them again and again (a quarter of the load).
    with gc_paused():
        obj = _load(f, map_location, resolved, mmap, kwargs)
    if restore_types:
        from ckptguard._convert import restore_types as restore  # noqa: PLC0415

        return restore(obj, policy=resolved)
    return obj


def _load(
    f: Any, map_location: Any, resolved: Policy, mmap: bool | None, kwargs: dict[str, Any]
) -> Any:
    scanned = _scan_source(f, resolved)
    if scanned.report.verdict is not FileVerdict.SAFE:
        raise refusal(scanned.report)
    fmt = scanned.extracted.format
    if fmt == "safetensors":
        return _load_safetensors(scanned, map_location)
    if fmt not in ("pytorch-zip", "pytorch-legacy"):
        raise CheckpointError(
            f"this is a {fmt} file, not a PyTorch checkpoint: torch.load cannot read it either",
            path=scanned.name,
            hint=_OTHER_FORMAT_HINT.get(fmt, f"ckptguard scan {scanned.name}"),
            format=fmt,
        )
    digest = _data_pkl_digest(scanned.extracted) if fmt == "pytorch-zip" else None
    engine = build_engine(
        _approved(scanned.extracted, scanned.name), path=scanned.name, pickle_digest=digest
    )
    name, target = scanned.name, scanned.target
    opened = False
    if isinstance(target, str) and target.endswith(".safetensors"):
        # torch.load would take a file *named* .safetensors for a safetensors file
        target = open(target, "rb")  # noqa: SIM115 - closed below
        opened = True
    # The scan's records (one per persistent id on big optimizer states) are no longer needed.
    del scanned
    try:
        return _torch_load()(
            target, map_location, pickle_module=engine, weights_only=False, mmap=mmap, **kwargs
        )
    except CheckpointError:
        raise
    except Exception as exc:  # damaged tensor metadata, a storage torch cannot read, ...
        raise CorruptCheckpointError(
            f"PyTorch could not load it: {type(exc).__name__}: {exc}", path=name,
            hint=f"ckptguard scan {name}", format=fmt,
        ) from exc  # fmt: skip
    finally:
        if opened and not isinstance(target, str):
            target.close()


_OTHER_FORMAT_HINT = {
    "pickle": "a plain pickle is not a checkpoint; `ckptguard scan` shows what it would import",
    "numpy": "load it with numpy.load(path, allow_pickle=False)",
    "numpy-npz": "load it with numpy.load(path, allow_pickle=False)",
}


def _load_safetensors(scanned: _Scanned, map_location: Any) -> Any:
    from ckptguard._convert._safetensors import read_checkpoint_bytes  # noqa: PLC0415

    # Only zip archives are loaded from the file itself; safetensors come from the scanned bytes.
    assert isinstance(scanned.target, io.BytesIO)  # an invariant of _scan_source
    return read_checkpoint_bytes(scanned.target.getvalue(), map_location, name=scanned.name)
