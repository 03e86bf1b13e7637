"""Benchmark: ``ckptguard code`` over real code bases (whole processes), plus what its two
cheap pre-checks save (in process).

    python benchmarks/bench_code.py [--runs 5]

Inputs (read only, nothing is written): the fixture project of the tests
(``tests/_code/fixture_project``) and the installed sources of ``pytorch_lightning`` and
``lightning_fabric`` (located with importlib.util.find_spec, never imported).

1. Whole process, ``--runs`` times after one warm-up: ``python -m ckptguard code DIR --json``.
2. In process, interleaved: ``check_paths`` as shipped, against the same with the byte-level
   pre-filter and the syntactic candidate check switched off (every file gets libcst scope
   analysis), which must find exactly the same findings.

Prints a Markdown table; timings are wall-clock medians (time.perf_counter).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _inputs() -> dict[str, list[str]]:
    inputs = {"fixture project": [str(ROOT / "tests/_code/fixture_project")]}
    dirs = [d for d in map(_package_dir, ("pytorch_lightning", "lightning_fabric")) if d]
    if dirs:
        inputs["pytorch_lightning + lightning_fabric"] = [str(d) for d in dirs]
    return inputs


def _count_files(paths: list[str]) -> int:
    from ckptguard._code._files import Found
    from ckptguard._code._runner import iter_python_files

    return sum(1 for p in iter_python_files(paths) if isinstance(p, Found))


def _median_time(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _process(paths: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [sys.executable, "-m", "ckptguard", "code", *paths, "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    if proc.returncode not in (0, 1):
        raise SystemExit(f"ckptguard code failed ({proc.returncode}): {proc.stderr[-2000:]!r}")


@contextmanager
def _no_prechecks() -> Iterator[None]:
    from ckptguard._code import _runner, _visitor

    saved = _runner._may_have_findings, _visitor._BindingCollector.candidates
    _runner._may_have_findings = lambda data: True  # type: ignore[assignment]
    _visitor._BindingCollector.candidates = property(lambda self: True)  # type: ignore[assignment]
    try:
        yield
    finally:
        _runner._may_have_findings, _visitor._BindingCollector.candidates = saved  # type: ignore[assignment]


def _interleaved(paths: list[str], runs: int) -> tuple[float, float]:
    from ckptguard._code._runner import check_paths

    def key(report: object) -> list[tuple[str, int, int, str]]:
        return sorted((x.path, x.line, x.column, x.rule.id) for x in report.findings)  # type: ignore[attr-defined]

    shipped, without = [], []
    expected = key(check_paths(paths))
    for _ in range(runs):
        start = time.perf_counter()
        check_paths(paths)
        shipped.append(time.perf_counter() - start)
        with _no_prechecks():
            start = time.perf_counter()
            report = check_paths(paths)
            without.append(time.perf_counter() - start)
        if key(report) != expected:
            raise SystemExit("the pre-checks changed the findings: a bug")
    return statistics.median(shipped), statistics.median(without)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, medians of {args.runs} runs\n")
    print("| input | files | process (s) | files/s | in process (s) | no pre-checks (s) | ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, paths in _inputs().items():
        files = _count_files(paths)
        process = _median_time(lambda paths=paths: _process(paths), args.runs)
        shipped, without = _interleaved(paths, args.runs)
        print(
            f"| {name} | {files} | {process:.2f} | {files / process:.0f} | {shipped:.2f} "
            f"| {without:.2f} | {without / shipped:.1f}x |"
        )


if __name__ == "__main__":
    main()
