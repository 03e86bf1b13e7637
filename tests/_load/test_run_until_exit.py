"""`ckptguard run` guards until the process exits, not until the main module returns.

After the main module returns, Python joins the script's non-daemon threads
(``threading._shutdown``) and then runs its atexit handlers; each can still load. The scripts
below load only after that point: a worker thread waits until the main thread has stopped
(``threading.main_thread().is_alive()`` turns false when shutdown starts).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import factories
from tests._load import hostile
from tests.subproc import run_python as _python

REPO = Path(__file__).resolve().parents[2]

LATE = """\
import atexit, sys, threading, time, torch

def late_load(who, path):
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        print(who, "refused", path, type(exc).__name__, flush=True)
    else:
        print(who, "loaded", path, sorted(obj) if isinstance(obj, dict) else type(obj), flush=True)

def after_main(paths):
    while threading.main_thread().is_alive():  # until the main module has returned
        time.sleep(0.01)
    for path in paths:
        late_load("thread", path)

thread_paths, atexit_paths = sys.argv[1].split(","), sys.argv[2:]
threading.Thread(target=after_main, args=(thread_paths,)).start()  # not a daemon
for path in atexit_paths:
    atexit.register(late_load, "atexit", path)
print("main returns", flush=True)
"""

# The script's own patched() block, opened and closed before main returns, must not lift the
# guard `run` installed.
WITH_BLOCK = "import ckptguard\nwith ckptguard.patched():\n    pass\n" + LATE

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))


@pytest.fixture
def evil(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    """Two hostile files (one per late loader), each with its own marker."""
    out = {}
    for who in ("thread", "atexit"):
        marker = tmp_path / f"PWNED-{who}"
        path = hostile.torch_zip_with_pickle(tmp_path / f"{who}.pt", hostile.os_system(marker))
        out[who] = (path, marker)
    return out


def test_payloads_are_live_without_ckptguard(
    tmp_path: Path, evil: dict[str, tuple[Path, Path]]
) -> None:
    """Liveness: under plain python, both late loads really run their payloads."""
    (tmp_path / "app.py").write_text(LATE)
    proc = _python("app.py", str(evil["thread"][0]), str(evil["atexit"][0]), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert evil["thread"][1].exists() and evil["atexit"][1].exists()


def test_loads_after_main_returns_are_refused(
    tmp_path: Path, evil: dict[str, tuple[Path, Path]]
) -> None:
    (tmp_path / "app.py").write_text(WITH_BLOCK)
    proc = _python(
        "-m", "ckptguard", "run", "app.py", str(evil["thread"][0]), str(evil["atexit"][0]),
        cwd=tmp_path,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert f"thread refused {evil['thread'][0]} UnsafeCheckpointError" in proc.stdout, out
    assert f"atexit refused {evil['atexit'][0]} UnsafeCheckpointError" in proc.stdout, out
    assert "ckptguard refused a torch.load" in proc.stderr
    assert not evil["thread"][1].exists() and not evil["atexit"][1].exists()


def test_benign_files_load_late_with_the_run_policy(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(LATE)
    train = factories.training_checkpoint(tmp_path / "train.pt")  # the default refuses it
    enum = factories.user_enum_checkpoint(tmp_path / "enum.pt")  # needs --allow
    proc = _python("-m", "ckptguard", "run", "app.py", f"{train},{enum}", str(enum), cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert f"thread loaded {train} ['best_acc'" in proc.stdout, out
    assert f"thread refused {enum} UnsafeCheckpointError" in proc.stdout, out
    assert f"atexit refused {enum} UnsafeCheckpointError" in proc.stdout, out
    allowed = _python(
        "-m", "ckptguard", "run", "--allow", factories.USER_ENUM, "app.py", str(enum), str(enum),
        cwd=tmp_path,
    )  # fmt: skip
    assert f"thread loaded {enum}" in allowed.stdout, allowed.stdout + allowed.stderr
    assert f"atexit loaded {enum}" in allowed.stdout, allowed.stdout + allowed.stderr
