"""Run a Python child of the test process with this checkout's ckptguard and tests importable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))
ENV.pop("CKPTGUARD_GUARD", None)  # a guard inherited from an outer `ckptguard run`


def run_python(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in ``cwd``; output captured as text; three minutes at most."""
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=ENV if env is None else env,
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
