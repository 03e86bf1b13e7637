"""numpy .npy files: a validated header, then raw data or (object arrays) a pickle."""

from __future__ import annotations

import re

from ckptguard._pickle._types import PickleLimits

from ._common import NPY_MAGIC as MAGIC
from ._common import analyse_all, corrupt, error_finding
from ._types import Extracted

_MAX_HEADER = 64 * 1024
_SIMPLE = re.compile(r"^[<>|=]?([?bBhHiIlLqQefdgFDGuifcbSUVaMm])(\d*)(\[[a-zA-Z0-9]+\])?$")


TYPE_CHECKING = False  # typing only for type checkers (start-up time)
if TYPE_CHECKING:
    from typing import Any, Protocol

    class _Sliceable(Protocol):
        def __len__(self) -> int: ...
        def __getitem__(self, s: slice, /) -> Any: ...


def _itemsize(descr: str) -> int | None:
    m = _SIMPLE.match(descr)
    if not m:
        return None
    kind, digits = m.group(1), m.group(2)
    if kind == "?":
        return 1
    if kind in "Mm":
        return 8
    if not digits:
        return None
    n = int(digits)
    return 4 * n if kind == "U" else n


def _has_object(descr: object) -> bool:
    if isinstance(descr, str):
        return descr.lstrip("<>|=") == "O"
    if isinstance(descr, (list, tuple)):
        return any(_has_object(x) for x in descr)
    return False


def read_npy(buf: _Sliceable, name: str, limits: PickleLimits) -> Extracted:
    size = len(buf)
    head = bytes(buf[0:12])
    if head[:6] != MAGIC or len(head) < 10:
        raise corrupt(f"{name}: not a numpy .npy file (bad magic)", fmt="numpy")
    major = head[6]
    if major == 1:
        hlen, off = int.from_bytes(head[8:10], "little"), 10
    elif major in (2, 3) and len(head) >= 12:
        hlen, off = int.from_bytes(head[8:12], "little"), 12
    else:
        raise corrupt(f"{name}: unsupported .npy format version {major}", fmt="numpy")
    if hlen > _MAX_HEADER or off + hlen > size:
        raise corrupt(f"{name}: .npy header length {hlen} is invalid or truncated", fmt="numpy")
    raw = bytes(buf[off : off + hlen])
    try:
        text = raw.decode("utf-8" if major == 3 else "latin-1")
        import ast  # noqa: PLC0415 - only .npy files need it (start-up time)

        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        raise corrupt(f"{name}: the .npy header is not a Python literal", fmt="numpy") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise corrupt(
            f"{name}: the .npy header must hold exactly descr/fortran_order/shape", fmt="numpy"
        )
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise corrupt(f"{name}: invalid .npy shape {shape!r}", fmt="numpy")
    if not isinstance(header["fortran_order"], bool):
        raise corrupt(f"{name}: invalid .npy fortran_order", fmt="numpy")
    data_off = off + hlen
    descr = header["descr"]
    if _has_object(descr):
        body = bytes(buf[data_off:size])
        if not body:
            raise corrupt(f"{name}: object array without its pickle (truncated)", fmt="numpy")
        streams, findings = analyse_all(body, f"{name} (object array)", limits)
        return Extracted("numpy", pickles=tuple(streams), findings=tuple(findings))
    count = 1
    for d in shape:
        count *= d
    item = _itemsize(descr) if isinstance(descr, str) else None
    findings = []
    if item is not None and size - data_off != count * item:
        findings.append(
            error_finding(
                "npy-size",
                f"{name}: the array needs {count * item} data bytes but the file has "
                f"{size - data_off}: truncated or altered",
            )
        )
    return Extracted("numpy", findings=tuple(findings))
