"""The shipped policy file is parsed once and then read from a cache beside it, like a .pyc."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from ckptguard._policy import _toml
from ckptguard._policy._data import POLICY_FILE, load_shipped_toml
from ckptguard._policy._toml import parse_simple_toml


@pytest.fixture
def policy_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    target = tmp_path / "data" / "policy.toml"
    target.parent.mkdir()
    shutil.copy(POLICY_FILE, target)
    return target


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def counting(text: str) -> object:
        calls.append(1)
        return parse_simple_toml(text)

    monkeypatch.setattr(_toml, "parse_simple_toml", counting)
    return calls


def test_the_parsed_policy_is_cached_and_reused(
    policy_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parses = _count_parses(monkeypatch)
    first = load_shipped_toml(str(policy_copy))
    assert len(parses) == 1
    assert list((policy_copy.parent / "__pycache__").glob("policy.toml.*.marshal"))
    assert load_shipped_toml(str(policy_copy)) == first
    assert len(parses) == 1
    assert first == parse_simple_toml(policy_copy.read_text(encoding="utf-8"))


def test_an_edited_policy_file_is_parsed_again(
    policy_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parses = _count_parses(monkeypatch)
    load_shipped_toml(str(policy_copy))
    text = policy_copy.read_text(encoding="utf-8")
    policy_copy.write_text(
        text.replace("\n[dangerous.globals]\n", '\n[dangerous.globals]\n"x.y" = "test entry"\n'),
        encoding="utf-8",
    )
    os.utime(policy_copy, ns=(1, 1))  # even with an old timestamp: the size changed
    doc = load_shipped_toml(str(policy_copy))
    assert len(parses) == 2
    assert doc["dangerous"]["globals"]["x.y"] == "test entry"


@pytest.mark.parametrize(
    "garbage", [b"", b"not marshal", b"\xe9\x00\x00\x00", b"\xa9\x02\xe9\x01\xe9\x02"]
)
def test_a_damaged_cache_is_ignored_and_replaced(
    policy_copy: Path, monkeypatch: pytest.MonkeyPatch, garbage: bytes
) -> None:
    good = load_shipped_toml(str(policy_copy))
    (cache,) = (policy_copy.parent / "__pycache__").glob("*.marshal")
    cache.write_bytes(garbage)
    parses = _count_parses(monkeypatch)
    assert load_shipped_toml(str(policy_copy)) == good
    assert len(parses) == 1
    assert cache.read_bytes() != garbage


def test_a_cache_holding_other_types_is_ignored(
    policy_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import marshal

    good = load_shipped_toml(str(policy_copy))
    (cache,) = (policy_copy.parent / "__pycache__").glob("*.marshal")
    key, _ = marshal.loads(cache.read_bytes())
    cache.write_bytes(marshal.dumps((key, {"dangerous": {"globals": {"os.system": 1}}})))
    assert load_shipped_toml(str(policy_copy)) == good


def test_no_cache_is_written_when_python_writes_no_bytecode(
    policy_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    assert load_shipped_toml(str(policy_copy))["dangerous"]
    assert not (policy_copy.parent / "__pycache__").exists()


def test_an_unwritable_cache_location_still_loads(
    policy_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (policy_copy.parent / "__pycache__").write_text("a file where the directory would be")
    parses = _count_parses(monkeypatch)
    good = load_shipped_toml(str(policy_copy))
    assert load_shipped_toml(str(policy_copy)) == good
    assert len(parses) == 2  # parsed at every start, never an error
    assert {p.name for p in policy_copy.parent.iterdir()} == {"policy.toml", "__pycache__"}
