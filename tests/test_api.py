"""The package's public surface: what it exports, lists, types and versions."""

from __future__ import annotations

import inspect as pyinspect
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import ckptguard

ROOT = Path(__file__).resolve().parent.parent


def test_dir_lists_the_public_api_and_not_the_modules_imports() -> None:
    names = dir(ckptguard)
    assert names == sorted(ckptguard.__all__)
    public = ("load", "scan", "convert", "inspect", "patched", "install", "Policy", "PolicyArg",
              "ConvertResult", "Inspection", "ScanReport", "UsageError")  # fmt: skip
    assert set(public) <= set(names)
    for private in ("os", "Iterable", "Sequence", "TYPE_CHECKING", "annotations", "PathArg"):
        assert private not in names


def test_every_exported_name_resolves() -> None:
    for name in ckptguard.__all__:
        assert getattr(ckptguard, name) is not None, name
    with pytest.raises(AttributeError):
        ckptguard.no_such_name  # noqa: B018


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("Policy", "ckptguard._policy"),
        ("PolicyArg", "ckptguard._policy"),
        ("ConvertResult", "ckptguard._convert"),
        ("Inspection", "ckptguard._inspect"),
        ("ScanReport", "ckptguard._results"),
    ],
)
def test_new_exports_are_the_implementations(name: str, module: str) -> None:
    import importlib

    assert getattr(ckptguard, name) is getattr(importlib.import_module(module), name)


def _annotation(fn: object, param: str) -> str:
    return str(pyinspect.signature(fn).parameters[param].annotation)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fn",
    [ckptguard.scan, ckptguard.load, ckptguard.convert, ckptguard.inspect, ckptguard.install],
    ids=lambda f: f.__name__,
)
def test_one_policy_alias_across_the_public_functions(fn: object) -> None:
    assert _annotation(fn, "policy") == "PolicyArg"


def test_patched_takes_the_policy_alias_too() -> None:
    wrapped = ckptguard.patched.__wrapped__  # type: ignore[attr-defined]
    assert _annotation(wrapped, "policy") == "PolicyArg"


def test_the_policy_alias_is_what_the_functions_accept() -> None:
    assert typing.get_args(ckptguard.PolicyArg) == (
        str, os.PathLike[str], ckptguard.Policy, type(None)
    )  # fmt: skip


def test_public_functions_have_precise_return_types() -> None:
    assert pyinspect.signature(ckptguard.convert).return_annotation == "ConvertResult"
    inspect_returns = pyinspect.signature(ckptguard.inspect).return_annotation
    assert inspect_returns == "Inspection | list[Inspection]"
    assert pyinspect.signature(ckptguard.scan).return_annotation == "ScanReport"


def test_the_version_is_written_once() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"^version\s*=\s*[\"']", pyproject, re.M) is None
    assert 'dynamic = ["version"]' in pyproject
    assert 'version = { attr = "ckptguard._version.__version__" }' in pyproject
    assert re.fullmatch(r"\d+\.\d+\.\d+", ckptguard.__version__)
    written = [
        p.name
        for p in (ROOT / "src" / "ckptguard").rglob("*.py")
        if ckptguard.__version__ in p.read_text(encoding="utf-8")
    ]
    assert written == ["_version.py"]


def test_import_ckptguard_stays_cheap() -> None:
    code = (
        "import sys; import ckptguard; dir(ckptguard);"
        "heavy = [m for m in ('torch', 'numpy', 'dataclasses', 'typing', 'ckptguard._load',"
        " 'ckptguard._policy', 'importlib.metadata') if m in sys.modules]; print(heavy)"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]"
