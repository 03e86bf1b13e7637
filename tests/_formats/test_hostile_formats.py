"""Hostile container samples (tests/hostile_formats.py): each payload really runs under the
stock loader it targets, and ckptguard's scan, load and convert refuse the file without
running anything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import ckptguard
from ckptguard import FileVerdict
from ckptguard._pickle import analyze_pickle
from tests import factories as F
from tests.hostile_formats import Sample, samples

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[int]]:
    path = F.legacy_checkpoint(tmp_path_factory.mktemp("legacy") / "legacy.pt")
    data = path.read_bytes()
    ends = [0]
    for _ in range(5):
        ends.append(analyze_pickle(data, start=ends[-1]).end)
    return data, ends[1:]


@pytest.fixture(scope="module")
def corpus(legacy: tuple[bytes, list[int]]) -> list[Sample]:
    return samples(*legacy)


_RUNNER = r"""
import io, json, pickle, sys, warnings
import numpy, torch
out = {}
for path, loader in json.loads(sys.argv[1]):
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if loader == "torch-path" or loader == "torch-dispatch":
                torch.load(path, weights_only=False)
            elif loader == "torch-bytesio":
                torch.load(io.BytesIO(open(path, "rb").read()), weights_only=False)
            elif loader == "numpy":
                numpy.load(path, allow_pickle=True)
            elif loader == "numpy-npz":
                numpy.load(path, allow_pickle=True)["a"]
            elif loader == "pickle-file":
                with open(path, "rb") as f:
                    pickle.load(f)
    except BaseException as exc:
        pass
    out[path] = any("TorchScript" in str(w.message) for w in caught)
print(json.dumps(out))
"""


def _build(corpus: list[Sample], root: Path) -> list[tuple[Sample, Path, Path]]:
    built = []
    for i, s in enumerate(corpus):
        d = root / f"s{i}"
        d.mkdir()
        marker = d / "PWNED"
        path = d / f"sample{s.suffix}"
        path.write_bytes(s.build(str(marker)))
        built.append((s, path, marker))
    return built


def test_the_payloads_run_under_the_stock_loaders(corpus: list[Sample], tmp_path: Path) -> None:
    """Guards the samples: each one's payload really runs (or, for the TorchScript class,
    torch.load really takes its TorchScript path). One subprocess for all (torch start-up)."""
    built = _build(corpus, tmp_path)
    jobs = json.dumps([(str(p), s.loader) for s, p, _ in built])
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, jobs],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    dispatched = json.loads(proc.stdout.strip().splitlines()[-1])
    for s, path, marker in built:
        if s.loader == "torch-dispatch":
            assert dispatched[str(path)], f"{s.name}: torch.load did not take the TorchScript path"
        else:
            assert marker.exists(), f"{s.name}: the payload did not run under {s.loader}"


def test_scan_load_and_convert_refuse_every_sample(corpus: list[Sample], tmp_path: Path) -> None:
    for s, path, marker in _build(corpus, tmp_path):
        rep = ckptguard.scan(path).files[0]
        assert rep.verdict in (FileVerdict.ERROR, FileVerdict.DANGEROUS), (s.name, rep)
        if s.rule is not None:
            assert s.rule in {f.rule for f in rep.findings}, (s.name, rep.findings)
        with pytest.raises(ckptguard.Error):
            ckptguard.load(path)
        with pytest.raises(ckptguard.Error):
            ckptguard.convert(path, path.parent / "converted.pt")
        assert not marker.exists(), s.name


def test_a_directory_holding_a_sample_is_never_clean(corpus: list[Sample], tmp_path: Path) -> None:
    """The directory walk scans every sample (none skipped as "not a checkpoint")."""
    built = _build(corpus, tmp_path)
    report = ckptguard.scan(tmp_path)
    scanned = {f.path for f in report.files}
    for s, path, _ in built:
        assert str(path) in scanned, (s.name, report.skipped)
    assert report.exit_code != 0
