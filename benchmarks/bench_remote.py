"""Benchmark: scanning checkpoints where they live (byte ranges) against scanning a local copy
and against downloading whole, in one run; then many small objects with 1 vs several readers
and through a Dask LocalCluster with 1 vs 2 workers.

    python benchmarks/bench_remote.py [--size-gib 1] [--files 2000] [--runs 5]

Inputs are generated once into ``bench-data/remote/`` (gitignored):

* ``large.pt``  a state_dict of 128 float32 tensors (torch.save), ``--size-gib`` GiB in all
* ``small/``    ``--files`` small checkpoints (state_dicts of a small model, ~10 KB each)

Servers run in their own processes on localhost (free ports, stopped at the end): aiohttp's
static file server (HTTP with Range) for the large file, and moto's S3 server for the small
ones (moto re-reads a whole object for every range request, so a 1 GiB object there measures
moto, not the scan; the bytes read are the same over either protocol). Timings are wall-clock
medians of ``--runs`` runs after a warm-up; the table goes to stdout and
``bench-data/remote/results.md``.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench-data" / "remote"
PY = sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("server did not start")


@contextmanager
def _server(args: list[str], port: int) -> Iterator[None]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(port, proc)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


_STATIC = (
    "import sys; from aiohttp import web; app = web.Application(); "
    "app.router.add_static('/', sys.argv[1]); "
    "web.run_app(app, host='127.0.0.1', port=int(sys.argv[2]), print=None)"
)


def make_large(size_gib: float) -> Path:
    import torch

    path = DATA / "large.pt"
    if path.exists():
        return path
    n = 128
    numel = int(size_gib * (1 << 30) / 4 / n)
    torch.save({f"layers.{i}.weight": torch.zeros(numel) for i in range(n)}, path)
    return path


def make_small(count: int) -> Path:
    import torch

    root = DATA / f"small-{count}"
    if root.exists():
        return root
    root.mkdir(parents=True)
    for i in range(count):
        buf = io.BytesIO()
        torch.save({"w": torch.full((16, 64), float(i)), "b": torch.zeros(64), "step": i}, buf)
        (root / f"m{i:05d}.pt").write_bytes(buf.getvalue())
    return root


def median_time(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    out = fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def bench_large(size_gib: float, runs: int) -> list[str]:
    import ckptguard

    path = make_large(size_gib)
    size = path.stat().st_size
    with zipfile.ZipFile(path) as z:
        pkl = next(i.file_size for i in z.infolist() if i.filename.endswith("/data.pkl"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}/{path.name}"
    rows = []
    with _server([PY, "-c", _STATIC, str(path.parent), str(port)], port):
        local_t, _ = median_time(lambda: ckptguard.scan(str(path)), runs)
        remote_t, rep = median_time(lambda: ckptguard.scan(url), runs)
        read = rep.files[0].bytes_read  # type: ignore[attr-defined]
        verdict = rep.files[0].verdict.value  # type: ignore[attr-defined]

        def download_then_scan() -> object:
            with tempfile.TemporaryDirectory() as tmp:
                dst = Path(tmp) / "large.pt"
                with urllib.request.urlopen(url) as r, open(dst, "wb") as f:
                    while chunk := r.read(8 << 20):
                        f.write(chunk)
                return ckptguard.scan(str(dst))

        whole_t, _ = median_time(download_then_scan, max(1, runs // 2))

        def cli(target: str) -> float:
            t = time.perf_counter()
            subprocess.run(
                [PY, "-m", "ckptguard", "scan", "--json", target],
                stdout=subprocess.DEVNULL, check=False,
            )  # fmt: skip
            return time.perf_counter() - t

        cli(str(path)), cli(url)
        cli_local = statistics.median(cli(str(path)) for _ in range(runs))
        cli_remote = statistics.median(cli(url) for _ in range(runs))
    rows.append(f"### {size / (1 << 30):.2f} GiB checkpoint ({size} bytes, data.pkl {pkl} bytes)")
    rows.append("")
    rows.append("| how | wall time (median) | bytes read | ratio to local |")
    rows.append("|---|---|---|---|")
    rows.append(f"| local file, `ckptguard.scan` | {local_t * 1000:.1f} ms | (mapped) | 1.0 |")
    rows.append(
        f"| HTTP byte ranges, `ckptguard.scan(url)` | {remote_t * 1000:.1f} ms | {read} "
        f"| {remote_t / local_t:.1f} |"
    )
    rows.append(
        f"| download whole, then scan (what the peers do) | {whole_t * 1000:.0f} ms | {size} "
        f"| {whole_t / local_t:.0f} |"
    )
    rows.append(f"| CLI process, local file | {cli_local * 1000:.0f} ms | | 1.0 |")
    rows.append(
        f"| CLI process, HTTP URL | {cli_remote * 1000:.0f} ms | {read} "
        f"| {cli_remote / cli_local:.2f} |"
    )
    rows.append("")
    budget = pkl + (256 << 10)
    rows.append(
        f"verdict {verdict}; bytes read {read} <= data.pkl + 256 KiB = {budget}: "
        f"{'yes' if read <= budget else 'NO'}"
    )
    return rows


def bench_small(count: int, runs: int) -> list[str]:
    import s3fs

    import ckptguard
    from ckptguard._policy import resolve_policy
    from ckptguard._remote import RemoteOptions, scan_remote

    root = make_small(count)
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint,
    )  # fmt: skip
    rows = [f"### {count} small checkpoints in a local S3 bucket (moto server)", ""]
    rows.append("| how | wall time (median) | files/s | bytes read per file |")
    rows.append("|---|---|---|---|")
    with _server([PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port):
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
        fs = s3fs.S3FileSystem()
        fs.pipe({f"bench/small/{p.name}": p.read_bytes() for p in sorted(root.iterdir())})
        policy = resolve_policy()

        def run(concurrency: int, client: object = None) -> tuple[float, float]:
            opts = RemoteOptions(concurrency=concurrency)
            t, (files, _) = median_time(
                lambda: scan_remote(["s3://bench/small/"], policy=policy, opts=opts, client=client),
                runs,
            )
            assert len(files) == count and all(f.verdict.value == "safe" for f in files)  # type: ignore[attr-defined]
            return t, statistics.mean(f.bytes_read or 0 for f in files)  # type: ignore[attr-defined]

        for label, conc in (("1 reader", 1), ("8 concurrent readers", 8)):
            t, per = run(conc)
            rows.append(f"| {label} | {t:.2f} s | {count / t:.0f} | {per:.0f} |")
        local_t, _ = median_time(lambda: ckptguard.scan(str(root), jobs=1), runs)
        rows.append(f"| (local directory, 1 process) | {local_t:.2f} s | {count / local_t:.0f} | |")
        import distributed

        for workers in (1, 2):
            with (
                distributed.LocalCluster(
                    n_workers=workers, threads_per_worker=8, processes=True,
                    dashboard_address=None,
                ) as lc,
                distributed.Client(lc) as client,
            ):  # fmt: skip
                t, per = run(8, client)
            rows.append(
                f"| Dask LocalCluster, {workers} worker{'s' if workers > 1 else ''} "
                f"(8 threads each) | {t:.2f} s | {count / t:.0f} | {per:.0f} |"
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gib", type=float, default=1.0)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--skip-small", action="store_true")
    args = ap.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    rows = [f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}", ""]
    if not args.skip_large:
        rows += [*bench_large(args.size_gib, args.runs), ""]
    if not args.skip_small:
        rows += bench_small(args.files, args.runs)
    text = "\n".join(rows) + "\n"
    print(text)
    (DATA / "results.md").write_text(text)


if __name__ == "__main__":
    main()
