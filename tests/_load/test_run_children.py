"""`ckptguard run` guards the Python processes multiprocessing starts, by every start method.

A forked child inherits the patched ``torch.load``; a ``spawn`` child
(``torch.multiprocessing.spawn``, DDP launchers, CUDA code) and every child of a
``forkserver`` start a fresh interpreter that never saw the patch. Before the fix their
``torch.load`` ran the payload of a file the parent would have refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import factories
from tests._load import hostile
from tests.subproc import run_python as _python

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))
ENV.pop("CKPTGUARD_GUARD", None)

APP = """\
import multiprocessing as mp, sys
import torch

def work(path):
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        print("child refused", type(exc).__name__, flush=True)
    else:
        print("child loaded", sorted(obj) if isinstance(obj, dict) else type(obj), flush=True)

if __name__ == "__main__":
    ctx = mp.get_context(sys.argv[1])
    p = ctx.Process(target=work, args=(sys.argv[2],))
    p.start()
    p.join()
    sys.exit(p.exitcode)
"""

METHODS = ["spawn", "forkserver", "fork"]


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "PWNED-child"
    path = hostile.torch_zip_with_pickle(tmp_path / "evil.pt", hostile.os_system(marker))
    (tmp_path / "app.py").write_text(APP)
    return path, marker


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_child_payload_is_live_without_ckptguard(
    tmp_path: Path, evil: tuple[Path, Path], method: str
) -> None:
    """Liveness: the child's torch.load really runs the payload under plain python."""
    path, marker = evil
    proc = _python("app.py", method, str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert marker.exists()


@pytest.mark.parametrize("method", METHODS)
def test_run_guards_multiprocessing_children(
    tmp_path: Path, evil: tuple[Path, Path], method: str
) -> None:
    path, marker = evil
    proc = _python("-m", "ckptguard", "run", "app.py", method, str(path), cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert "child refused UnsafeCheckpointError" in proc.stdout, out
    assert not marker.exists()


def test_children_load_with_the_run_policy(tmp_path: Path) -> None:
    """The child gets the parent's --allow (and nothing more): a benign file still loads."""
    (tmp_path / "app.py").write_text(APP)
    enum = factories.user_enum_checkpoint(tmp_path / "enum.pt")  # needs --allow
    refused = _python("-m", "ckptguard", "run", "app.py", "spawn", str(enum), cwd=tmp_path)
    assert "child refused UnsafeCheckpointError" in refused.stdout, refused.stderr
    allowed = _python(
        "-m", "ckptguard", "run", "--allow", factories.USER_ENUM, "app.py", "spawn", str(enum),
        cwd=tmp_path,
    )  # fmt: skip
    assert "child loaded" in allowed.stdout, allowed.stdout + allowed.stderr
