"""inspect counts the state dicts real files hold (issue 11 item 2): the OrderedDict
constructor form (``OrderedDict([[k, v], ...])``, as lpips files hold it, or a list of tuples)
and tensors rebuilt by torch's v1 helper ``torch._utils._rebuild_tensor``."""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

import ckptguard
from ckptguard._inspect import Inspection
from ckptguard._verdict import FileVerdict


class _Py2OrderedDict(collections.OrderedDict):  # type: ignore[type-arg]
    """Pickles as Python 2's OrderedDict did: ``OrderedDict([[k, v], ...])`` (or tuples)."""

    pair = list

    def __reduce__(self) -> Any:
        return (collections.OrderedDict, ([self.pair((k, v)) for k, v in self.items()],))


class _TupleOrderedDict(_Py2OrderedDict):
    pair = tuple


class _V1Tensor:
    """A tensor that pickles through torch._utils._rebuild_tensor (the v1 helper)."""

    def __init__(self, t: torch.Tensor) -> None:
        self.t = t

    def __reduce__(self) -> Any:
        t = self.t
        return (
            torch._utils._rebuild_tensor,
            (t.storage(), t.storage_offset(), tuple(t.size()), t.stride()),
        )


def _state(cls: type) -> Any:
    return cls(
        [
            ("lin0.model.1.weight", torch.randn(1, 64, 1, 1)),
            ("lin1.model.1.weight", torch.randn(1, 128, 1, 1)),
            ("lin2.model.1.weight", torch.randn(1, 256, 1, 1)),
        ]
    )


def _nodes(ins: Inspection) -> dict[Any, dict[str, Any]]:
    assert ins.tree is not None
    return {it["key"]: it["value"] for it in ins.tree["items"]}


@pytest.mark.parametrize("cls", [_Py2OrderedDict, _TupleOrderedDict])
@pytest.mark.parametrize("legacy", [False, True])
def test_ordered_dict_constructor_form_is_a_counted_state_dict(
    tmp_path: Path, cls: type, legacy: bool
) -> None:
    path = tmp_path / "lpips.pth"
    state = _state(cls)
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    raw = path.read_bytes()
    assert b"OrderedDict" in raw
    real = torch.load(path, weights_only=False)  # the file is what the real loader reads
    assert list(real) == list(state)
    ins = ckptguard.inspect(path)
    assert ins.error is None and ins.tree is not None
    assert ins.tree["type"] == "OrderedDict" and ins.tree["len"] == 3
    assert ins.tensors == 3
    assert ins.tensor_bytes == 4 * (64 + 128 + 256)
    nodes = _nodes(ins)
    assert list(nodes) == list(state)
    assert nodes["lin1.model.1.weight"]["shape"] == [1, 128, 1, 1]


def test_ordered_dict_constructor_with_a_repeated_key_keeps_the_last_value(tmp_path: Path) -> None:
    class Rep(collections.OrderedDict):  # type: ignore[type-arg]
        def __reduce__(self) -> Any:
            return (collections.OrderedDict, ([["a", 1], ["b", 2], ["a", 3]],))

    path = tmp_path / "rep.pt"
    torch.save(Rep(), path)
    assert torch.load(path, weights_only=False) == collections.OrderedDict(a=3, b=2)
    nodes = _nodes(ckptguard.inspect(path))
    assert list(nodes) == ["a", "b"] and nodes["a"]["value"] == 3


@pytest.mark.parametrize("legacy", [True, False])
def test_v1_rebuild_tensor_is_counted_as_a_tensor(tmp_path: Path, legacy: bool) -> None:
    path = tmp_path / "v1.pt"
    w = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    torch.save(
        {"w": _V1Tensor(w), "b": _V1Tensor(torch.zeros(5, dtype=torch.int64))},
        path,
        _use_new_zipfile_serialization=not legacy,
    )
    if legacy:  # the zip form holds the same pickle in data.pkl (maybe compressed)
        assert b"\n_rebuild_tensor\n" in path.read_bytes()
    real = torch.load(path, weights_only=False)
    assert torch.equal(real["w"], w)
    ins = ckptguard.inspect(path)
    nodes = _nodes(ins)
    assert nodes["w"] == {
        "type": "tensor",
        "dtype": "float32",
        "shape": [3, 4],
        "bytes": 48,
        "storage": nodes["w"]["storage"],
    }
    assert nodes["b"]["dtype"] == "int64" and nodes["b"]["shape"] == [5]
    assert ins.tensors == 2


def test_inspection_is_frozen_with_a_file_verdict(tmp_path: Path) -> None:
    path = tmp_path / "s.pt"
    torch.save({"w": torch.zeros(2)}, path)
    ins = ckptguard.inspect(path)
    assert isinstance(ins, Inspection)
    assert ins.verdict is FileVerdict.SAFE
    with pytest.raises(dataclasses.FrozenInstanceError):
        ins.verdict = FileVerdict.ERROR  # type: ignore[misc]
    assert ins.to_json()["verdict"] == "safe"
