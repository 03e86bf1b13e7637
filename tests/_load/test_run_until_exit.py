"""`ckptguard run` guards until the process exits, not until the main module returns.

After the main module returns, Python joins the script's non-daemon threads
(``threading._shutdown``) and then runs its atexit handlers; each can still load. The scripts
below load only after that point: a worker thread waits until the main thread has stopped
(``threading.main_thread().is_alive()`` turns false when shutdown starts).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import factories
from tests._load import hostile

REPO = Path(__file__).resolve().parents[2]

LATE_THREAD = """\
import sys, threading, time, torch

def late_load(path):
    while threading.main_thread().is_alive():  # until the main module has returned
        time.sleep(0.01)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        print("thread refused:", type(exc).__name__, flush=True)
    else:
        print("thread loaded:", sorted(obj) if isinstance(obj, dict) else type(obj), flush=True)

threading.Thread(target=late_load, args=(sys.argv[1],)).start()  # not a daemon
print("main returns", flush=True)
"""

AT_EXIT = """\
import atexit, sys, torch

def late_load(path):
    try:
        torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        print("atexit refused:", type(exc).__name__, flush=True)
    else:
        print("atexit loaded", flush=True)

atexit.register(late_load, sys.argv[1])
"""

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))


def _python(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def _evil(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "PWNED"
    return hostile.torch_zip_with_pickle(tmp_path / "evil.pt", hostile.os_system(marker)), marker


@pytest.mark.parametrize("script", [LATE_THREAD, AT_EXIT], ids=["non-daemon-thread", "atexit"])
def test_payload_is_live_without_ckptguard(tmp_path: Path, script: str) -> None:
    """Liveness: the same script under plain python really runs the payload after main."""
    (tmp_path / "app.py").write_text(script)
    evil, marker = _evil(tmp_path)
    proc = _python("app.py", str(evil), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()


@pytest.mark.parametrize("script", [LATE_THREAD, AT_EXIT], ids=["non-daemon-thread", "atexit"])
def test_loads_after_main_returns_are_refused(tmp_path: Path, script: str) -> None:
    (tmp_path / "app.py").write_text(script)
    evil, marker = _evil(tmp_path)
    proc = _python("-m", "ckptguard", "run", "app.py", str(evil), cwd=tmp_path)
    assert "refused: UnsafeCheckpointError" in proc.stdout, proc.stdout + proc.stderr
    assert "ckptguard refused a torch.load" in proc.stderr
    assert not marker.exists()


def test_benign_file_loads_from_the_late_thread(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(LATE_THREAD)
    path = factories.training_checkpoint(tmp_path / "train.pt")  # the default refuses it
    proc = _python("-m", "ckptguard", "run", "app.py", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "main returns" in proc.stdout
    assert "thread loaded: ['best_acc'" in proc.stdout, proc.stdout + proc.stderr


def test_allow_flag_applies_to_the_late_thread(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(LATE_THREAD)
    path = factories.user_enum_checkpoint(tmp_path / "enum.pt")
    refused = _python("-m", "ckptguard", "run", "app.py", str(path), cwd=tmp_path)
    assert "thread refused: UnsafeCheckpointError" in refused.stdout
    allowed = _python(
        "-m", "ckptguard", "run", "--allow", factories.USER_ENUM, "app.py", str(path),
        cwd=tmp_path,
    )  # fmt: skip
    assert "thread loaded:" in allowed.stdout, allowed.stdout + allowed.stderr


def test_a_patched_block_in_the_script_does_not_end_the_guard(tmp_path: Path) -> None:
    """The script's own `with ckptguard.patched()` ending must not lift run's guard."""
    (tmp_path / "app.py").write_text(
        "import ckptguard\nwith ckptguard.patched():\n    pass\n" + LATE_THREAD
    )
    evil, marker = _evil(tmp_path)
    proc = _python("-m", "ckptguard", "run", "app.py", str(evil), cwd=tmp_path)
    assert "thread refused: UnsafeCheckpointError" in proc.stdout, proc.stdout + proc.stderr
    assert not marker.exists()
