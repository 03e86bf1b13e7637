"""ckptguard in a minute: make a few typical checkpoints, scan them, load them, guard an
application (patched / run, child processes too), convert and inspect them.

Run it with ``make demo`` (or ``python demo/run_demo.py`` with torch and ckptguard installed).
It writes its example files into ``demo-checkpoints/`` and never loads the hostile one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import torch
from demo_models import DSPMode  # demo/ is on sys.path when this script runs

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "demo-checkpoints"
REL = OUT.relative_to(ROOT).as_posix()

BOLD = "\x1b[1m" if sys.stdout.isatty() and not os.environ.get("NO_COLOR") else ""
RESET = "\x1b[0m" if BOLD else ""

EXIT_MEANING = {
    0: "every file is safe",
    1: "something needs review or is dangerous",
    2: "a file could not be scanned",
}


def say(text: str) -> None:
    print(f"\n{BOLD}{textwrap.fill(text, 96)}{RESET}", flush=True)


# ---------------------------------------------------------------------------------------------
# (a) example checkpoints


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.Linear(8, 4)
    )


def make_state_dict(path: Path) -> None:
    torch.save(_model().state_dict(), path)


def make_training_checkpoint(path: Path) -> None:
    """Model + optimizer state + numpy RNG state + numpy scalars: fails weights_only on 2.6+."""
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    np.random.seed(0)
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "epoch": 7,
            "step": np.int64(7000),
            "val_loss": np.float64(0.0314),
            "numpy_rng": np.random.get_state(),
        },
        path,
    )


def make_user_enum_checkpoint(path: Path) -> None:
    """Hyper-parameters holding the user's own Enum (the deepafx-st DSPMode case)."""
    torch.save(
        {
            "state_dict": _model().state_dict(),
            "hyper_parameters": {"dsp_mode": DSPMode.INFER, "lr": 3e-4},
        },
        path,
    )


def hostile_pickle(command: str) -> bytes:
    """A pickle whose REDUCE would call os.system(command), written opcode by opcode.

    PROTO 2 | GLOBAL 'os system' | BINUNICODE command | TUPLE1 | REDUCE | STOP.
    Never unpickle this; ckptguard only reads it.
    """
    cmd = command.encode()
    return (
        b"\x80\x02"  # PROTO 2
        + b"cos\nsystem\n"  # GLOBAL os.system
        + b"X"
        + struct.pack("<I", len(cmd))
        + cmd  # BINUNICODE command
        + b"\x85"  # TUPLE1
        + b"R"  # REDUCE: os.system(command)
        + b"."  # STOP
    )


LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:6b1f3c9f0b2d4b0a9a3e0f8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e\n"
    "size 1336934528\n"
)


def generate() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    make_state_dict(OUT / "resnet_state_dict.pt")
    make_training_checkpoint(OUT / "training_step7000.ckpt")
    make_user_enum_checkpoint(OUT / "deepafx_dspmode.ckpt")
    (OUT / "downloaded_model.pt").write_bytes(hostile_pickle("echo you have been pwned"))
    (OUT / "model.ckpt").write_text(LFS_POINTER)  # `git clone` without git-lfs
    (OUT / "README.md").write_text("# Example checkpoints made by demo/run_demo.py\n")


# ---------------------------------------------------------------------------------------------
# (b) scanning them


def ckptguard(*args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    print(f"\n$ ckptguard {' '.join(args)}", flush=True)
    env = dict(os.environ)
    if importlib.util.find_spec("ckptguard") is None:  # not installed: use the checkout
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")])
        )
    proc = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "ckptguard", *args],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=capture,
        check=False,
    )
    if capture:
        out = proc.stdout
        if "--json" in args:  # one compact line when piped, as here: indent it for reading
            out = json.dumps(json.loads(out), indent=2) + "\n"
        sys.stdout.write(out)
        sys.stderr.write(proc.stderr)
    meaning = EXIT_MEANING.get(proc.returncode, "unexpected")
    print(f"(exit status {proc.returncode}: {meaning})", flush=True)
    return proc


def main() -> int:
    say(
        "ckptguard reads PyTorch checkpoints without executing or importing anything, and "
        "tells you which Python globals each would import when loaded, and whether that is "
        "safe. First, some typical checkpoints:"
    )
    generate()
    for p in sorted(OUT.iterdir()):
        print(f"  {REL}/{p.name:<28} {p.stat().st_size:>8} bytes")

    say(
        "1. Scan the whole folder. The plain state_dict and the training checkpoint (numpy RNG "
        "state, numpy scalars: what breaks torch.load on PyTorch >= 2.6) are safe; the user "
        "Enum needs your review; the downloaded file would run a shell command; model.ckpt is "
        "a Git LFS pointer, not a checkpoint; README.md is skipped."
    )
    scan = ckptguard("scan", REL)

    say(
        "2. You wrote DSPMode yourself and trust it: allow exactly that class "
        "(or put it in [tool.ckptguard] in pyproject.toml). The file now passes."
    )
    allowed = ckptguard("scan", f"{REL}/deepafx_dspmode.ckpt", "--allow", "demo_models.DSPMode")

    say(
        "3. For CI and scripts: one JSON document on stdout (or --sarif FILE for code "
        "scanning), here for the downloaded file."
    )
    ckptguard("scan", f"{REL}/downloaded_model.pt", "--json", capture=True)

    show_loading()
    show_patched()
    show_run()
    show_convert_and_inspect()

    say(
        "The hostile file was only read, never loaded (no 'pwned' above). "
        "Exit status 0/1/2 = safe / review or dangerous / error, so `ckptguard scan` can gate "
        "model files in CI."
    )
    if scan.returncode != 2 or allowed.returncode != 0:
        print(
            f"note: expected exit statuses 2 and 0, got {scan.returncode} and {allowed.returncode}",
            file=sys.stderr,
        )
    return 0


def show_loading() -> None:
    """ckptguard.load: the same files, loaded (or refused) in Python."""
    if importlib.util.find_spec("ckptguard") is None:
        sys.path.insert(0, str(ROOT / "src"))
    import ckptguard as cg  # noqa: PLC0415

    say(
        "4. Loading: ckptguard.load is a drop-in torch.load. The training checkpoint (numpy RNG "
        "state and scalars) loads with no allow list; torch.load's default refuses it."
    )
    ckpt = cg.load(OUT / "training_step7000.ckpt", map_location="cpu")
    print(f">>> ckptguard.load('training_step7000.ckpt')  ->  keys {sorted(ckpt)}")
    try:
        torch.load(OUT / "training_step7000.ckpt")
    except Exception as exc:
        print(f">>> torch.load(...)  ->  {type(exc).__name__}: {str(exc).splitlines()[0][:90]}...")
    for name, allow in (("deepafx_dspmode.ckpt", []), ("deepafx_dspmode.ckpt",
                        ["demo_models.DSPMode"]), ("downloaded_model.pt", [])):  # fmt: skip
        try:
            obj = cg.load(OUT / name, allow=allow)
            print(f">>> ckptguard.load({name!r}, allow={allow})  ->  loaded: {sorted(obj)}")
        except cg.CheckpointError as exc:
            kind = "UnsafeCheckpointError" if isinstance(exc, cg.UnsafeCheckpointError) else (
                type(exc).__name__)  # fmt: skip
            print(f">>> ckptguard.load({name!r}, allow={allow})  ->  {kind}:")
            print("    " + exc.diagnostics().replace("\n", "\n    "))


def cli(*args: str) -> int:
    """``ckptguard ARGS`` in this process (torch is already imported here: no start-up cost)."""
    from ckptguard._cli import main as ckptguard_main  # noqa: PLC0415

    print(f"\n$ ckptguard {' '.join(args)}", flush=True)
    os.chdir(ROOT)
    code = ckptguard_main(list(args))
    sys.stdout.flush()
    print(f"(exit status {code})", flush=True)
    return code


def show_patched() -> None:
    """Third-party code that calls torch.load(weights_only=False) itself, unchanged."""
    import warnings  # noqa: PLC0415

    import ckptguard as cg  # noqa: PLC0415

    say(
        "5. Code you do not control (Lightning, fairseq, an app) calls torch.load itself, often "
        "with weights_only=False. Inside `with ckptguard.patched(allow=[...])` every torch.load "
        "in the process goes through ckptguard.load: the Enum loads, the hostile file is "
        "refused (weights_only=False cannot switch the safety off)."
    )

    def library_load(path: Path) -> object:  # what a library does, deep inside
        return torch.load(path, map_location="cpu", weights_only=False)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the LoadWarning / RefusedLoadWarning, shown below
        with cg.patched(allow=["demo_models.DSPMode"]):
            ckpt: Any = library_load(OUT / "deepafx_dspmode.ckpt")
            print(
                ">>> with ckptguard.patched(allow=['demo_models.DSPMode']): "
                f"torch.load(...)  ->  dsp_mode = {ckpt['hyper_parameters']['dsp_mode']}"
            )
            try:
                library_load(OUT / "downloaded_model.pt")
            except cg.UnsafeCheckpointError as exc:
                print(
                    ">>> ... torch.load('downloaded_model.pt', weights_only=False)  ->  "
                    f"UnsafeCheckpointError: {exc.problem.splitlines()[1].strip()[:90]}"
                )


APP = """\
# A stand-in for an application you run as it is (RVC's infer-web.py): it loads a checkpoint
# with weights_only=False, and starts a Python child that loads another (RVC extracts HuBERT
# features this way).
import subprocess, sys
import torch

ckpt = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
print("app: loaded", sorted(ckpt), flush=True)
child = '''
import sys, torch
try:
    torch.load(sys.argv[1], weights_only=False)
    print("child process: loaded", sys.argv[1])
except Exception as exc:
    print("child process:", type(exc).__name__, "-", str(exc).splitlines()[1].strip()[:70])
'''
subprocess.run([sys.executable, "-W", "ignore", "-c", child, sys.argv[2]])
"""


def show_run() -> None:
    say(
        "6. An application you run as it is: `ckptguard run` routes every torch.load of the "
        "whole process through ckptguard, no code edits, and carries the same guard into the "
        "Python processes it starts (multiprocessing, subprocess.run([sys.executable, ...]))."
    )
    app = OUT / "app.py"
    app.write_text(APP)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    path = [str(ROOT / "demo")]
    if importlib.util.find_spec("ckptguard") is None:
        path.insert(0, str(ROOT / "src"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [*path, env.get("PYTHONPATH")]))
    args = ["run", "--allow", "demo_models.DSPMode", f"{REL}/app.py",
            f"{REL}/deepafx_dspmode.ckpt", f"{REL}/downloaded_model.pt"]  # fmt: skip
    print(f"\n$ ckptguard {' '.join(args)}", flush=True)
    proc = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "ckptguard", *args], cwd=ROOT, env=env, check=False
    )
    print(f"(exit status {proc.returncode}: the application's own)", flush=True)


def show_convert_and_inspect() -> None:
    import ckptguard as cg  # noqa: PLC0415

    say(
        "7. The lasting fix: convert re-saves a file as plain data that stock torch.load "
        "(weights_only=True) reads. It says which types became plain data: the Enum member is "
        "now its value, so `mode == DSPMode.INFER` would be False, unless you load with "
        "restore_types=True."
    )
    plain = f"{REL}/deepafx_dspmode.plain.ckpt"
    cli("convert", f"{REL}/deepafx_dspmode.ckpt", plain, "--force")
    stock = torch.load(ROOT / plain)
    restored = cg.load(ROOT / plain, allow=["demo_models.DSPMode"], restore_types=True)
    print(f">>> torch.load({plain!r})['hyper_parameters']['dsp_mode']  ->  "
          f"{stock['hyper_parameters']['dsp_mode']!r}")  # fmt: skip
    print(f">>> ckptguard.load(..., restore_types=True)[...]  ->  "
          f"{restored['hyper_parameters']['dsp_mode']}")  # fmt: skip

    say(
        "8. inspect: what a checkpoint holds, without loading it: the step, epoch and metrics "
        "it finds, and a table for a folder (newest first; --sort best by the metric)."
    )
    cli("inspect", f"{REL}/resnet_state_dict.pt")
    cli("inspect", REL)


if __name__ == "__main__":
    sys.exit(main())
