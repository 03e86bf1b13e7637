"""inspect on files described from their headers (issue 11 item 2): safetensors (names,
dtypes, shapes, bytes, __metadata__), npz and npy (each array), TorchScript (code, not run;
its parameters and buffers) exit 0 with scan's units; hostile headers are clean errors."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ckptguard
from ckptguard._cli import main
from tests.subproc import ENV

_NUMPY_DATA = Path(np.__file__).parent / "lib" / "tests" / "data"


def _cli(*args: str) -> tuple[int, str]:
    p = subprocess.run(
        [sys.executable, "-m", "ckptguard", *args],
        capture_output=True, text=True, env=ENV, timeout=120, check=False,
    )  # fmt: skip
    return p.returncode, p.stdout + p.stderr


def test_safetensors_is_described_from_its_header(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_file(
        {"enc.w": torch.zeros(300, 400), "enc.b": torch.ones(7, dtype=torch.bfloat16)},
        str(path),
        metadata={"format": "pt", "note": "x" * 300},
    )
    ins = ckptguard.inspect(path)
    assert ins.error is None and ins.tree is not None
    nodes = {it["key"]: it["value"] for it in ins.tree["items"]}
    assert nodes["enc.w"] == {"type": "tensor", "dtype": "float32", "shape": [300, 400],
                              "bytes": 480000}  # fmt: skip
    assert nodes["enc.b"]["dtype"] == "bfloat16" and nodes["enc.b"]["bytes"] == 14
    meta = {it["key"]: it["value"] for it in nodes["__metadata__"]["items"]}
    assert meta["format"] == {"type": "str", "value": "pt"}
    assert meta["note"]["len"] == 300
    assert ins.tensors == 2 and ins.tensor_bytes == 480014
    code, out = _cli("inspect", str(path))
    assert code == 0, out
    assert "enc.w: tensor float32 [300x400] 468.8 KiB" in out
    assert "2 tensors, 468.8 KiB of tensor data" in out


def test_npz_lists_each_member_array(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    np.savez_compressed(path, mel=np.zeros((80, 3), np.float32), ids=np.arange(9))
    ins = ckptguard.inspect(path)
    nodes = {it["key"]: it["value"] for it in ins.tree["items"]}  # type: ignore[index]
    assert nodes["mel"] == {"type": "array", "dtype": "float32", "shape": [80, 3], "bytes": 960}
    assert nodes["ids"]["dtype"] == "int64" and nodes["ids"]["shape"] == [9]
    code, out = _cli("inspect", str(path))
    assert code == 0 and "mel: array float32 [80x3] 960 B" in out


def test_numpys_py2_object_npz_shows_its_array() -> None:
    ins = ckptguard.inspect(_NUMPY_DATA / "py2-objarr.npz")
    assert ins.error is None
    node = ins.tree["items"][0]["value"]  # type: ignore[index]
    assert node["type"] == "object array" and node["shape"] == [4]


def test_numpys_py2_object_npy_shows_its_items() -> None:
    ins = ckptguard.inspect(_NUMPY_DATA / "py2-objarr.npy")
    assert ins.error is None and ins.tree is not None
    data = ins.tree["items"][0]["value"]
    assert data["type"] == "object array" and data["len"] == 4
    assert data["items"][2]["value"] == {"type": "str", "value": "優良"}


def test_py2_npy_header_is_shown(tmp_path: Path) -> None:
    ins = ckptguard.inspect(_NUMPY_DATA / "win64python2.npy")
    assert ins.tree == {"type": "array", "dtype": "float64", "shape": [2], "bytes": 16}


_SCRIPTED = """
import sys, torch
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 4)
        self.register_buffer("running", torch.zeros(2))
    def forward(self, x):
        return self.lin(x)
torch.jit.script(M()).save(sys.argv[1])
"""


def test_torchscript_is_described_as_code_with_its_parameters(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    (tmp_path / "tsmodel.py").write_text(_SCRIPTED)
    subprocess.run(
        [sys.executable, "tsmodel.py", str(path)], cwd=tmp_path, env=ENV, check=True, timeout=120
    )
    code, out = _cli("inspect", str(path))
    assert code == 0, out
    assert "TorchScript" in out and "inspect runs none of it" in out
    assert "weight: tensor float32 [4x3] 48 B" in out
    ins = ckptguard.inspect(path)
    assert ins.tensors == 3 and ins.error is None


def _st(header: dict[str, object], data: bytes, *, length: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


@pytest.mark.parametrize(
    ("what", "blob"),
    [
        ("offsets past the data", _st({"a": {"dtype": "F32", "shape": [2],
                                            "data_offsets": [0, 8]}}, b"\0" * 4)),
        ("a huge shape", _st({"a": {"dtype": "F32", "shape": [2**62, 2**62],
                                   "data_offsets": [0, 4]}}, b"\0" * 4)),
        ("a size that lies", _st({"a": {"dtype": "F64", "shape": [1],
                                       "data_offsets": [0, 4]}}, b"\0" * 4)),
        ("overlapping entries", _st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                     "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                                    b"\0" * 4)),
        ("a header length past the file", _st({}, b"", length=2**40)),
        ("metadata that is not text", _st({"__metadata__": {"a": 1}}, b"")),
    ],
)  # fmt: skip
def test_hostile_safetensors_headers_are_clean_errors(
    tmp_path: Path, what: str, blob: bytes
) -> None:
    path = tmp_path / "h.safetensors"
    path.write_bytes(blob)
    ins = ckptguard.inspect(path)
    assert ins.error and ins.tree is None, what
    assert main(["inspect", str(path)]) == 2
