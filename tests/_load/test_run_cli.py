"""`python -m ckptguard run`: an application loads through the patch with no code edits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import factories
from tests._load import hostile

REPO = Path(__file__).resolve().parents[2]

APP = """\
import sys, torch
obj = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
print("loaded", sorted(obj))
sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
"""

SWALLOWING_APP = """\
import sys, torch
try:
    torch.load(sys.argv[1], weights_only=False)
except:  # noqa: E722 - what real applications do
    pass
print("carried on")
"""


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))
    return subprocess.run(
        [sys.executable, "-m", "ckptguard", "run", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path / "app.py"


def test_run_loads_a_checkpoint_the_default_refuses(tmp_path: Path, app: Path) -> None:
    path = factories.training_checkpoint(tmp_path / "train.pt")
    proc = _run("app.py", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "loaded ['best_acc'" in proc.stdout


def test_run_passes_the_exit_status_through(tmp_path: Path, app: Path) -> None:
    path = factories.state_dict(tmp_path / "s.pt")
    assert _run("app.py", str(path), "3", cwd=tmp_path).returncode == 3


def test_run_allow_flag(tmp_path: Path, app: Path) -> None:
    path = factories.user_enum_checkpoint(tmp_path / "enum.pt")
    refused = _run("app.py", str(path), cwd=tmp_path)
    assert refused.returncode == 2
    assert factories.USER_ENUM in refused.stderr and "--allow" in refused.stderr
    ok = _run("--allow", factories.USER_ENUM, "app.py", str(path), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_run_module_form(tmp_path: Path) -> None:
    pkg = tmp_path / "myapp"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "main.py").write_text(APP)
    path = factories.state_dict(tmp_path / "s.pt")
    proc = _run("-m", "myapp.main", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "loaded" in proc.stdout


@pytest.mark.parametrize("name", ["os.system", "stack-global-memo", "global-mutation"])
def test_run_refuses_hostile_files(tmp_path: Path, app: Path, name: str) -> None:
    marker = tmp_path / "PWNED"
    path = hostile.torch_zip_with_pickle(tmp_path / "evil.pt", hostile.PAYLOADS[name](marker))
    proc = _run("app.py", str(path), cwd=tmp_path)
    assert proc.returncode == 2
    assert "refused" in proc.stderr
    assert not marker.exists()


def test_refusal_is_visible_even_when_the_app_swallows_it(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(SWALLOWING_APP)
    path = factories.user_enum_checkpoint(tmp_path / "enum.pt")
    proc = _run("app.py", str(path), cwd=tmp_path)
    assert proc.returncode == 0
    assert "carried on" in proc.stdout
    assert "ckptguard refused a torch.load" in proc.stderr and factories.USER_ENUM in proc.stderr


def test_run_without_a_script_is_a_usage_error(tmp_path: Path) -> None:
    assert _run(cwd=tmp_path).returncode == 2
    assert _run("missing.py", cwd=tmp_path).returncode == 2
