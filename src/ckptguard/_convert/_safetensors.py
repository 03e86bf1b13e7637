"""``convert --to safetensors`` and reading such files back into their nested structure.

Tensors go into the safetensors file under their path in the structure (``model/0.weight``);
everything else is stored as tagged JSON in the header's ``__metadata__["__ckptguard__"]``
(see docs/convert.md). A plain safetensors file reads back as a dict name -> tensor.
"""

from __future__ import annotations

import base64
import json
import math
from collections import OrderedDict
from typing import Any

from ckptguard._convert._plain import bounded_repr
from ckptguard._convert._values import FORMAT_KEY, FORMAT_VERSION
from ckptguard._errors import ConvertError, CorruptCheckpointError, UsageError
from ckptguard._formats._safetensors import parse_header
from ckptguard._grammar import a_or_an

_MAX_DEPTH = 200
# JSON metadata cannot share: a container referenced twice is written twice. The values
# written are bounded (a .pt output keeps sharing; safetensors refuses past this bound).
MAX_VALUES = 2_000_000
MAX_METADATA_BYTES = 64 << 20  # safetensors readers refuse headers past 100 MB
_MAX_NAME = 512  # characters of a tensor name taken from its path
# safetensors stores every tensor contiguous and unshared, so views are copied out. The bytes
# copied may exceed the bytes of the distinct storages read from the file by this much at most:
# a broadcast (zero-stride) or overlapping view, or many views of one storage, would otherwise
# turn a file of a few KB into GBs of output (torch.ones(1).expand(3 * 10**9): 12 GB).
MAX_COPY_SLACK = 64 << 20

_TO_PT = "convert to .pt instead, which keeps shared values shared: ckptguard convert SRC DST.pt"

# A path in the structure, built lazily: None (the root) or (parent, segment).
_Path = tuple[Any, str] | None


def _path_text(p: _Path, limit: int = 4096) -> str:
    """``/a/0/b`` for a lazy path; ``...`` past ``limit`` characters."""
    parts: list[str] = []
    size = 0
    while p is not None:
        p, seg = p
        size += len(seg) + 1
        if size > limit:  # the end of the path is kept: ".../c/d"
            parts.append("...")
            break
        parts.append(seg)
    return "/" + "/".join(reversed(parts)) if parts else "/"


class _Encoder:
    def __init__(self) -> None:
        import torch  # noqa: PLC0415

        self.torch = torch
        self.tensors: dict[str, Any] = {}
        self.names: dict[int, str] = {}
        self.storages: set[tuple[int, int]] = set()
        self.seen_storages: set[tuple[int, int]] = set()
        self.storage_bytes = 0  # bytes of the distinct storages met so far
        self.copied = 0  # bytes copied out of views
        self.busy: set[int] = set()
        self.suffixes: dict[str, int] = {}  # tensor name -> next number to try after it
        self.left = MAX_VALUES
        self.left_chars = MAX_METADATA_BYTES

    def spend(self, n: int, path: _Path) -> None:
        self.left_chars -= n
        if self.left_chars < 0:
            raise self.fail(
                path,
                f"the structure needs more than {MAX_METADATA_BYTES} bytes of safetensors "
                "metadata (which cannot share: each reference to a shared string, list or dict "
                "is written out again)",
            )

    def copy_budget(self, nbytes: int, storage: int, path: _Path) -> None:
        """Charge a view copied out in full; refuse before copying past the bound."""
        self.copied += nbytes
        if self.copied > self.storage_bytes + MAX_COPY_SLACK:
            raise self.fail(
                path,
                f"a view of {nbytes} bytes over a storage of {storage} bytes (broadcast, "
                "overlapping or repeated views): safetensors would write them out in full, "
                f"{self.copied} bytes so far from {self.storage_bytes} bytes of tensor data",
            )

    def fail(self, p: _Path, problem: str, hint: str = _TO_PT) -> ConvertError:
        return ConvertError(f"cannot write the value at {_path_text(p)}: {problem}", hint=hint)

    def enc(self, v: Any, path: _Path, depth: int) -> Any:
        torch = self.torch
        self.left -= 1
        if self.left < 0:
            raise self.fail(
                path,
                f"the structure expands to more than {MAX_VALUES} values in safetensors metadata "
                "(which cannot share: each reference to a shared list, dict or tuple is "
                "written out again)",
            )
        if depth > _MAX_DEPTH:
            raise self.fail(path, f"nested more than {_MAX_DEPTH} levels deep")
        if isinstance(v, str):  # a shared string is written out again at each reference too
            self.spend(len(v), path)
            return v
        if v is None or isinstance(v, bool):
            return v
        if type(v) is int:
            return v
        if type(v) is float:
            return v if math.isfinite(v) else {"$float": repr(v)}
        if isinstance(v, torch.Tensor):
            return self.tensor(v, path)
        if isinstance(v, torch.dtype):
            return {"$dtype": str(v).removeprefix("torch.")}
        if isinstance(v, torch.device):
            return {"$device": str(v)}
        if isinstance(v, bytes):
            self.spend(len(v) * 4 // 3, path)
            return {"$bytes": base64.b64encode(v).decode()}
        if isinstance(v, complex):
            return {"$complex": [v.real, v.imag]}
        if id(v) in self.busy:
            raise self.fail(path, "a structure that contains itself (JSON cannot hold a cycle)")
        self.busy.add(id(v))
        try:
            if isinstance(v, torch.Size):
                return {"$size": list(v)}
            if isinstance(v, dict):
                tag = "$odict" if isinstance(v, OrderedDict) else "$dict"
                pairs = []
                for k, x in v.items():
                    seg = k if type(k) is str else bounded_repr(k)
                    pairs.append(
                        [
                            self.enc(k, (path, seg + "#key"), depth + 1),
                            self.enc(x, (path, seg), depth + 1),
                        ]
                    )
                return {tag: pairs}
            if isinstance(v, list):
                return [self.enc(x, (path, str(i)), depth + 1) for i, x in enumerate(v)]
            if isinstance(v, tuple):
                return {"$tuple": [self.enc(x, (path, str(i)), depth + 1) for i, x in enumerate(v)]}
            if isinstance(v, (set, frozenset)):
                return {"$set": [self.enc(x, (path, str(i)), depth + 1) for i, x in enumerate(v)]}
        finally:
            self.busy.discard(id(v))
        raise self.fail(path, f"{a_or_an(type(v).__name__)} has no safetensors form")

    def tensor(self, t: Any, path: _Path) -> dict[str, Any]:
        torch = self.torch
        if t.layout != torch.strided or t.is_quantized:
            kind = "quantized" if t.is_quantized else "sparse"
            raise self.fail(path, f"{a_or_an(str(kind))} tensor cannot be stored in safetensors")
        name = self.names.get(id(t))
        if name is None:
            name = _path_text(path, _MAX_NAME).lstrip("/") or "tensor"
            # a key with a lone surrogate (pickle text is decoded with surrogatepass) is not
            # Unicode a safetensors header can hold: spelled as \udc80 text (the structure
            # refers to the tensor by this name, so nothing is lost)
            name = name.encode("utf-8", "backslashreplace").decode("utf-8")
            if name in self.tensors:  # the same path text (a cut one, a key's repr...)
                n = self.suffixes.get(name, 1)
                while f"{name}_{n}" in self.tensors:
                    n += 1
                self.suffixes[name] = n + 1
                name = f"{name}_{n}"
            data = t.detach()
            key = (data.untyped_storage().data_ptr(), data.untyped_storage().nbytes())
            if key not in self.seen_storages:
                self.seen_storages.add(key)
                self.storage_bytes += key[1]
            if (
                key in self.storages
                or not data.is_contiguous()
                or data.numel() * data.element_size() != key[1]
            ):
                self.copy_budget(data.numel() * data.element_size(), key[1], path)
                data = data.contiguous().clone()  # safetensors refuses shared memory
            else:
                self.storages.add(key)
            self.tensors[name] = data
            self.names[id(t)] = name
        out: dict[str, Any] = {"$tensor": name}
        if isinstance(t, torch.nn.Parameter):
            out["param"] = bool(t.requires_grad)
        return out


def expanded_size(v: Any, memo: dict[int, tuple[Any, int]], busy: set[int]) -> int:
    """How many values ``v`` becomes in JSON, where nothing is shared (memoized by identity:
    linear in the distinct containers however they share; stops a little past MAX_VALUES;
    a cycle counts once here and is refused by the encoder)."""
    if not isinstance(v, (dict, list, tuple, set, frozenset)):
        return 1
    got = memo.get(id(v))
    if got is not None:
        return got[1]
    if id(v) in busy:
        return 1
    busy.add(id(v))
    n = 1
    children = (x for kv in v.items() for x in kv) if isinstance(v, dict) else iter(v)
    for x in children:
        n += expanded_size(x, memo, busy)
        if n > MAX_VALUES:
            break
    busy.discard(id(v))
    memo[id(v)] = (v, n)
    return n


def pt_to_safetensors(pt_path: str, tmp_path: str) -> None:
    """Write the converted .pt at ``pt_path`` as safetensors into ``tmp_path`` (a temporary
    file the caller created and removes on failure), and check that it reads back."""
    import torch  # noqa: PLC0415
    from safetensors.torch import save_file  # noqa: PLC0415

    obj = torch.load(pt_path, weights_only=True, mmap=True, map_location="cpu")
    if expanded_size(obj, {}, set()) > MAX_VALUES:  # refused at once, not after the walk
        raise ConvertError(
            f"the structure expands to more than {MAX_VALUES} values in safetensors metadata "
            "(which cannot share: each reference to a shared list, dict or tuple is written "
            "out again)",
            hint=_TO_PT,
        )
    e = _Encoder()
    structure = e.enc(obj, None, 0)
    meta = json.dumps({"version": FORMAT_VERSION, "structure": structure})
    if len(meta) > MAX_METADATA_BYTES:
        raise ConvertError(
            f"the structure needs {len(meta)} bytes of safetensors metadata, more than "
            f"{MAX_METADATA_BYTES}",
            hint=_TO_PT,
        )
    from safetensors import SafetensorError  # noqa: PLC0415

    try:
        save_file(e.tensors, tmp_path, metadata={FORMAT_KEY: meta})
    except (SafetensorError, ValueError, TypeError, RuntimeError) as exc:
        raise ConvertError(f"safetensors cannot write this structure: {exc}", hint=_TO_PT) from None
    back = read_checkpoint(tmp_path, None)
    if _shape_of(back) != _shape_of(obj):
        raise CorruptCheckpointError(
            "internal: the safetensors file did not read back the same; nothing was written",
            hint="please report this as a ckptguard bug; meanwhile convert to .pt: "
            "ckptguard convert SRC DST.pt",
        )


def _shape_of(v: Any) -> Any:
    """A comparable summary (tensors by dtype/shape) used to verify a written file (bounded:
    only called once the encoder has walked at most MAX_VALUES values)."""
    import torch  # noqa: PLC0415

    if isinstance(v, torch.Tensor):
        return ("tensor", str(v.dtype), tuple(v.shape))
    if isinstance(v, dict):
        return ("dict", [(bounded_repr(k), _shape_of(x)) for k, x in v.items()])
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, [_shape_of(x) for x in v])
    return bounded_repr(v) if isinstance(v, (str, bytes, tuple)) else repr(v)


def read_checkpoint(path: str, map_location: Any = None) -> object:
    with open(path, "rb") as fh:
        data = fh.read()
    return read_checkpoint_bytes(data, map_location, name=path)


def read_checkpoint_bytes(data: bytes, map_location: Any = None, *, name: str) -> object:
    """Like :func:`read_checkpoint` for the bytes of a (scanned) safetensors file."""
    import torch  # noqa: PLC0415
    from safetensors import SafetensorError  # noqa: PLC0415
    from safetensors.torch import load  # noqa: PLC0415

    if map_location is None:
        device = "cpu"
    elif isinstance(map_location, (str, torch.device)):
        device = str(map_location)
    else:
        raise UsageError(
            "a safetensors checkpoint takes map_location as a device ('cpu', 'cuda:0', ...)",
            hint="pass map_location='cpu' and move tensors afterwards",
        )
    try:
        loaded = load(data)
        entries, header_meta = parse_header(data)
        metadata = header_meta or {}
        # file order (by data offset), as safetensors.torch.load_file returns them; load()
        # returns a dict in hash order
        tensors = {e.name: loaded[e.name] for e in entries}
        if len(tensors) != len(loaded):
            raise ValueError("the header and the loaded tensors differ")
    except (OSError, ValueError, RuntimeError, SafetensorError, AttributeError, KeyError) as exc:
        raise CorruptCheckpointError(
            f"cannot read the safetensors file: {exc}", path=name
        ) from None
    if device != "cpu":
        tensors = {k: v.to(device) for k, v in tensors.items()}
    raw = metadata.get(FORMAT_KEY) if isinstance(metadata, dict) else None
    if raw is None:
        return dict(tensors)
    try:
        meta = json.loads(raw)
        if not isinstance(meta, dict) or meta.get("version") != FORMAT_VERSION:
            raise ValueError("unknown version")
        return _Decoder(tensors).dec(meta["structure"], 0)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise CorruptCheckpointError(
            f"the {FORMAT_KEY} metadata of this safetensors file is malformed ({exc})",
            path=name,
            hint="re-create it with ckptguard convert SRC DST --to safetensors",
        ) from None


class _Decoder:
    def __init__(self, tensors: dict[str, Any]) -> None:
        import torch  # noqa: PLC0415

        self.torch = torch
        self.tensors = tensors
        self.dtypes = {str(d).removeprefix("torch."): d for d in _all_dtypes(torch)}

    def dec(self, v: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise ValueError("nested too deep")
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):
            return [self.dec(x, depth + 1) for x in v]
        if not isinstance(v, dict) or len(v) not in (1, 2):
            raise ValueError("untagged object")
        tag = next(iter(v))
        body = v[tag]
        if tag == "$tensor":
            t = self.tensors[body]
            if "param" in v:
                return self.torch.nn.Parameter(t, requires_grad=bool(v["param"]))
            return t
        if len(v) != 1:
            raise ValueError(f"bad {tag} entry")
        if tag in ("$dict", "$odict"):
            out: dict[Any, Any] = OrderedDict() if tag == "$odict" else {}
            for k, x in body:
                out[self.dec(k, depth + 1)] = self.dec(x, depth + 1)
            return out
        if tag == "$tuple":
            return tuple(self.dec(x, depth + 1) for x in body)
        if tag == "$set":
            return {self.dec(x, depth + 1) for x in body}
        if tag == "$size":
            return self.torch.Size([int(x) for x in body])
        if tag == "$float":
            return float(body)
        if tag == "$complex":
            return complex(float(body[0]), float(body[1]))
        if tag == "$bytes":
            return base64.b64decode(body, validate=True)
        if tag == "$dtype":
            return self.dtypes[body]
        if tag == "$device":
            return self.torch.device(str(body))
        raise ValueError(f"unknown tag {tag!r}")


def _all_dtypes(torch: Any) -> list[Any]:
    return [v for v in vars(torch).values() if isinstance(v, torch.dtype)]
