"""Layout invariants of the tensors a load yields: views inside storages, sparse indices in range.

PyTorch rebuilds a tensor from ``(storage, offset, size, stride)`` as written in the file and
builds sparse tensors *without* checking their indices (``check_invariants=False``); it only
validates them when ``torch.sparse.check_sparse_tensor_invariants`` is switched on. A tensor
whose view runs past its storage, or a sparse tensor whose indices lie outside its size, reads
and writes memory it does not own when used (``coalesce().to_dense()`` segfaults).

:class:`LayoutGuard` hands the unpickler checked stand-ins for PyTorch's rebuild helpers (the
scan approved the helpers; these are what ``find_class`` returns for them). Each stand-in
checks the view against the storage it is given, then calls PyTorch's own helper, so a tensor
that passes is built exactly as ``torch.load`` builds it. Sparse tensors are collected and
validated with PyTorch's own validators once their storages hold data (for legacy files that
is after unpickling), always, whatever the process-wide setting. A tensor that fails is never
returned: the load raises :class:`~ckptguard.CorruptCheckpointError` naming the file and where
the tensor is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ckptguard._errors import CorruptCheckpointError
from ckptguard._grammar import a_or_an
from ckptguard._load import _torch as _t

_MAX = 1 << 63  # sizes, strides and offsets are int64 in PyTorch


class LayoutGuard:
    """Per-load state: storage names for messages, sparse tensors awaiting validation."""

    def __init__(self, path: str, *, deferred: bool = False) -> None:
        torch = _t.torch()
        self.deferred = deferred  # storages are filled after unpickling (legacy files)
        self.nested: list[tuple[Any, ...]] = []
        self._typed_storage = torch.storage.TypedStorage
        self._dtype = torch.dtype
        self._utils = _t.utils()
        self.path = path
        self.storage_names: dict[int, tuple[str, object]] = {}  # id(TypedStorage) -> label
        self.sparse: list[Any] = []
        self._keep: list[Any] = []  # storages named above stay alive (ids are not reused)

    def name_storage(self, storage: Any, kind: str, key: object) -> None:
        """Remember what ``storage`` is, for messages ("storage record archive/data/3")."""
        self.storage_names[id(storage)] = (kind, key)
        self._keep.append(storage)

    def _where(self, storage: Any) -> str | None:
        label = self.storage_names.get(id(storage))
        if label is None:
            return None
        kind, key = label
        return f"{kind} {key}" if kind == "storage record" else f"{kind} {key!r}"

    def fail(self, problem: str, where: str | None = None) -> CorruptCheckpointError:
        place = f" ({where})" if where else ""
        return CorruptCheckpointError(
            f"{problem}{place}: using such a tensor reads or writes memory it does not own, so "
            "ckptguard refuses the file (damaged or crafted)",
            path=self.path,
            hint=f"ckptguard scan {self.path}",
        )

    # -- the stand-ins ----------------------------------------------------------------------

    def overrides(self) -> list[tuple[Any, Callable[..., Any]]]:
        """(PyTorch's rebuild helper, its checked stand-in) pairs."""
        u = self._utils
        return [
            (u._rebuild_tensor, self._rebuild_tensor),
            (u._rebuild_tensor_v2, self._fast_rebuild_tensor_v2()),
            (u._rebuild_tensor_v3, self._rebuild_tensor_v3),
            (u._rebuild_qtensor, self._rebuild_qtensor),
            (u._rebuild_sparse_tensor, self._rebuild_sparse_tensor),
            (u._rebuild_nested_tensor, self._rebuild_nested_tensor),
        ]

    def _fast_rebuild_tensor_v2(self) -> Callable[..., Any]:
        """The stand-in for the helper almost every tensor is rebuilt by, with the common
        case checked inline (an optimizer state has one tensor per parameter and moment)."""
        real = self._utils._rebuild_tensor_v2
        typed_cls = self._typed_storage
        slow = self.check_view

        def rebuild_tensor_v2(
            storage: Any, offset: Any, size: Any, stride: Any, *args: Any, **kwargs: Any
        ) -> Any:
            if type(storage) is typed_cls and _view_fits(
                offset, size, stride, storage._untyped_storage.nbytes() // storage._dtype.itemsize
            ):
                return real(storage, offset, size, stride, *args, **kwargs)
            slow(storage, None, offset, size, stride)  # raises unless the view fits
            return real(storage, offset, size, stride, *args, **kwargs)

        return rebuild_tensor_v2

    def _rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any) -> Any:
        utils = self._utils

        self.check_view(storage, None, offset, size, stride)
        return utils._rebuild_tensor(storage, offset, size, stride)

    def _rebuild_tensor_v3(
        self, storage: Any, offset: Any, size: Any, stride: Any, *args: Any, **kwargs: Any
    ) -> Any:
        utils = self._utils

        dtype = kwargs.get("dtype", args[2] if len(args) > 2 else None)
        self.check_view(storage, dtype, offset, size, stride)
        return utils._rebuild_tensor_v3(storage, offset, size, stride, *args, **kwargs)

    def _rebuild_qtensor(
        self, storage: Any, offset: Any, size: Any, stride: Any, *args: Any, **kwargs: Any
    ) -> Any:
        utils = self._utils

        self.check_view(storage, None, offset, size, stride)
        return utils._rebuild_qtensor(storage, offset, size, stride, *args, **kwargs)

    def _rebuild_sparse_tensor(self, layout: Any, data: Any) -> Any:
        utils = self._utils

        result = utils._rebuild_sparse_tensor(layout, data)
        # PyTorch queued it on a process-wide list that only its own torch.load drains;
        # this load validates it itself (below), so take it off that list again.
        pending = utils._sparse_tensors_to_validate
        for i in range(len(pending) - 1, -1, -1):
            if pending[i] is result:
                del pending[i]
                break
        self.sparse.append(result)
        return result

    def _rebuild_nested_tensor(
        self, buffer: Any, sizes: Any, strides: Any, storage_offsets: Any
    ) -> Any:
        torch = _t.torch()
        tables = (buffer, sizes, strides, storage_offsets)
        if not all(isinstance(t, torch.Tensor) and t.layout is torch.strided for t in tables):
            raise self.fail("a nested tensor is rebuilt from something that is not a tensor")
        if buffer.dim() != 1 or not buffer.is_contiguous():
            raise self.fail("a nested tensor's buffer is not a flat contiguous tensor")
        if sizes.dim() != 2 or strides.shape != sizes.shape or storage_offsets.dim() != 1:
            raise self.fail("a nested tensor's size, stride and offset tables do not agree")
        if storage_offsets.shape[0] != sizes.shape[0]:
            raise self.fail("a nested tensor's size, stride and offset tables do not agree")
        if self.deferred:  # the tables' storages hold no data yet (legacy files)
            self.nested.append(tables)
        else:
            self._check_nested(tables)
        return self._utils._rebuild_nested_tensor(buffer, sizes, strides, storage_offsets)

    def _check_nested(self, tables: tuple[Any, ...]) -> None:
        buffer, sizes, strides, offsets = tables
        if buffer.device.type == "meta":
            return
        limit = buffer.numel()
        for size, stride, off in zip(
            sizes.tolist(), strides.tolist(), offsets.tolist(), strict=True
        ):
            _fit(self, limit, off, tuple(size), tuple(stride), "a nested tensor component")

    # -- the checks -------------------------------------------------------------------------

    def check_view(self, storage: Any, dtype: Any, offset: Any, size: Any, stride: Any) -> None:
        """The view (offset, size, stride) of ``dtype`` elements must lie inside ``storage``."""
        if not isinstance(storage, self._typed_storage):
            raise self.fail(
                f"a tensor is rebuilt from {a_or_an(type(storage).__name__)}, not from a "
                "storage of the file"
            )
        if dtype is None:
            dtype = storage._dtype  # (the .dtype property warns that TypedStorage is deprecated)
        if not isinstance(dtype, self._dtype):
            raise self.fail("a tensor is rebuilt with a dtype that is not a torch.dtype")
        untyped = storage._untyped_storage
        elsize = dtype.itemsize
        elements = untyped.nbytes() // elsize if elsize else 0
        if _view_fits(offset, size, stride, elements):
            return
        if untyped.device.type == "meta":
            return  # no data to read or write (torch grows meta storages to fit)
        _fit(self, elements, offset, size, stride, "a tensor", self._where(storage))

    def validate_sparse(self, result: Any) -> None:
        """Validate every sparse (and deferred nested) tensor this load built: their
        storages now hold data."""
        torch = _t.torch()
        for tables in self.nested:
            self._check_nested(tables)
        self.nested.clear()

        coo = torch.sparse_coo
        for t in self.sparse:
            if t.device.type == "meta":
                continue  # no data: nothing to index out of range
            try:
                if t.layout is coo:
                    torch._validate_sparse_coo_tensor_args(
                        t._indices(), t._values(), t.size(), t.is_coalesced(), check_pinning=False
                    )
                else:
                    row = t.layout in (torch.sparse_csr, torch.sparse_bsr)
                    compressed = t.crow_indices() if row else t.ccol_indices()
                    plain = t.col_indices() if row else t.row_indices()
                    torch._validate_sparse_compressed_tensor_args(
                        compressed, plain, t.values(), t.size(), t.layout, check_pinning=False
                    )
            except (RuntimeError, ValueError, TypeError, IndexError) as exc:
                where = find_path(result, t)
                raise self.fail(
                    f"a sparse tensor's indices are invalid ({str(exc).splitlines()[0]})",
                    f"at {where}" if where else None,
                ) from None
        self.sparse.clear()


def _view_fits(offset: Any, size: Any, stride: Any, elements: int) -> bool:
    """The common case, in one pass: an offset and tuples of non-negative ints whose view lies
    within ``elements``. False means "not shown here" (``_fit`` then decides, or refuses)."""
    if not (
        type(offset) is int
        and type(size) is tuple
        and type(stride) is tuple
        and 0 <= offset < _MAX
        and len(size) == len(stride)
    ):
        return False
    last, numel = offset, 1
    for d, st in zip(size, stride, strict=True):
        if type(d) is not int or type(st) is not int or d < 0 or st < 0:
            return False
        numel *= d
        last += (d - 1) * st
    return numel == 0 or (numel < _MAX and last < elements)


def _fit(  # noqa: PLR0917 - the view's parts, in PyTorch's order
    guard: LayoutGuard,
    elements: int,
    offset: Any,
    size: Any,
    stride: Any,
    what: str,
    where: str | None = None,
) -> None:
    if type(offset) is not int or not 0 <= offset < _MAX:
        raise guard.fail(f"{what} has storage offset {offset!r}", where)
    if not (_int_seq(size) and _int_seq(stride)) or len(size) != len(stride):
        raise guard.fail(f"{what} has malformed size {size!r} or stride {stride!r}", where)
    if any(not 0 <= d < _MAX for d in size) or any(not 0 <= s < _MAX for s in stride):
        raise guard.fail(f"{what} has a negative or huge size {size} or stride {stride}", where)
    numel = 1
    for d in size:
        numel *= d
    if numel >= _MAX:
        raise guard.fail(f"{what} of size {tuple(size)} has more elements than PyTorch can index")
    if numel == 0:
        return
    last = offset + sum((d - 1) * s for d, s in zip(size, stride, strict=True))
    if last >= elements:
        raise guard.fail(
            f"{what} with offset {offset}, size {tuple(size)} and stride {tuple(stride)} needs "
            f"{last + 1} elements but its storage holds {elements}",
            where,
        )


def _int_seq(v: object) -> bool:
    return isinstance(v, (tuple, list)) and all(type(x) is int for x in v)


def find_path(root: Any, target: Any, limit: int = 200_000) -> str | None:
    """Where ``target`` sits inside ``root`` (``['model']['w']``), for error messages only."""
    seen: set[int] = set()
    stack: list[tuple[Any, str]] = [(root, "")]
    steps = 0
    while stack and steps < limit:
        obj, path = stack.pop()
        steps += 1
        if obj is target:
            return path or "the top-level object"
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        stack.extend(_children(obj, path))
    return None


def _children(obj: Any, path: str) -> Iterator[tuple[Any, str]]:
    if isinstance(obj, dict):
        for k, v in list(obj.items()):
            yield v, f"{path}[{k!r}]"
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield v, f"{path}[{i}]"
    else:
        attrs = getattr(obj, "__dict__", None)
        if isinstance(attrs, dict):
            for k, v in list(attrs.items()):
                yield v, f"{path}.{k}"
