"""convert never loses an entry: keys (or set elements) that differ in the file but become equal
after conversion (an Enum member and its value, a numpy dtype and its name, a global and its
name, a path and its text...) are refused with an error that names both; nothing is written."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ckptguard._cli import main
from ckptguard._convert import read_safetensors_checkpoint
from ckptguard._convert._pipeline import convert_file
from ckptguard._errors import CheckpointError
from ckptguard._inspect._describe import inspect_file
from ckptguard._policy import default_policy
from tests import hostile_output as H
from tests._reporters.textcheck import terminal_problems
from tests.pickleasm import (
    EMPTY_DICT,
    MARK,
    NEWTRUE,
    SETITEMS,
    binfloat,
    binint1,
    call,
    glob,
    program,
    ustr,
)

# what the error must show of each colliding pair
SHOWN = {
    "enum-and-value": ("mypkg.colors.Color(1)", "1"),
    "dtype-and-name": ("numpy.dtype(", "'float32'"),
    "global-and-name": ("mypkg.models.Net", "'mypkg.models.Net'"),
    "path-and-str": ("pathlib.PurePosixPath('a')", "'a'"),
    "ordered-dict-enum": ("mypkg.colors.Color(1)", "1"),
    "set-enum": ("mypkg.colors.Color('a')", "'a'"),
}


def _write(tmp_path: Path, build: Callable[[], bytes]) -> Path:
    path = tmp_path / "src.pkl"
    path.write_bytes(build())
    return path


@pytest.mark.parametrize("to", ["pt", "safetensors"])
@pytest.mark.parametrize("kind", sorted(H.COLLISIONS))
def test_keys_that_collide_after_conversion_are_refused(tmp_path: Path, kind: str, to: str) -> None:
    src = _write(tmp_path, H.COLLISIONS[kind])
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(CheckpointError) as info:
        convert_file(str(src), str(tmp_path / f"out.{to}"), to=to, policy=default_policy())
    text = info.value.diagnostics()
    assert "become equal after conversion" in text and "one entry would be lost" in text
    for shown in SHOWN[kind]:
        assert shown in text, text
    assert info.value.path == str(src) and info.value.hint and "ckptguard" in info.value.hint
    assert sorted(os.listdir(tmp_path)) == before
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest


def test_the_cli_refuses_a_collision_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(tmp_path, H.enum_key_and_value)
    assert main(["convert", str(src), str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err
    assert str(src) in err and "mypkg.colors.Color(1) and 1" in err and "hint:" in err
    assert terminal_problems(err) == []
    assert not (tmp_path / "out.pt").exists()


def test_keys_that_stay_distinct_convert_and_keep_every_entry(tmp_path: Path) -> None:
    data = program(
        EMPTY_DICT,
        MARK,
        call(glob("mypkg.colors", "Color"), binint1(1)),
        ustr("enum"),
        binint1(2),
        ustr("int"),
        SETITEMS,
    )
    src = tmp_path / "src.pkl"
    src.write_bytes(data)
    dst = tmp_path / "out.pt"
    convert_file(str(src), str(dst), policy=default_policy())
    out = torch.load(dst, weights_only=True)
    assert {k: v for k, v in out.items() if k != "__ckptguard__"} == {1: "enum", 2: "int"}


def test_keys_equal_in_the_file_itself_merge_as_the_loader_merges_them(tmp_path: Path) -> None:
    # {1: "a", 1.0: "b", True: "c"} is one entry for pickle.loads too: nothing is lost by
    # conversion, so it is not refused
    data = program(
        EMPTY_DICT, MARK, binint1(1), ustr("a"), binfloat(1.0), ustr("b"),
        NEWTRUE, ustr("c"), SETITEMS,
    )  # fmt: skip
    src = tmp_path / "src.pkl"
    src.write_bytes(data)
    dst = tmp_path / "out.pt"
    convert_file(str(src), str(dst), policy=default_policy())
    assert torch.load(dst, weights_only=True) == pickle.loads(data) == {1: "c"}


@pytest.mark.parametrize("kind", sorted(H.COLLISIONS))
def test_inspect_shows_both_colliding_entries(tmp_path: Path, kind: str) -> None:
    src = _write(tmp_path, H.COLLISIONS[kind])
    ins = inspect_file(str(src), policy=default_policy())
    assert ins.tree is not None
    node = ins.tree
    if kind == "set-enum":
        node = node["items"][0]["value"]
    assert node["len"] == 2, node


def test_the_same_key_object_twice_is_not_a_collision(tmp_path: Path) -> None:
    # SETITEMS with one memoized Enum member as the key twice: one entry for pickle too
    data = program(
        EMPTY_DICT,
        MARK,
        call(glob("mypkg.colors", "Color"), binint1(1)),
        b"q\x01",  # BINPUT 1
        ustr("first"),
        b"h\x01",  # BINGET 1
        ustr("second"),
        SETITEMS,
    )
    src = tmp_path / "src.pkl"
    src.write_bytes(data)
    dst = tmp_path / "out.pt"
    convert_file(str(src), str(dst), policy=default_policy())
    out = torch.load(dst, weights_only=True)
    assert {k: v for k, v in out.items() if k != "__ckptguard__"} == {1: "second"}


_STUBS = """
import enum, pickle, sys, types
mods = {name: types.ModuleType(name) for name in ("mypkg", "mypkg.colors", "mypkg.models")}
class Color(enum.Enum):
    R = 1
    A = "a"
class Net:
    pass
Color.__module__ = Net.__module__ = "x"
mods["mypkg.colors"].Color = Color
mods["mypkg.models"].Net = Net
sys.modules.update(mods)
obj = pickle.loads(open(sys.argv[1], "rb").read())
node = obj["s"] if isinstance(obj, dict) and "s" in obj else obj
print(len(node))
"""


@pytest.mark.parametrize("kind", sorted(H.COLLISIONS))
def test_the_real_loader_keeps_both_entries(tmp_path: Path, kind: str) -> None:
    """Liveness of the samples: pickle.loads, with the classes importable, gives two entries
    (so a conversion that merged them would really lose one)."""
    src = _write(tmp_path, H.COLLISIONS[kind])
    proc = subprocess.run(
        [sys.executable, "-c", _STUBS, str(src)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "2"


@pytest.mark.parametrize("to", ["pt", "safetensors"])
def test_a_torch_dtype_key_and_its_name_both_stay(tmp_path: Path, to: str) -> None:
    # torch dtypes are kept as torch dtypes (weights-only table), so they never become their
    # name: no collision, both entries come back
    src = tmp_path / "src.pt"
    torch.save({torch.float32: "dtype", "float32": "name", torch.int8: "int8"}, src)
    dst = tmp_path / f"out.{to}"
    convert_file(str(src), str(dst), to=to, policy=default_policy())
    back = (
        torch.load(dst, weights_only=True) if to == "pt" else read_safetensors_checkpoint(str(dst))
    )
    assert back == {torch.float32: "dtype", "float32": "name", torch.int8: "int8"}
