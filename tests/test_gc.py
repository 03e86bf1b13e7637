"""gc_paused: the collector is off inside, and back as it was afterwards, whatever happens."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

import ckptguard
from ckptguard._gc import gc_paused
from tests import factories as F


@pytest.fixture
def gc_state() -> object:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("gc_state")
@pytest.mark.parametrize("enabled", [True, False])
def test_paused_inside_and_restored_after_even_on_errors(enabled: bool) -> None:
    gc.enable() if enabled else gc.disable()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # nested
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled() is enabled
    with pytest.raises(KeyError), gc_paused():
        raise KeyError("x")
    assert gc.isenabled() is enabled


@pytest.mark.usefixtures("gc_state")
def test_load_convert_scan_and_inspect_leave_the_collector_on(tmp_path: Path) -> None:
    gc.enable()
    good = F.training_checkpoint(tmp_path / "t.pt")
    assert ckptguard.load(good)["step"] is not None
    assert gc.isenabled()
    enum = F.user_enum_checkpoint(tmp_path / "e.pt")
    with pytest.raises(ckptguard.UnsafeCheckpointError):
        ckptguard.load(enum)
    assert gc.isenabled()
    ckptguard.convert(enum, tmp_path / "out.pt")
    assert gc.isenabled()
    assert ckptguard.scan(tmp_path).files
    assert gc.isenabled()
    assert ckptguard.inspect(good) is not None
    assert gc.isenabled()
