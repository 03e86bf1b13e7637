"""`make demo` (demo/run_demo.py) shows every part a new user needs, and stays fast."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_shows_scan_load_patched_run_convert_inspect() -> None:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "demo" / "run_demo.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    for shown in (
        "$ ckptguard scan demo-checkpoints",
        ">>> ckptguard.load('training_step7000.ckpt')",
        ">>> with ckptguard.patched(allow=['demo_models.DSPMode']): torch.load(...)  ->  "
        "dsp_mode = DSPMode.INFER",
        "$ ckptguard run --allow demo_models.DSPMode",
        "app: loaded ['hyper_parameters', 'state_dict']",
        "child process: UnsafeCheckpointError",
        "types now stored as plain data: demo_models.DSPMode -> its value",
        "ckptguard.load(..., restore_types=True)[...]  ->  DSPMode.INFER",
        "$ ckptguard inspect demo-checkpoints",
    ):
        assert shown in out, shown
    # the hostile file's command (`echo you have been pwned`) never ran
    assert not any(line.strip() == "you have been pwned" for line in out.splitlines())
    assert elapsed < 120  # < 60 s on an idle machine; the bound leaves room for a busy one
