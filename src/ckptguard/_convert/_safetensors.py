"""``convert --to safetensors`` and reading such files back into their nested structure.

Tensors go into the safetensors file under their path in the structure (``model/0.weight``);
everything else is stored as tagged JSON in the header's ``__metadata__["__ckptguard__"]``
(see docs/convert.md). A plain safetensors file reads back as a dict name -> tensor.
"""

from __future__ import annotations

import base64
import json
import math
import os
import tempfile
from collections import OrderedDict
from typing import Any

from ckptguard._convert._model import FORMAT_KEY, FORMAT_VERSION
from ckptguard._convert._plain import ConvertError
from ckptguard._errors import CorruptCheckpointError, UsageError

_MAX_DEPTH = 200


class _Encoder:
    def __init__(self) -> None:
        import torch  # noqa: PLC0415

        self.torch = torch
        self.tensors: dict[str, Any] = {}
        self.names: dict[int, str] = {}
        self.storages: set[tuple[int, int]] = set()
        self.busy: set[int] = set()

    def enc(self, v: Any, path: str, depth: int) -> Any:
        torch = self.torch
        if depth > _MAX_DEPTH:
            raise ConvertError(f"{path or '/'}: nested more than {_MAX_DEPTH} levels deep")
        if v is None or isinstance(v, (bool, str)):
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
            return {"$bytes": base64.b64encode(v).decode()}
        if isinstance(v, complex):
            return {"$complex": [v.real, v.imag]}
        if id(v) in self.busy:
            raise ConvertError(f"{path or '/'}: a structure that contains itself")
        self.busy.add(id(v))
        try:
            if isinstance(v, torch.Size):
                return {"$size": list(v)}
            if isinstance(v, dict):
                tag = "$odict" if isinstance(v, OrderedDict) else "$dict"
                return {
                    tag: [
                        [
                            self.enc(k, f"{path}/{k}#key", depth + 1),
                            self.enc(x, f"{path}/{k}", depth + 1),
                        ]
                        for k, x in v.items()
                    ]
                }
            if isinstance(v, list):
                return [self.enc(x, f"{path}/{i}", depth + 1) for i, x in enumerate(v)]
            if isinstance(v, tuple):
                return {"$tuple": [self.enc(x, f"{path}/{i}", depth + 1) for i, x in enumerate(v)]}
            if isinstance(v, (set, frozenset)):
                return {"$set": [self.enc(x, f"{path}/{i}", depth + 1) for i, x in enumerate(v)]}
        finally:
            self.busy.discard(id(v))
        raise ConvertError(f"{path or '/'}: a {type(v).__name__} has no safetensors form")

    def tensor(self, t: Any, path: str) -> dict[str, Any]:
        torch = self.torch
        if t.layout != torch.strided or t.is_quantized:
            raise ConvertError(
                f"{path or '/'}: a {'quantized' if t.is_quantized else 'sparse'} tensor cannot "
                "be stored in safetensors",
                hint="convert to .pt instead (ckptguard convert SRC DST.pt)",
            )
        name = self.names.get(id(t))
        if name is None:
            name = path.lstrip("/") or "tensor"
            while name in self.tensors:
                name += "_"
            data = t.detach()
            key = (data.untyped_storage().data_ptr(), data.untyped_storage().nbytes())
            if (
                key in self.storages
                or not data.is_contiguous()
                or data.numel() * data.element_size() != key[1]
            ):
                data = data.contiguous().clone()  # safetensors refuses shared memory
            else:
                self.storages.add(key)
            self.tensors[name] = data
            self.names[id(t)] = name
        out: dict[str, Any] = {"$tensor": name}
        if isinstance(t, torch.nn.Parameter):
            out["param"] = bool(t.requires_grad)
        return out


def pt_to_safetensors(pt_path: str, dst_dir: str, types: dict[str, Any]) -> str:
    """Write the converted .pt at ``pt_path`` as a safetensors temp file in ``dst_dir``."""
    import torch  # noqa: PLC0415
    from safetensors.torch import save_file  # noqa: PLC0415

    obj = torch.load(pt_path, weights_only=True, mmap=True, map_location="cpu")
    e = _Encoder()
    structure = e.enc(obj, "", 0)
    meta = {"version": FORMAT_VERSION, "structure": structure}
    del types
    fd, tmp = tempfile.mkstemp(prefix=".ckptguard-", suffix=".safetensors.tmp", dir=dst_dir)
    os.close(fd)
    save_file(e.tensors, tmp, metadata={FORMAT_KEY: json.dumps(meta)})
    back = read_checkpoint(tmp, None)
    if _shape_of(back) != _shape_of(obj):
        os.unlink(tmp)
        raise CorruptCheckpointError("internal: the safetensors file did not read back the same")
    return tmp


def _shape_of(v: Any) -> Any:
    """A comparable summary (tensors by dtype/shape) used to verify a written file."""
    import torch  # noqa: PLC0415

    if isinstance(v, torch.Tensor):
        return ("tensor", str(v.dtype), tuple(v.shape))
    if isinstance(v, dict):
        return ("dict", [(repr(k), _shape_of(x)) for k, x in v.items()])
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, [_shape_of(x) for x in v])
    return repr(v)


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
        tensors = load(data)
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + n])
        metadata = header.get("__metadata__") or {}
    except (OSError, ValueError, RuntimeError, SafetensorError, AttributeError) as exc:
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
