"""numpy .npy files: a validated header, then raw data or (object arrays) a pickle.

numpy reads an array's data with ``pickle.load`` whenever its dtype holds Python objects, and
its header parser (``descr_to_dtype``) accepts many spellings of such dtypes: ``|O``, ``<O8``,
``O4``, ``object``, a structured dtype with one object field, a subarray of objects, a comma
string ``"i4,O"``... So ckptguard classifies every ``descr`` exactly: a plain dtype it fully
understands (whose data is raw bytes of a size it computes), an object dtype (whose data is a
pickle it scans), or anything else, which is an error (``npy-dtype``): never assumed raw data.
"""

from __future__ import annotations

import re

from ckptguard._pickle._analysis import PickleLimits
from ckptguard._scan_rules import NPY_DTYPE, NPY_HEADER, NPY_SIZE

from ._common import NPY_MAGIC as MAGIC
from ._common import analyse_all, corrupt, error_finding
from ._extracted import Extracted

_MAX_HEADER = 64 * 1024
_MAX_DIMS = 64
# Plain dtypes, exactly as numpy's ``dtype.str`` spells them (with an optional byte order):
# bool, integers, floats, complex numbers, bytes, str and void of a given size, datetimes.
_PLAIN = re.compile(
    r"[<>|=]?(?:(b1|[iu][1248]|f(?:2|4|8|16)|c(?:8|16|32))|([SUV])([1-9][0-9]{0,8})"
    r"|([Mm]8)(?:\[(?:[1-9][0-9]{0,4})?(?:Y|M|W|D|h|m|s|ms|us|ns|ps|fs|as)\])?)"
)
_PADDING = re.compile(r"[<>|=]?V[1-9][0-9]{0,8}")
# Object dtypes: numpy unpickles the data of an array of these.
_OBJECT = re.compile(r"[<>|=]?O[48]?|object_?")

TYPE_CHECKING = False  # typing only for type checkers (start-up time)
if TYPE_CHECKING:
    from typing import Any, Protocol

    class _Sliceable(Protocol):
        def __len__(self) -> int: ...
        def __getitem__(self, s: slice, /) -> Any: ...


class DtypeError(ValueError):
    """A ``descr`` ckptguard does not fully understand."""


def classify_descr(descr: object) -> tuple[int, bool]:
    """(item size in bytes, holds Python objects) of a .npy ``descr``; raises DtypeError."""
    if isinstance(descr, str):
        m = _PLAIN.fullmatch(descr)
        if m is not None:
            fixed, kind, count, dt = m.groups()
            if fixed is not None:
                return (1 if fixed == "b1" else int(fixed[1:])), False
            if dt is not None:
                return 8, False
            return int(count) * (4 if kind == "U" else 1), False
        if _OBJECT.fullmatch(descr):
            return 8, True
        raise DtypeError(f"dtype {descr!r}")
    if type(descr) is tuple:  # a subarray: (base, shape)
        if len(descr) != 2 or type(descr[0]) is tuple:  # numpy folds nested subarrays oddly
            raise DtypeError(f"subarray dtype {descr!r}")
        size, obj = classify_descr(descr[0])
        return size * _count(_shape(descr[1])), obj
    if type(descr) is list:  # a structured dtype: [(name, descr[, shape]), ...]
        total, has_object = 0, False
        names: set[str] = set()
        for field in descr:
            if type(field) is not tuple or len(field) not in (2, 3) or not _field_name(field[0]):
                raise DtypeError(f"structured dtype field {field!r}")
            labels = field[0] if type(field[0]) is tuple else (field[0],)
            if labels == ("",):  # padding, as numpy writes it: ('', '|V4')
                if len(field) != 2 or not _PADDING.fullmatch(str(field[1])):
                    raise DtypeError(f"structured dtype field {field!r}")
            elif "" in labels or names.intersection(labels) or len(set(labels)) != len(labels):
                raise DtypeError(f"structured dtype with a repeated or empty name {field[0]!r}")
            names.update(labels)
            size, obj = classify_descr(field[1] if len(field) == 2 else (field[1], field[2]))
            total += size
            has_object = has_object or obj
        return total, has_object
    raise DtypeError(f"dtype descriptor of type {type(descr).__name__}")


def _field_name(name: object) -> bool:
    if type(name) is tuple:  # (title, name)
        return len(name) == 2 and all(type(n) is str for n in name)
    return type(name) is str


def _shape(shape: object) -> tuple[int, ...]:
    dims = (shape,) if type(shape) is int else shape
    if type(dims) is not tuple or len(dims) > _MAX_DIMS or any(type(d) is not int for d in dims):
        raise DtypeError(f"subarray shape {shape!r}")
    if any(d <= 0 for d in dims):  # numpy refuses or folds empty subarrays inconsistently
        raise DtypeError(f"subarray shape {shape!r}")
    return dims


def _count(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


class NpyHeader:
    """A validated .npy header: ``descr`` classified, ``shape`` of non-negative ints."""

    __slots__ = ("data_offset", "descr", "fortran_order", "has_object", "itemsize", "shape")

    def __init__(  # noqa: PLR0917 - mirrors the fields
        self,
        descr: object,
        fortran_order: bool,
        shape: tuple[int, ...],
        data_offset: int,
        itemsize: int,
        has_object: bool,
    ) -> None:
        self.descr = descr
        self.fortran_order = fortran_order
        self.shape = shape
        self.data_offset = data_offset
        self.itemsize = itemsize
        self.has_object = has_object

    @property
    def nbytes(self) -> int:
        """The data bytes of a plain array (its item size times its element count)."""
        return self.itemsize * _count(self.shape)


def read_npy_header(buf: _Sliceable, name: str) -> NpyHeader:
    """The header of a .npy file (or of its first bytes); raises CorruptCheckpointError
    (``npy-header``, ``npy-dtype``) for anything numpy could read differently."""
    size = len(buf)
    head = bytes(buf[0:12])
    if head[:6] != MAGIC or len(head) < 10:
        raise corrupt(f"{name}: not a numpy .npy file (bad magic)", fmt="numpy", rule=NPY_HEADER)
    major, minor = head[6], head[7]
    if major == 1 and minor == 0:
        hlen, off = int.from_bytes(head[8:10], "little"), 10
    elif major in (2, 3) and minor == 0 and len(head) >= 12:
        hlen, off = int.from_bytes(head[8:12], "little"), 12
    else:
        raise corrupt(
            f"{name}: unsupported .npy format version {major}.{minor}", fmt="numpy",
            rule=NPY_HEADER,
        )  # fmt: skip
    if hlen > _MAX_HEADER or off + hlen > size:
        raise corrupt(
            f"{name}: .npy header length {hlen} is invalid or truncated", fmt="numpy",
            rule=NPY_HEADER,
        )  # fmt: skip
    header = _parse_header(bytes(buf[off : off + hlen]), major, name)
    shape = header["shape"]
    if type(shape) is not tuple or not all(type(d) is int and d >= 0 for d in shape):
        raise corrupt(f"{name}: invalid .npy shape {shape!r}", fmt="numpy", rule=NPY_HEADER)
    fortran = header["fortran_order"]
    if type(fortran) is not bool:
        raise corrupt(f"{name}: invalid .npy fortran_order", fmt="numpy", rule=NPY_HEADER)
    try:
        item, has_object = classify_descr(header["descr"])
    except (DtypeError, RecursionError) as exc:
        raise corrupt(
            f"{name}: the .npy {'dtype' if isinstance(exc, RecursionError) else exc} is not a "
            "plain numeric, bool or string dtype ckptguard fully understands: numpy may read "
            "the data as Python objects (with pickle), so it is refused unread",
            hint="re-save the array with a plain dtype (numpy.save of a numeric array)",
            fmt="numpy",
            rule=NPY_DTYPE,
        ) from None
    return NpyHeader(header["descr"], fortran, shape, off + hlen, item, has_object)


def read_npy(buf: _Sliceable, name: str, limits: PickleLimits) -> Extracted:
    size = len(buf)
    h = read_npy_header(buf, name)
    data_off, has_object, shape, item = h.data_offset, h.has_object, h.shape, h.itemsize
    if has_object:
        body = bytes(buf[data_off:size])
        if not body:
            raise corrupt(
                f"{name}: object array without its pickle (truncated)", fmt="numpy",
                rule=NPY_SIZE,
            )  # fmt: skip
        streams, findings = analyse_all(body, f"{name} (object array)", limits)
        return Extracted("numpy", pickles=tuple(streams), findings=tuple(findings))
    need = item * _count(shape)
    if size - data_off != need:
        finding = error_finding(
            NPY_SIZE,
            f"{name}: the array needs {need} data bytes but the file has {size - data_off}: "
            "truncated or altered",
        )
        return Extracted("numpy", findings=(finding,))
    return Extracted("numpy")


def _parse_header(raw: bytes, major: int, name: str) -> dict[str, object]:
    text = ""
    try:
        text = raw.decode("utf-8" if major == 3 else "latin-1")
        import ast  # noqa: PLC0415 - only .npy files need it (start-up time)

        try:
            header = ast.literal_eval(text)
        except SyntaxError:
            # numpy reads a version 1.0/2.0 header that is not a literal once more with the
            # Python 2 long suffix removed ("(2L, 3L)"); ckptguard accepts the same files when
            # every removed suffix follows a decimal integer directly (fail closed otherwise)
            if major > 2:
                raise
            header = ast.literal_eval(_without_long_suffix(text))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        raise corrupt(
            f"{name}: the .npy header is not a Python literal", fmt="numpy", rule=NPY_HEADER
        ) from None
    if type(header) is not dict or set(header) != {"descr", "fortran_order", "shape"}:
        raise corrupt(
            f"{name}: the .npy header must hold exactly descr/fortran_order/shape", fmt="numpy",
            rule=NPY_HEADER,
        )  # fmt: skip
    return header


def _without_long_suffix(text: str) -> str:
    """A Python 2 header with the ``L`` after each integer removed, as numpy's header parser
    removes it (tokenize: a NAME ``L`` right after a NUMBER is dropped, then untokenize).
    Raises ValueError unless each dropped ``L`` directly follows a run of decimal digits (so
    that another tokenizer, numpy's on another Python, cannot read it differently)."""
    import io  # noqa: PLC0415
    import tokenize  # noqa: PLC0415

    kept: list[tokenize.TokenInfo] = []
    previous: tokenize.TokenInfo | None = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if (
                previous is not None
                and previous.type == tokenize.NUMBER
                and tok.type == tokenize.NAME
                and tok.string == "L"
            ):
                if not (previous.string.isdigit() and previous.string.isascii()) or (
                    previous.end != tok.start
                ):
                    raise ValueError("an L suffix numpy and ckptguard could read differently")
                previous = tok
                continue
            kept.append(tok)
            previous = tok
        return str(tokenize.untokenize(kept))
    except (tokenize.TokenError, IndentationError) as exc:
        raise ValueError(str(exc)) from None
