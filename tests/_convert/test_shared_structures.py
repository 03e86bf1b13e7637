"""Shared sub-lists/dicts and cycles: inspect and convert are linear in the pickle however
often a value is shared (a few hundred bytes describe 2**40 paths). convert to .pt keeps the
sharing (the new pickle memoizes shared containers, as pickle does); safetensors metadata
cannot share, so convert --to safetensors writes out small expansions and refuses past a bound
with a clear error, leaving nothing behind."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open

from ckptguard._convert import _safetensors as S
from ckptguard._convert import read_safetensors_checkpoint
from ckptguard._convert._pipeline import convert_file
from ckptguard._convert._plain import MAX_KEY_VALUES, Converter
from ckptguard._errors import CheckpointError, ConvertError
from ckptguard._inspect._describe import inspect_file
from ckptguard._pickle._tree import build_tree
from ckptguard._policy import default_policy
from tests import hostile_output as H

DEPTH = 40  # 2**40 paths: anything that expands them never finishes

BUILDERS: dict[str, Callable[[int], bytes]] = {
    "lists": H.shared_lists,
    "dicts": H.shared_dicts,
}


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "src.pkl"
    path.write_bytes(data)
    return path


def _walk(node: dict[str, Any], seen: list[dict[str, Any]]) -> None:
    seen.append(node)
    for it in node.get("items", ()):
        _walk(it["value"], seen)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_inspect_shows_each_shared_container_once(tmp_path: Path, kind: str) -> None:
    src = _write(tmp_path, BUILDERS[kind](DEPTH))
    ins = inspect_file(str(src), policy=default_policy())
    assert ins.error is None and ins.tree is not None
    nodes: list[dict[str, Any]] = []
    _walk(ins.tree, nodes)
    refs = [n for n in nodes if n["type"] == "ref"]
    containers = [n for n in nodes if n["type"] in ("list", "dict")]
    assert len(refs) == DEPTH  # each level's second reference
    assert len(containers) == DEPTH + 2  # each level once, plus the top dict
    assert all(r["ref"].startswith("/model") for r in refs)


def test_inspect_shows_a_cycle_as_a_reference(tmp_path: Path) -> None:
    ins = inspect_file(str(_write(tmp_path, H.list_cycle())), policy=default_policy())
    assert ins.tree is not None
    model = ins.tree["items"][0]["value"]
    assert [it["value"] for it in model["items"][1:]] == [
        {"type": "ref", "ref": "/model", "what": "same as /model"}
    ] * 2


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_convert_to_pt_keeps_the_sharing(tmp_path: Path, kind: str) -> None:
    src = _write(tmp_path, BUILDERS[kind](DEPTH))
    dst = tmp_path / "out.pt"
    convert_file(str(src), str(dst), policy=default_policy())
    assert dst.stat().st_size < 64 * 1024
    out = torch.load(dst, weights_only=True)
    node = out["model"]
    for _ in range(DEPTH):
        a, b = (node[0], node[1]) if kind == "lists" else (node["a"], node["b"])
        assert a is b
        node = a


def test_convert_to_pt_keeps_a_cycle(tmp_path: Path) -> None:
    src = _write(tmp_path, H.list_cycle())
    dst = tmp_path / "out.pt"
    convert_file(str(src), str(dst), policy=default_policy())
    model = torch.load(dst, weights_only=True)["model"]
    assert model[0] == 1 and model[1] is model and model[2] is model


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_convert_to_safetensors_refuses_a_huge_expansion(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(S, "MAX_VALUES", 20_000)  # the same walk, stopped sooner (test time)
    src = _write(tmp_path, BUILDERS[kind](DEPTH))
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(CheckpointError) as info:
        convert_file(
            str(src), str(tmp_path / "out.safetensors"), to="safetensors", policy=default_policy()
        )
    text = info.value.diagnostics()
    assert f"more than {S.MAX_VALUES} values" in text and "cannot share" in text
    assert info.value.path == str(src)
    assert "ckptguard convert SRC DST.pt" in text  # the next command
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_convert_to_safetensors_writes_a_small_expansion(tmp_path: Path, kind: str) -> None:
    src = _write(tmp_path, BUILDERS[kind](8))
    dst = tmp_path / "out.safetensors"
    convert_file(str(src), str(dst), to="safetensors", policy=default_policy())
    back: Any = read_safetensors_checkpoint(str(dst))
    assert back == pickle.loads(BUILDERS[kind](8))  # our own benign bytes


def test_convert_to_safetensors_refuses_a_cycle(tmp_path: Path) -> None:
    src = _write(tmp_path, H.list_cycle())
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(CheckpointError, match="contains itself"):
        convert_file(
            str(src), str(tmp_path / "out.safetensors"), to="safetensors", policy=default_policy()
        )
    assert sorted(os.listdir(tmp_path)) == before


def test_a_shared_tuple_chain_key_is_refused_without_hashing_it() -> None:
    tree = build_tree(H.tuple_chain_key(DEPTH))
    with pytest.raises(ConvertError, match=f"more than {MAX_KEY_VALUES} values"):
        Converter({}).run(tree.root)
    from ckptguard._inspect._describer import Describer
    from ckptguard._policy import default_policy

    lenient = Describer({}, policy=default_policy()).run(tree.root).root  # a marker key
    assert len(lenient) == 1 and "more than" in repr(next(iter(lenient)))


def test_a_small_shared_tuple_key_converts() -> None:
    tree = build_tree(H.tuple_chain_key(5))
    root = Converter({}).run(tree.root).root
    (key,) = root
    assert key[0] is key[1] and len(repr(key)) > 2**5


def _count_segment_text(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the characters of every path segment made (the work paths cost)."""
    from ckptguard._convert import _plain

    made = [0]
    real = _plain._seg

    def seg(key: Any) -> str:
        text = real(key)
        made[0] += len(text)
        return text

    monkeypatch.setattr(_plain, "_seg", seg)
    return made


def test_long_keys_above_many_values_cost_no_path_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100 dicts deep under one 20,000-character key, then 100,000 references to a shared
    # list: building each reference's path would make 100,000 strings of 2 MB each
    data = H.long_key_paths(100, 100_000, 20_000)
    src = _write(tmp_path, data)
    made = _count_segment_text(monkeypatch)
    dst = tmp_path / "out.pt"
    convert_file(str(src), str(dst), policy=default_policy())
    ins = inspect_file(str(src), policy=default_policy())
    assert ins.error is None
    assert made[0] <= 2 * len(data)
    assert dst.stat().st_size <= len(data) + 64 * 1024  # the key is written once, too
    out = torch.load(dst, weights_only=True)
    node = out
    for _ in range(101):
        (node,) = node.values()
    assert len(node) == 100_000 and node[0] is node[-1]


def test_a_recorded_type_under_too_long_a_path_is_refused(tmp_path: Path) -> None:
    data = H.long_key_paths(100, 10, 20_000, enum_at_bottom=True)
    src = _write(tmp_path, data)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(CheckpointError, match="longer than 65536 characters") as info:
        convert_file(str(src), str(tmp_path / "out.pt"), policy=default_policy())
    assert info.value.hint and "ckptguard.load" in info.value.hint
    assert len(info.value.diagnostics()) < 2000  # the path is not printed whole
    assert sorted(os.listdir(tmp_path)) == before
    ins = inspect_file(str(src), policy=default_policy())  # inspect shows it, untyped
    assert ins.error is None and ins.tree is not None


def test_a_config_whose_content_shares_is_converted_once(tmp_path: Path) -> None:
    src = _write(tmp_path, H.shared_config(DEPTH))
    dst = tmp_path / "out.pt"
    convert_file(str(src), str(dst), policy=default_policy())
    node = torch.load(dst, weights_only=True)["cfg"]
    for _ in range(DEPTH):
        assert node["a"] is node["b"]
        node = node["a"]
    assert node == {"x": 1}
    ins = inspect_file(str(src), policy=default_policy())
    assert ins.tree is not None
    assert ins.tree["items"][0]["value"]["original_type"] == "omegaconf.dictconfig.DictConfig"


def test_safetensors_names_from_long_keys_stay_short_and_unique(tmp_path: Path) -> None:
    long_key = "k" * 5000
    obj = {long_key: {"a": torch.ones(2), "b": torch.zeros(3)}, "x": {long_key: torch.ones(1)}}
    src = tmp_path / "src.pt"
    torch.save(obj, src)
    dst = tmp_path / "out.safetensors"
    convert_file(str(src), str(dst), to="safetensors", policy=default_policy())
    with safe_open(str(dst), "pt") as f:
        names = list(f.keys())
    assert len(names) == 3 and all(len(n) <= 600 for n in names)
    back: Any = read_safetensors_checkpoint(str(dst))
    assert torch.equal(back[long_key]["b"], torch.zeros(3))
    assert torch.equal(back["x"][long_key], torch.ones(1))
