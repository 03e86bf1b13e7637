"""The error hierarchy: every ckptguard error class lives in _errors.py, the public ones show
as ``ckptguard.X``, and every error survives pickling and copying with its state."""

from __future__ import annotations

import ast
import copy
import inspect
import pickle
import pkgutil
import traceback
from importlib import import_module
from pathlib import Path

import pytest

import ckptguard
from ckptguard import _errors
from ckptguard._errors import ConvertError, FormatError, PickleError


def _all_modules() -> list[str]:
    names = ["ckptguard"]
    for info in pkgutil.walk_packages(ckptguard.__path__, "ckptguard."):
        if info.name.startswith(
            ("ckptguard._training", "ckptguard.training", "ckptguard.__main__")
        ):
            continue  # import torch; checked below by source instead
        names.append(info.name)
    return names


def test_every_error_class_is_defined_in_errors_py() -> None:
    outside = []
    for name in _all_modules():
        module = import_module(name)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, ckptguard.Error)
                and obj.__module__ not in ("ckptguard", "ckptguard._errors")
            ):
                outside.append(f"{obj.__module__}.{obj.__qualname__}")
    assert outside == []


def test_no_module_but_errors_py_subclasses_an_error_class() -> None:
    # by source, so that a module the test above does not import cannot hide one
    error_names = {
        n for n, obj in vars(_errors).items() if inspect.isclass(obj) and issubclass(obj, Exception)
    }
    found = []
    for path in sorted(Path(ckptguard.__path__[0]).rglob("*.py")):
        if path.name == "_errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {
                    b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "")
                    for b in node.bases
                }
                if bases & error_names:
                    found.append(f"{path.name}: {node.name}")
    assert found == []


PUBLIC = ["Error", "UsageError", "PolicyError", "CheckpointError", "CorruptCheckpointError",
          "UnsafeCheckpointError", "LoadWarning", "RefusedLoadWarning"]  # fmt: skip


@pytest.mark.parametrize("name", PUBLIC)
def test_public_error_classes_show_as_ckptguard_x(name: str) -> None:
    cls = getattr(ckptguard, name)
    assert cls.__module__ == "ckptguard"
    assert repr(cls) == f"<class 'ckptguard.{name}'>"
    assert getattr(_errors, name) is cls


def test_a_traceback_names_ckptguard_usage_error() -> None:
    try:
        raise ckptguard.UsageError("bad flag", hint="ckptguard --help")
    except ckptguard.UsageError as exc:
        text = "".join(traceback.format_exception(exc))
    assert "ckptguard.UsageError: bad flag" in text
    assert "_errors" not in text.splitlines()[-2]


def _samples() -> list[ckptguard.Error]:
    unsafe = ckptguard.UnsafeCheckpointError("refused", path="m.pt", hint="ckptguard scan m.pt")
    pickle_error = PickleError("truncated", offset=7, hint="re-download")
    pickle_error.over_limit = True
    return [
        ckptguard.Error("plain", hint="h"),
        ckptguard.UsageError("usage"),
        ckptguard.PolicyError("policy", hint="fix it"),
        ckptguard.CheckpointError("ckpt", path="a.pt", format="pickle"),
        ckptguard.CorruptCheckpointError("corrupt", path="b.pt", hint="h"),
        unsafe,
        pickle_error,
        ConvertError("no weights-only form", path="c.pt"),
        FormatError("bad dtype", rule="npy-dtype", hint="re-save", format="numpy"),
    ]


@pytest.mark.parametrize("exc", _samples(), ids=lambda e: type(e).__name__)
def test_errors_pickle_and_copy_with_their_state(exc: ckptguard.Error) -> None:
    for clone in (pickle.loads(pickle.dumps(exc)), copy.copy(exc), copy.deepcopy(exc)):
        assert type(clone) is type(exc)
        assert clone.args == exc.args
        assert vars(clone) == vars(exc)
        assert str(clone) == str(exc)
