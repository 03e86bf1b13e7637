"""The point of --fix: an application whose checkpoints hold more than tensors fails under
PyTorch >= 2.6 with its torch.load calls, and runs after `ckptguard code --fix`, with the
policy-enforcing ckptguard.load (and without any warning). Runs the app in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ckptguard._cli import main

SRC = Path(__file__).resolve().parents[2] / "src"

APP = """\
import argparse

import torch


def save(path):
    state = {"model": torch.nn.Linear(2, 2).state_dict(), "epoch": 3}
    state["args"] = argparse.Namespace(lr=0.1)  # what breaks weights_only=True
    torch.save(state, path)


def resume(path, **kw):
    ckpt = torch.load(
        path,
        map_location="cpu",  # CPU first
        weights_only=False,
        **kw,
    )
    return ckpt["epoch"], ckpt["args"].lr


def evaluate(path):
    return sorted(torch.load(path, "cpu"))


if __name__ == "__main__":
    save("c.pt")
    print(resume("c.pt"), resume("c.pt", mmap=True), evaluate("c.pt"))
"""


def _run(app: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-W", "error", str(app)],
        cwd=app.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_fixed_app_loads_what_the_original_could_not(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    app = tmp_path / "app.py"
    app.write_text(APP)
    before = _run(app)
    if tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 6):
        assert before.returncode != 0
        assert "Weights only load failed" in before.stderr
    assert main(["code", str(app), "--fix"]) == 0
    after = _run(app)
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip() == "(3, 0.1) (3, 0.1) ['args', 'epoch', 'model']"
