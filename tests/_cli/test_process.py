"""A few whole-process runs: ``python -m ckptguard`` and the exit status the shell sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ckptguard
from tests._cli.conftest import Files

# The directory the tests import ckptguard from (src/ in a checkout, site-packages if installed).
SRC = Path(ckptguard.__file__).resolve().parents[1]


def _run(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("CKPTGUARD_POLICY", None)
    return subprocess.run(
        [sys.executable, "-m", "ckptguard", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_python_m_version(tmp_path: Path) -> None:
    proc = _run("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.startswith("ckptguard 0.")


def test_python_m_scan_exit_codes(files: Files, tmp_path: Path) -> None:
    assert _run("scan", files.safe, cwd=tmp_path).returncode == 0
    proc = _run("scan", files.enum, "--json", cwd=tmp_path)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["files"][0]["verdict"] == "review"
    proc = _run("scan", files.dangerous, files.truncated, tmp_path / "missing.pt", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not files.marker.exists()
    proc = _run("scan", "--bogus", cwd=tmp_path)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr


def _python(code: str, *args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    env.pop("CKPTGUARD_POLICY", None)
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


# Start-up is most of a short scan's time (the CLI is benchmarked as a whole process):
# dataclasses (the report types are records), typing, tomllib, hashlib/OpenSSL and the other
# subcommands' modules are not needed to scan, and torch and numpy never are.
_IMPORTED_BY_A_SCAN = (
    "import sys; before = set(sys.modules)\n"
    "from ckptguard._cli import main\n"
    "rc = main(['scan', *sys.argv[1:]])\n"
    "heavy = ('dataclasses', 'typing', 'tomllib', 'hashlib', 'inspect', 'concurrent', 'rich',\n"
    "         'torch', 'numpy', 'ckptguard._code._rules')\n"
    "new = set(sys.modules) - before\n"
    "print(rc, sorted(m for m in new if m.startswith(heavy)), file=sys.stderr)\n"
)


@pytest.mark.parametrize("output", ["-q", "--json", "-v"])
def test_scan_process_imports_only_what_it_needs(files: Files, tmp_path: Path, output: str) -> None:
    proc = _python(_IMPORTED_BY_A_SCAN, output, files.training, cwd=tmp_path)
    assert proc.stderr.strip() == "0 []", proc.stderr
    if output == "--json":
        assert json.loads(proc.stdout)["files"][0]["verdict"] == "safe"
