"""ckptguard.load honours torch.serialization.add_safe_globals / safe_globals, never for danger."""

from __future__ import annotations

import enum
import io
import os
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import ckptguard
from ckptguard._load._engine import build_unpickler
from ckptguard._load._registry import REASON
from tests import factories
from tests._load import hostile


class Color(enum.Enum):
    RED = 1


class Other:
    pass


Alias = Color  # the same class reached under another name


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    before = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    yield
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(before)


def _enum_file(tmp_path: Path) -> Path:
    return factories.user_enum_checkpoint(tmp_path / "enum.pt")


def test_unregistered_class_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ckptguard.UnsafeCheckpointError):
        ckptguard.load(_enum_file(tmp_path))


def test_add_safe_globals_class_loads(tmp_path: Path) -> None:
    path = _enum_file(tmp_path)
    torch.serialization.add_safe_globals([factories.DSPMode])
    assert ckptguard.load(path)["hparams"]["mode"] is factories.DSPMode.INFER


def test_safe_globals_context_manager_applies_only_inside(tmp_path: Path) -> None:
    path = _enum_file(tmp_path)
    with torch.serialization.safe_globals([factories.DSPMode]):
        assert ckptguard.load(path)["hparams"]["mode"] is factories.DSPMode.INFER
    with pytest.raises(ckptguard.UnsafeCheckpointError):
        ckptguard.load(path)


def test_tuple_entry_allows_the_objects_own_name_only(tmp_path: Path) -> None:
    path = _enum_file(tmp_path)
    torch.serialization.add_safe_globals([(factories.DSPMode, "elsewhere.Mode")])
    assert ckptguard.load(path)["hparams"]["mode"] is factories.DSPMode.INFER


def test_patched_torch_load_honours_the_registry(tmp_path: Path) -> None:
    path = _enum_file(tmp_path)
    torch.serialization.add_safe_globals([factories.DSPMode])
    with ckptguard.patched():
        assert torch.load(path, weights_only=False)["hparams"]["mode"] is factories.DSPMode.INFER


def test_registered_class_is_reported_allowed_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "two.pt"
    torch.save({"c": Color.RED, "o": Other()}, path)
    torch.serialization.add_safe_globals([Color])
    with pytest.raises(ckptguard.UnsafeCheckpointError) as info:
        ckptguard.load(path)
    report = info.value.report
    assert report is not None
    verdicts = {g.qualified_name: (str(g.verdict), g.reason) for g in report.globals}
    assert verdicts[f"{__name__}.Color"] == ("allowed", REASON)
    assert verdicts[f"{__name__}.Other"][0] == "unknown"


def test_another_name_for_a_registered_class_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "alias.pt"
    data = pickle.dumps({"c": Color.RED}, protocol=2).replace(
        b"\nColor\n", b"\nAlias\n"
    )  # the file reaches the registered class through another module attribute
    assert b"Alias" in data
    hostile.torch_zip_with_pickle(path, data)
    assert pickle.loads(data)["c"] is Color.RED
    torch.serialization.add_safe_globals([Color])
    with pytest.raises(ckptguard.UnsafeCheckpointError):
        ckptguard.load(path)


def test_a_rebound_name_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "rebound.pt"
    torch.save({"c": Color.RED}, path)
    torch.serialization.add_safe_globals([Color])
    monkeypatch.setattr(sys.modules[__name__], "Color", Other)  # the name is another object now
    with pytest.raises(ckptguard.UnsafeCheckpointError):
        ckptguard.load(path)


def test_the_unpickler_checks_identity_at_import() -> None:
    key = (__name__, "Color")
    qualified = f"{__name__}.Color"
    cls = build_unpickler({key: key}, path="x.pt", overrides=(), expected={qualified: Other})
    data = pickle.dumps(Color.RED, protocol=2)
    with pytest.raises(ckptguard.UnsafeCheckpointError, match="does not reach that object"):
        cls(io.BytesIO(data)).load()
    ok = build_unpickler({key: key}, path="x.pt", overrides=(), expected={qualified: Color})
    assert ok(io.BytesIO(data)).load() is Color.RED


def test_another_split_of_the_registered_name_imports_nothing(tmp_path: Path) -> None:
    """module 'pkg.Outer' + name 'Inner' spells the registered 'pkg' + 'Outer.Inner': the
    unpickler must not import a module 'pkg.Outer' for it (nor accept another object)."""
    pkg = tmp_path / "regpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("class Outer:\n    class Inner:\n        pass\n")
    (pkg / "Outer.py").write_text(
        f"open({str(tmp_path / 'IMPORTED')!r}, 'w').close()\nclass Inner:\n    pass\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import regpkg  # type: ignore[import-not-found]

        registered = regpkg.Outer.Inner
        data = b"\x80\x02cregpkg.Outer\nInner\n)\x81."  # NEWOBJ of regpkg.Outer.Inner, split
        path = hostile.torch_zip_with_pickle(tmp_path / "split.pt", data)
        torch.serialization.add_safe_globals([registered])
        with pytest.raises(ckptguard.CheckpointError):
            ckptguard.load(path)
        assert not (tmp_path / "IMPORTED").exists()
        # the registered object's own split loads (and imports nothing either)
        ok = hostile.torch_zip_with_pickle(
            tmp_path / "own.pt", b"\x80\x02cregpkg\nOuter.Inner\n)\x81."
        )
        assert isinstance(ckptguard.load(ok), registered)
        assert not (tmp_path / "IMPORTED").exists()
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "regpkg" or m.startswith("regpkg.")]:
            del sys.modules[name]


@pytest.mark.parametrize("payload", ["os.system", "posix.system", "builtins.exec"])
def test_registered_dangerous_global_stays_refused(tmp_path: Path, payload: str) -> None:
    marker = tmp_path / "marker"
    path = hostile.torch_zip_with_pickle(tmp_path / "h.pt", hostile.PAYLOADS[payload](marker))
    torch.serialization.add_safe_globals([os.system, exec, eval, getattr])
    if hasattr(os, "posix_spawn"):
        torch.serialization.add_safe_globals([os.posix_spawn])
    with pytest.raises(ckptguard.UnsafeCheckpointError):
        ckptguard.load(path)
    with ckptguard.patched(), pytest.raises(ckptguard.UnsafeCheckpointError):
        torch.load(path, weights_only=False)
    assert not marker.exists()
