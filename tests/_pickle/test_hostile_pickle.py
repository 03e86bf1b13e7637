"""The pickle-layer hostile samples (tests/hostile_pickle.py) are live under the stock loader
they target, and ckptguard's scan, load and convert refuse them without ever running them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import ckptguard
from ckptguard import FileVerdict
from tests.factories import data_pkl_zip
from tests.hostile_pickle import SAMPLES, Sample
from tests.subproc import run_python

_IDS = [s.name for s in SAMPLES]

_LOADER = """
import io, pickle, sys
mode, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
try:
    if mode == "loads":
        pickle.loads(data)
    elif mode.startswith("file"):
        buffering = int(mode[5:]) if ":" in mode else -1
        with open(path, "rb", buffering=buffering) as f:
            pickle.load(f)
    elif mode == "bytesio":
        pickle.load(io.BytesIO(data))
    elif mode == "bytesio-seq":
        f = io.BytesIO(data)
        pickle.load(f)
        pickle.load(f)
except Exception:
    pass
"""


@pytest.mark.parametrize("sample", SAMPLES, ids=_IDS)
def test_the_samples_run_under_the_loader_they_target(sample: Sample, tmp_path: Path) -> None:
    """Liveness: each payload really creates its marker under the feeding mode it targets (in a
    subprocess, in a temporary directory), so refusing it is tested against a live payload."""
    for mode in sample.runs:
        marker = tmp_path / f"PWNED-{mode.replace(':', '-')}"
        path = tmp_path / f"{mode.replace(':', '-')}.pkl"
        path.write_bytes(sample.build(str(marker)))
        subprocess.run(
            [sys.executable, "-c", _LOADER, mode, str(path)],
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert marker.exists(), f"{sample.name}: the payload did not run under {mode}"


def _explain(rep: ckptguard.FileReport) -> str:
    lines = [f"{rep.path}: {rep.format} {rep.verdict}"]
    lines += [f"  {g.qualified_name}: {g.verdict}" for g in rep.globals]
    lines += [f"  {f.rule} {f.severity}: {f.message}" for f in rep.findings]
    return "\n".join(lines)


@pytest.mark.parametrize("container", ["plain pickle", "torch zip data.pkl"])
@pytest.mark.parametrize("sample", SAMPLES, ids=_IDS)
def test_scan_reports_the_payload_as_dangerous_and_never_runs_it(
    sample: Sample, container: str, tmp_path: Path
) -> None:
    marker = tmp_path / "PWNED"
    data = sample.build(str(marker))
    path = tmp_path / ("model.pkl" if container == "plain pickle" else "model.pt")
    path.write_bytes(data if container == "plain pickle" else data_pkl_zip(data))
    report = ckptguard.scan(path, policy=_defaults(tmp_path))
    rep = report.files[0]
    assert not marker.exists()
    if container != "plain pickle" and sample.runs == ("bytesio-seq",):
        # torch reads data.pkl with one load: the payload in a second pickle is never
        # reached, but the frame ambiguity still makes the file an error
        assert rep.verdict is FileVerdict.ERROR, _explain(rep)
        return
    # the global a loader reaches is listed, with its verdict, whatever else is wrong
    assert any(
        g.qualified_name == "os.system" and g.verdict is ckptguard.Verdict.DANGEROUS
        for g in rep.globals
    ), _explain(rep)
    assert rep.verdict is FileVerdict.DANGEROUS, _explain(rep)
    assert report.exit_code == 1
    assert not marker.exists()


@pytest.mark.parametrize("sample", SAMPLES, ids=_IDS)
def test_load_and_convert_refuse_and_never_run_the_payload(sample: Sample, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    data = sample.build(str(marker))
    for name, raw in (("model.pkl", data), ("model.pt", data_pkl_zip(data))):
        path = tmp_path / name
        path.write_bytes(raw)
        with pytest.raises(ckptguard.CheckpointError):
            ckptguard.load(path)
        with pytest.raises(ckptguard.CheckpointError):
            ckptguard.convert(path, tmp_path / f"out-{name}")
        assert not (tmp_path / f"out-{name}").exists()
    assert not marker.exists()


def test_a_frame_ambiguity_is_named_in_the_report(tmp_path: Path) -> None:
    sample = next(s for s in SAMPLES if s.name.startswith("frame cuts a string"))
    path = tmp_path / "model.pkl"
    path.write_bytes(sample.build(str(tmp_path / "PWNED")))
    rep = ckptguard.scan(path, policy=_defaults(tmp_path)).files[0]
    frames = [f for f in rep.findings if f.rule == "pickle-frame-ambiguity"]
    assert frames and "FRAME" in frames[0].message
    assert frames[0].severity is ckptguard.Severity.ERROR


def test_the_cli_exits_with_the_dangerous_code_for_a_payload_that_then_breaks(
    tmp_path: Path,
) -> None:
    sample = next(s for s in SAMPLES if s.name == "payload then a bad memo key")
    path = tmp_path / "model.pkl"
    path.write_bytes(sample.build(str(tmp_path / "PWNED")))
    proc = subprocess.run(
        [sys.executable, "-m", "ckptguard", "scan", "--policy", _defaults(tmp_path), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == FileVerdict.DANGEROUS.exit_code, proc.stdout + proc.stderr
    assert "os.system" in proc.stdout
    assert "memo key 9" in proc.stdout
    assert not (tmp_path / "PWNED").exists()


def _defaults(tmp_path: Path) -> str:
    """An empty policy file: the shipped defaults, whatever pyproject.toml is around."""
    f = tmp_path / "defaults.toml"
    f.write_text("")
    return str(f)


def _legacy_with_a_frame_tail(tmp_path: Path, marker: Path) -> bytes:
    """A real legacy torch file whose third pickle (system info) is framed with bytes after its
    STOP: read in a row from bytes, the fourth pickle is a string that swallows a payload;
    torch.load(io.BytesIO) skips the frame's tail and its fourth load is the payload."""
    from ckptguard._pickle import analyze_pickle
    from tests import factories as F
    from tests.hostile_pickle import _ascii_payload
    from tests.pickleasm import EMPTY_DICT, STOP, framed, proto, short_binunicode_head

    legacy = F.legacy_checkpoint(tmp_path / "legacy.pt").read_bytes()
    ends = [0]
    for _ in range(3):
        ends.append(analyze_pickle(legacy, start=ends[-1]).end)
    payload = _ascii_payload(str(marker)) + STOP
    in_frame = EMPTY_DICT + STOP + short_binunicode_head(len(payload))
    third = proto(4) + framed(in_frame) + payload + STOP
    return legacy[: ends[2]] + third + legacy[ends[3] :]


def test_a_legacy_file_whose_pickles_torch_reads_elsewhere_is_live_and_refused(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "legacy-hostile.pt"
    path.write_bytes(_legacy_with_a_frame_tail(tmp_path, marker))
    code = (
        "import io, sys, torch\n"
        "try:\n"
        "    torch.load(io.BytesIO(open(sys.argv[1], 'rb').read()), weights_only=False)\n"
        "except Exception:\n"
        "    pass\n"
    )
    run_python("-c", code, str(path), cwd=tmp_path)
    assert marker.exists(), "the payload did not run under torch.load(io.BytesIO)"
    marker.unlink()
    rep = ckptguard.scan(path, policy=_defaults(tmp_path)).files[0]
    assert any(g.qualified_name == "os.system" for g in rep.globals), _explain(rep)
    assert rep.verdict is FileVerdict.DANGEROUS, _explain(rep)
    with pytest.raises(ckptguard.CheckpointError):
        ckptguard.load(path)
    assert not marker.exists()
