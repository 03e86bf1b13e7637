"""CKG301, and --fix on code that registered its own classes with torch's add_safe_globals.

The user's situation: a code base calls ``add_safe_globals([DSPMode])`` (and registers numpy
internals, as PyTorch 2.6's error message suggests), then ``torch.load(p)``. It works, and it
must still work after ``ckptguard code --fix`` rewrote the loads to ``ckptguard.load``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ckptguard._cli import main

SRC = Path(__file__).resolve().parents[2] / "src"

MODES = """\
import enum


class DSPMode(enum.Enum):
    NONE = "none"
    TRAIN_INFER = "train_infer"
"""

APP = """\
import numpy as np
import torch
from torch.serialization import safe_globals

from project.modes import DSPMode

torch.serialization.add_safe_globals(
    [DSPMode, np.core.multiarray.scalar, np.dtype, type(np.dtype(np.int64))]
)


def save(p):
    torch.save({"w": torch.ones(2), "mode": DSPMode.TRAIN_INFER, "step": np.int64(7)}, p)


def resume(p):
    ckpt = torch.load(p)
    return ckpt["mode"] == DSPMode.TRAIN_INFER, int(ckpt["step"])


def resume_scoped(p):
    torch.serialization.clear_safe_globals()
    with safe_globals([DSPMode, np.core.multiarray.scalar, np.dtype, type(np.dtype(np.int64))]):
        return torch.load(p)["mode"] is DSPMode.TRAIN_INFER


if __name__ == "__main__":
    save("c.pt")
    print(resume("c.pt"), resume_scoped("c.pt"))
"""


def _project(tmp_path: Path) -> Path:
    pkg = tmp_path / "project"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "modes.py").write_text(MODES)
    (pkg / "app.py").write_text(APP)
    return pkg / "app.py"


def _run(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(tmp_path)])}
    env.pop("CKPTGUARD_GUARD", None)
    return subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-m", "project.app"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_code_base_with_add_safe_globals_still_runs_after_fix(tmp_path: Path) -> None:
    app = _project(tmp_path)
    before = _run(tmp_path)
    assert before.returncode == 0, before.stderr
    assert before.stdout.strip() == "(True, 7) True"
    assert main(["code", str(app), "--fix"]) == 0  # only notes remain: exit 0
    fixed = app.read_text()
    assert "ckptguard.load(p)" in fixed and "torch.load(" not in fixed
    assert "[DSPMode, np.core" in fixed  # the registration is kept: it still counts
    after = _run(tmp_path)
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip() == "(True, 7) True"


def test_numpy_internals_registered_are_reported_as_not_needed(
    tmp_path: Path, capsys: object
) -> None:
    app = _project(tmp_path)
    assert main(["code", str(app), "--json"]) == 1  # the torch.load calls are findings
    out = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
    notes = [f for f in out["findings"] if f["rule"] == "CKG301"]
    named = sorted(f["message"].split(" ", 1)[0] for f in notes)
    assert named == ["a", "a", "numpy.core.multiarray.scalar", "numpy.core.multiarray.scalar",
                     "numpy.dtype", "numpy.dtype"]  # fmt: skip
    assert not any("DSPMode" in f["message"] for f in notes)  # the user's own class is needed


def test_notes_alone_exit_zero(tmp_path: Path) -> None:
    code = tmp_path / "reg.py"
    code.write_text(
        "import numpy\nimport torch\n"
        "torch.serialization.add_safe_globals([numpy.dtype, (numpy.ndarray, 'numpy.ndarray')])\n"
    )
    assert main(["code", str(code)]) == 0


def test_user_classes_and_dangerous_names_are_not_reported(tmp_path: Path) -> None:
    code = tmp_path / "reg.py"
    code.write_text(
        "import os\nimport torch\nfrom mine import Thing\n"
        "torch.serialization.add_safe_globals([Thing, os.system, eval])\n"
    )
    assert main(["code", str(code)]) == 0
