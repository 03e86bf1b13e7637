"""Red-team samples (tests/hostile_red1.py): live under the stock loaders, refused by ckptguard."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import ckptguard
from ckptguard import CheckpointError
from tests import hostile_red1 as hr

_STOCK = {
    "torch.load(path)": "import torch; torch.load(sys.argv[1], weights_only=False)",
    "torch.load(BytesIO)": (
        "import io, torch; torch.load(io.BytesIO(open(sys.argv[1], 'rb').read()), "
        "weights_only=False)"
    ),
    "pickle.load": "import pickle; pickle.load(open(sys.argv[1], 'rb'))",
    "pickle.loads": "import pickle; pickle.loads(open(sys.argv[1], 'rb').read())",
    "numpy.load": "import numpy; numpy.load(sys.argv[1], allow_pickle=True)",
}


def _build(tmp_path: Path, case: str) -> tuple[Path, Path]:
    marker = tmp_path / "marker"
    builder: Callable[[Path, Path], Path] = hr.CASES[case]
    return builder(tmp_path / f"{case}.bin", marker), marker


@pytest.mark.parametrize("loader", sorted(_STOCK))
@pytest.mark.parametrize("case", sorted(hr.CASES))
def test_red1_payload_is_live_under_the_stock_loader(
    tmp_path: Path, case: str, loader: str
) -> None:
    path, marker = _build(tmp_path, case)
    code = "import sys\ntry:\n    " + _STOCK[loader] + "\nexcept Exception:\n    pass\n"
    subprocess.run([sys.executable, "-c", code, str(path)], cwd=tmp_path, timeout=120, check=True)
    assert marker.exists(), f"{case}: the payload did not run under {loader}"


@pytest.mark.parametrize("case", sorted(hr.CASES))
def test_red1_sample_is_refused_by_scan_load_and_convert(tmp_path: Path, case: str) -> None:
    path, marker = _build(tmp_path, case)
    report = ckptguard.scan(path)
    verdict = report.files[0].verdict.value
    assert verdict in ("dangerous", "error"), verdict
    assert report.exit_code != 0
    with pytest.raises(CheckpointError):
        ckptguard.load(path)
    with pytest.raises(CheckpointError):
        ckptguard.load(io.BytesIO(path.read_bytes()))
    with open(path, "rb") as f, pytest.raises(CheckpointError):
        ckptguard.load(f)
    with pytest.raises(CheckpointError):
        ckptguard.convert(path, tmp_path / "out.pt")
    assert not marker.exists()
    assert not (tmp_path / "out.pt").exists()


def test_safetensors_pickle_polyglot_names_the_ambiguity_and_the_global(tmp_path: Path) -> None:
    path, _ = _build(tmp_path, "safetensors-pickle")
    found = ckptguard.scan(path).files[0]
    assert "format-safetensors-pickle" in {f.rule for f in found.findings}
    assert "os.system" in {f"{g.module}.{g.name}" for g in found.globals}


def test_plain_safetensors_files_stay_safe(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    # header lengths whose low bytes are pickle opcodes of every kind
    for n in range(1, 40):
        path = tmp_path / f"t{n}.safetensors"
        save_file({"x" * n: torch.arange(n, dtype=torch.float32)}, str(path))
        report = ckptguard.scan(path)
        assert report.files[0].verdict.value == "safe", (n, report.files[0].findings)


def test_legacy_magic_object_is_read_as_legacy_by_torch(tmp_path: Path) -> None:
    """Liveness: torch.load takes its legacy path (persistent ids) on the Decimal magic file
    and allocates a 1 GiB storage from a file of ~150 bytes; pickle.load sees a Decimal."""
    path = hr.case_legacy_magic_object(tmp_path / "m.pt")
    code = (
        "import pickle, sys, warnings, torch\n"
        "warnings.simplefilter('ignore')\n"
        "assert pickle.load(open(sys.argv[1], 'rb')) == int(sys.argv[2])\n"
        "print(torch.load(sys.argv[1], weights_only=False)['a'].nbytes())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path), str(hr.LEGACY_MAGIC)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert proc.stdout.split() == [str(1 << 30)]
    assert path.stat().st_size < 200


def test_legacy_magic_object_is_refused_by_scan_load_and_convert(tmp_path: Path) -> None:
    path = hr.case_legacy_magic_object(tmp_path / "m.pt")
    found = ckptguard.scan(path).files[0]
    assert found.verdict.value == "error"
    assert "torch-legacy-magic-object" in {f.rule for f in found.findings}
    for source in (path, io.BytesIO(path.read_bytes())):
        with pytest.raises(CheckpointError):
            ckptguard.load(source)
    with pytest.raises(CheckpointError):
        ckptguard.convert(path, tmp_path / "out.pt")


def test_pickles_in_a_row_that_cannot_be_legacy_stay_readable(tmp_path: Path) -> None:
    import pickle
    from collections import OrderedDict

    # an object first but no 1001 second; the int magic with a plain second: no new finding
    for first, second in ((OrderedDict(a=1), 7), (hr.LEGACY_MAGIC + 1, 1001), (1.5, 1001)):
        path = tmp_path / "row.pkl"
        path.write_bytes(pickle.dumps(first, protocol=2) + pickle.dumps(second, protocol=2))
        rules = {f.rule for f in ckptguard.scan(path).files[0].findings}
        assert "torch-legacy-magic-object" not in rules, (first, second)


def test_directory_scan_does_not_skip_a_pickle_past_the_memo_bound(tmp_path: Path) -> None:
    import torch

    torch.save({"w": torch.arange(3.0)}, tmp_path / "model.pt")
    evil = hr.case_memo_limit_sniff(tmp_path / "extra", tmp_path / "marker")
    report = ckptguard.scan(tmp_path)
    assert report.exit_code != 0
    verdicts = {Path(f.path).name: f.verdict.value for f in report.files}
    assert verdicts.get(evil.name) == "error", verdicts
    assert not (tmp_path / "marker").exists()


def test_sniff_still_skips_prose_that_starts_with_an_opcode(tmp_path: Path) -> None:
    from ckptguard._formats import sniff

    path = tmp_path / "notes.weights"
    path.write_bytes(b"Generated by hand: see the README for the weights.\n")
    assert sniff(path) == "other"
