"""The guard crosses the process boundary: subprocess.run([sys.executable, 'extract.py']) children.

The user's situation (RVC extracts HuBERT features this way): the application starts a
Python child that calls ``torch.load(..., weights_only=False)``. Without the guard a hostile
file runs its payload there; under ``ckptguard run`` (or ``patched(children=True)``) the child
loads through ckptguard with the parent's policy: hostile refused, benign loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ckptguard._load._children import ENV as GUARD_ENV
from ckptguard._load._children import HOOK_DIR
from tests._load import hostile
from tests.subproc import ENV
from tests.subproc import run_python as _python

pytestmark = pytest.mark.slow

MODES = """\
import enum


class Mode(enum.Enum):
    TRAIN_INFER = "train_infer"
"""

MAIN = """\
import subprocess, sys
print("main __file__", __file__, flush=True)
r = subprocess.run([sys.executable, "extract.py", sys.argv[1]])
sys.exit(r.returncode)
"""

EXTRACT = """\
import sys
import torch
try:
    obj = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
except Exception as exc:
    print("child refused", type(exc).__name__, flush=True)
else:
    print("child loaded", obj["mode"] if isinstance(obj, dict) else obj, flush=True)
"""

PATCHED_MAIN = """\
import os, subprocess, sys
import ckptguard

with ckptguard.patched(allow=["modes.Mode"], children=True):
    r = subprocess.run([sys.executable, "extract.py", sys.argv[1]])
print("env after block", os.environ.get("CKPTGUARD_GUARD"), flush=True)
sys.exit(r.returncode)
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "modes.py").write_text(MODES)
    (tmp_path / "main.py").write_text(MAIN)
    (tmp_path / "extract.py").write_text(EXTRACT)
    return tmp_path


def _evil(app: Path) -> tuple[Path, Path]:
    marker = app / "PWNED-subprocess"
    return hostile.torch_zip_with_pickle(app / "evil.pt", hostile.os_system(marker)), marker


def _benign(app: Path) -> Path:
    code = (
        "import torch, modes\n"
        "torch.save({'w': torch.ones(2), 'mode': modes.Mode.TRAIN_INFER}, 'good.pt')\n"
    )
    proc = _python("-c", code, cwd=app)
    assert proc.returncode == 0, proc.stderr
    return app / "good.pt"


def test_subprocess_payload_is_live_without_ckptguard(app: Path) -> None:
    """Liveness: plain python, the child's torch.load(weights_only=False) runs the payload."""
    path, marker = _evil(app)
    proc = _python("main.py", str(path), cwd=app)
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()


def test_run_guards_a_subprocess_child(app: Path) -> None:
    path, marker = _evil(app)
    proc = _python("-m", "ckptguard", "run", "main.py", str(path), cwd=app)
    assert "child refused UnsafeCheckpointError" in proc.stdout, proc.stdout + proc.stderr
    assert not marker.exists()


def test_run_child_loads_a_benign_file_with_the_run_allow_list(app: Path) -> None:
    good = _benign(app)
    refused = _python("-m", "ckptguard", "run", "main.py", str(good), cwd=app)
    assert "child refused UnsafeCheckpointError" in refused.stdout, refused.stderr
    allowed = _python("-m", "ckptguard", "run", "--allow", "modes.Mode", "main.py", str(good),
                      cwd=app)  # fmt: skip
    assert "child loaded Mode.TRAIN_INFER" in allowed.stdout, allowed.stdout + allowed.stderr


def test_run_makes_the_script_file_absolute(app: Path) -> None:
    proc = _python("-m", "ckptguard", "run", "main.py", "nothing.pt", cwd=app)
    assert f"main __file__ {app / 'main.py'}" in proc.stdout, proc.stdout + proc.stderr


def test_patched_children_guards_subprocesses_and_restores_the_environment(app: Path) -> None:
    (app / "main.py").write_text(PATCHED_MAIN)
    path, marker = _evil(app)
    proc = _python("main.py", str(path), cwd=app)
    assert "child refused UnsafeCheckpointError" in proc.stdout, proc.stdout + proc.stderr
    assert "env after block None" in proc.stdout
    assert not marker.exists()
    good = _benign(app)
    proc = _python("main.py", str(good), cwd=app)
    assert "child loaded Mode.TRAIN_INFER" in proc.stdout, proc.stdout + proc.stderr


def test_an_existing_sitecustomize_still_runs(app: Path) -> None:
    site = app / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os\nopen(os.path.join(os.getcwd(), 'SITECUSTOMIZE-RAN'), 'a').write('x')\n"
    )
    path, marker = _evil(app)
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(site), ENV["PYTHONPATH"]])}
    proc = _python("-m", "ckptguard", "run", "main.py", str(path), cwd=app, env=env)
    assert "child refused UnsafeCheckpointError" in proc.stdout, proc.stdout + proc.stderr
    assert not marker.exists()
    # the run process and its child each ran the user's sitecustomize once
    assert (app / "SITECUSTOMIZE-RAN").read_text() == "xx"


def test_an_unreadable_guard_blocks_torch_in_the_child(app: Path) -> None:
    """Fail closed: the guard was asked for and cannot be installed -> no torch at all."""
    path, marker = _evil(app)
    env = {
        **ENV,
        GUARD_ENV: '{"version": 1, "profiles": ["nope"]}',
        "PYTHONPATH": os.pathsep.join([HOOK_DIR, ENV["PYTHONPATH"]]),
    }
    proc = _python("extract.py", str(path), cwd=app, env=env)
    assert proc.returncode != 0
    assert "torch is blocked in this process" in proc.stderr
    assert not marker.exists()


def test_a_child_without_ckptguard_cannot_import_torch(app: Path) -> None:
    """An interpreter where ckptguard cannot be imported: the hook blocks torch there."""
    from ckptguard._load._children import settings_json
    from ckptguard._policy import default_policy

    path, marker = _evil(app)
    broken = app / "broken"
    (broken / "ckptguard").mkdir(parents=True)
    (broken / "ckptguard" / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {
        **ENV,
        GUARD_ENV: settings_json(default_policy()),
        "PYTHONPATH": os.pathsep.join([HOOK_DIR, str(broken)]),
    }
    proc = _python("extract.py", str(path), cwd=app, env=env)
    assert proc.returncode != 0
    assert "torch is blocked in this process" in proc.stderr, proc.stderr
    assert "ckptguard is not importable here" in proc.stderr
    assert not marker.exists()


def test_the_hook_costs_nothing_without_the_variable(app: Path) -> None:
    env = {k: v for k, v in ENV.items() if k != GUARD_ENV}
    env["PYTHONPATH"] = os.pathsep.join([HOOK_DIR, ENV["PYTHONPATH"]])
    proc = _python("-c", "import sys; print('ckptguard' in sys.modules)", cwd=app, env=env)
    assert proc.stdout.strip() == "False", proc.stderr


SPAWN_MAIN = """\
import multiprocessing as mp, sys
import ckptguard
import extract_fn

if __name__ == "__main__":
    with ckptguard.patched(children=True):
        p = mp.get_context("spawn").Process(target=extract_fn.work, args=(sys.argv[1],))
        p.start()
        p.join()
    sys.exit(p.exitcode)
"""

EXTRACT_FN = """\
import torch

def work(path):
    try:
        torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        print("child refused", type(exc).__name__, flush=True)
    else:
        print("child loaded", flush=True)
"""


def test_patched_children_guards_a_spawn_mode_child(app: Path) -> None:
    (app / "main.py").write_text(SPAWN_MAIN)
    (app / "extract_fn.py").write_text(EXTRACT_FN)
    path, marker = _evil(app)
    proc = _python("main.py", str(path), cwd=app)
    assert "child refused UnsafeCheckpointError" in proc.stdout, proc.stdout + proc.stderr
    assert not marker.exists()


def test_run_prints_an_unhandled_refusal_once(app: Path) -> None:
    path, marker = _evil(app)
    proc = _python("-m", "ckptguard", "run", "extract_fn_raises.py", str(path), cwd=app)
    assert proc.returncode == 2
    assert proc.stderr.count("the file needs 1 global") == 1, proc.stderr
    assert "the application stopped on the refused load above" in proc.stderr
    assert not marker.exists()


@pytest.fixture(autouse=True)
def _raising_app(app: Path) -> None:
    (app / "extract_fn_raises.py").write_text(
        "import sys, torch\ntorch.load(sys.argv[1], weights_only=False)\n"
    )
