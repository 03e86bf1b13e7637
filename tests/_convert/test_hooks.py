"""The hooks ckptguard.load calls: read_safetensors_checkpoint and restore_types."""

from __future__ import annotations

import argparse
import json
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from ckptguard import CorruptCheckpointError, convert
from ckptguard._convert import read_safetensors_checkpoint, restore_types
from ckptguard._errors import ConvertError
from ckptguard._policy import default_policy
from tests import factories as F


def assert_same(a: object, b: object, path: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), path
        assert a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and type(a) is type(b) and list(a) == list(b), path
        for k in a:
            assert_same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}/{i}")
    else:
        assert a == b, (path, a, b)


@pytest.mark.parametrize(
    "make",
    [
        F.training_checkpoint,
        F.namespace_checkpoint,
        F.omegaconf_checkpoint,
        F.user_enum_checkpoint,
        F.legacy_checkpoint,
    ],
)
def test_safetensors_reads_back_the_same_structure_as_the_pt_conversion(
    tmp_path: Path, make: object
) -> None:
    src = make(tmp_path / "src.pt")  # type: ignore[operator]
    convert(src, tmp_path / "out.pt")
    convert(src, tmp_path / "out.safetensors", to="safetensors")
    from_pt = torch.load(tmp_path / "out.pt")
    from_st = read_safetensors_checkpoint(str(tmp_path / "out.safetensors"))
    assert_same(from_pt, from_st)


def test_safetensors_keeps_parameters_and_values(tmp_path: Path) -> None:
    obj = {
        "p": torch.nn.Parameter(torch.randn(2)),
        "s": torch.Size([2, 3]),
        "dt": torch.float16,
        "t": (1, 2.5, float("nan")),
        "b": b"\x00\x01",
        "set": {1, 2},
        "view": torch.arange(6.0).reshape(2, 3)[:, 1],
    }
    torch.save(obj, tmp_path / "a.pt")
    convert(tmp_path / "a.pt", tmp_path / "a.safetensors", to="safetensors")
    back = read_safetensors_checkpoint(str(tmp_path / "a.safetensors"))
    assert isinstance(back, dict)
    assert isinstance(back["p"], torch.nn.Parameter) and torch.equal(back["p"], obj["p"])
    assert back["s"] == torch.Size([2, 3]) and back["dt"] is torch.float16
    assert back["t"][:2] == (1, 2.5) and np.isnan(back["t"][2])
    assert back["b"] == b"\x00\x01" and back["set"] == {1, 2}
    assert torch.equal(back["view"], obj["view"])


def test_sparse_tensors_are_refused_for_safetensors(tmp_path: Path) -> None:
    torch.save({"sp": torch.eye(3).to_sparse()}, tmp_path / "sp.pt")
    with pytest.raises(ConvertError, match="sparse"):
        convert(tmp_path / "sp.pt", tmp_path / "sp.safetensors", to="safetensors")
    assert not (tmp_path / "sp.safetensors").exists()


def test_plain_safetensors_file_is_a_dict_of_tensors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"a": torch.ones(2), "b": torch.zeros(3, dtype=torch.int8)}, tmp_path / "p.st")
    back = read_safetensors_checkpoint(str(tmp_path / "p.st"))
    assert isinstance(back, dict) and set(back) == {"a", "b"}
    assert back["b"].dtype == torch.int8


def test_malformed_structure_metadata_is_an_error(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    bad = json.dumps({"version": 1, "structure": {"$eval": "os.system('x')"}})
    save_file({"a": torch.ones(1)}, tmp_path / "bad.st", metadata={"__ckptguard__": bad})
    with pytest.raises(CorruptCheckpointError, match="malformed"):
        read_safetensors_checkpoint(str(tmp_path / "bad.st"))
    missing = json.dumps({"version": 1, "structure": {"$tensor": "nope"}})
    save_file({"a": torch.ones(1)}, tmp_path / "m.st", metadata={"__ckptguard__": missing})
    with pytest.raises(CorruptCheckpointError):
        read_safetensors_checkpoint(str(tmp_path / "m.st"))
    (tmp_path / "trunc.st").write_bytes(struct.pack("<Q", 100) + b"{")
    with pytest.raises(CorruptCheckpointError):
        read_safetensors_checkpoint(str(tmp_path / "trunc.st"))


def test_restore_types_only_rebuilds_allowed_types(tmp_path: Path) -> None:
    src = tmp_path / "src.pt"
    torch.save(
        {
            "hparams": {"mode": F.DSPMode.INFER},
            "config": F.UserConfig(lr=0.5),
            "args": argparse.Namespace(a=1),
            "od": OrderedDict(x=1),
        },
        src,
    )
    convert(src, tmp_path / "out.pt")
    plain = torch.load(tmp_path / "out.pt")
    default = restore_types(plain, policy=default_policy())
    assert isinstance(default, dict)
    assert default["hparams"]["mode"] == "infer"  # the user Enum is not allowed: plain
    assert default["config"] == {"lr": 0.5, "layers": 2}
    assert isinstance(default["args"], argparse.Namespace) and default["args"].a == 1
    assert set(default["__ckptguard__"]["types"]) == {"/hparams/mode", "/config"}

    plain = torch.load(tmp_path / "out.pt")
    policy = default_policy().with_allowed([F.USER_ENUM, F.USER_DATACLASS])
    full = restore_types(plain, policy=policy)
    assert isinstance(full, dict)
    assert full["hparams"]["mode"] is F.DSPMode.INFER
    assert full["config"] == F.UserConfig(lr=0.5)
    assert "__ckptguard__" not in full


def test_restore_types_leaves_unrecorded_objects_alone() -> None:
    obj = {"a": 1}
    assert restore_types(obj, policy=default_policy()) is obj
    odd = {
        "__ckptguard__": {
            "version": 1,
            "types": {"/x": {"type": "os.system", "module": "os", "as": "global"}},
        },
        "x": "os.system",
    }
    out = restore_types(odd, policy=default_policy())
    assert isinstance(out, dict) and out["x"] == "os.system"  # dangerous: never imported
