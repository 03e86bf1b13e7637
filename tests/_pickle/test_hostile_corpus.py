"""The hostile corpus (tests/hostile.py) is never `safe`, in every container, and scanning it
never runs it: no payload's marker file ever appears."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

import ckptguard
from ckptguard import FileVerdict
from tests import factories as F
from tests.factories import data_pkl_zip
from tests.hostile import CASES, Case
from tests.pickleasm import EMPTY_DICT, POP, program
from tests.subproc import run_python

_IDS = [c.name for c in CASES]


def _with_extra_member(benign_zip: bytes, payload: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(benign_zip))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for info in src.infolist():
            z.writestr(info.filename, src.read(info.filename))
        prefix = src.namelist()[0].split("/")[0]
        z.writestr(f"{prefix}/extra/hook.pkl", payload)
    return buf.getvalue()


def _npy_object(payload: bytes) -> bytes:
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


def _npz(npy: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("arr_0.npy", npy)
    return buf.getvalue()


@pytest.fixture(scope="module")
def benign_zip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return F.state_dict(tmp_path_factory.mktemp("benign") / "sd.pt").read_bytes()


Container = Callable[[bytes, bytes], tuple[str, bytes]]

CONTAINERS: dict[str, Container] = {
    "plain pickle": lambda p, _: ("model.pkl", p),
    "pickle named pytorch_model.bin": lambda p, _: ("pytorch_model.bin", p),
    "torch zip data.pkl": lambda p, _: ("model.pt", data_pkl_zip(p)),
    "torch zip, deflated data.pkl": lambda p, _: (
        "model.pt",
        data_pkl_zip(p, compress=zipfile.ZIP_DEFLATED),
    ),
    "extra/ member of a real checkpoint": lambda p, z: ("model.pt", _with_extra_member(z, p)),
    "second pickle after a benign one": lambda p, _: ("model.pkl", program(EMPTY_DICT) + p),
    "npy object array": lambda p, _: ("array.npy", _npy_object(p)),
    "npz member": lambda p, _: ("arrays.npz", _npz(_npy_object(p))),
}


def _explain(rep: ckptguard.FileReport) -> str:
    lines = [f"{rep.path}: {rep.format} {rep.verdict}"]
    lines += [f"  {g.qualified_name}: {g.verdict} ({g.reason})" for g in rep.globals]
    lines += [f"  {f.rule} {f.severity}: {f.message}" for f in rep.findings]
    return "\n".join(lines)


@pytest.mark.parametrize("container", sorted(CONTAINERS))
@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_hostile_pickle_is_dangerous_and_never_runs(
    case: Case, container: str, benign_zip: bytes, tmp_path: Path
) -> None:
    marker = tmp_path / "PWNED"
    name, data = CONTAINERS[container](case.build(str(marker)), benign_zip)
    path = tmp_path / name
    path.write_bytes(data)
    report = ckptguard.scan(path, policy=ckptguard_policy_defaults(tmp_path))
    rep = report.files[0]
    assert rep.verdict is FileVerdict.DANGEROUS, _explain(rep)
    assert report.exit_code == 1
    assert not marker.exists(), "scanning executed the payload"


def ckptguard_policy_defaults(tmp_path: Path) -> str:
    """An empty policy file: the shipped defaults, whatever pyproject.toml is around."""
    f = tmp_path / "defaults.toml"
    f.write_text("")
    return str(f)


def test_injected_payload_in_a_real_checkpoint_is_dangerous(
    benign_zip: bytes, tmp_path: Path
) -> None:
    """fickling-style injection: a call and a POP spliced into a real data.pkl after PROTO."""
    marker = tmp_path / "PWNED"
    src = zipfile.ZipFile(io.BytesIO(benign_zip))
    buf = io.BytesIO()
    payload = next(c for c in CASES if c.name == "os.system p2").build(str(marker))
    inject = payload[2:-1] + POP  # without its PROTO and STOP
    with zipfile.ZipFile(buf, "w") as z:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                data = data[:2] + inject + data[2:]
            z.writestr(info.filename, data)
    path = tmp_path / "injected.pt"
    path.write_bytes(buf.getvalue())
    rep = ckptguard.scan(path).files[0]
    assert rep.verdict is FileVerdict.DANGEROUS, _explain(rep)
    assert any(g.qualified_name == "os.system" for g in rep.globals)
    assert any(f.rule == "pickle-discarded-call" for f in rep.findings)
    assert not marker.exists()


def test_hostile_pickle_inside_a_legacy_checkpoint(tmp_path: Path) -> None:
    """The pre-1.6 format is five pickles in a row: a payload in the third (sys info) counts."""
    legacy = F.legacy_checkpoint(tmp_path / "legacy.pt").read_bytes()
    from ckptguard._pickle import analyze_pickle

    ends = [0]
    for _ in range(3):
        ends.append(analyze_pickle(legacy, start=ends[-1]).end)
    marker = tmp_path / "PWNED"
    payload = next(c for c in CASES if c.name == "os.system p2").build(str(marker))
    # replace the third pickle (system info) by a payload that leaves a dict behind
    hostile = payload[:-1] + POP + EMPTY_DICT + b"."
    path = tmp_path / "hostile-legacy.pt"
    path.write_bytes(legacy[: ends[2]] + hostile + legacy[ends[3] :])
    rep = ckptguard.scan(path).files[0]
    assert rep.format == "pytorch-legacy"
    assert rep.verdict is FileVerdict.DANGEROUS, _explain(rep)
    assert not marker.exists()


@pytest.mark.parametrize("case", [c for c in CASES if c.executes], ids=lambda c: c.name)
def test_the_corpus_payloads_are_real(case: Case, tmp_path: Path) -> None:
    """Guards the corpus itself: loading these with pickle really creates the marker file (in a
    subprocess, in a temporary directory), so "never safe" is tested against live payloads."""
    if case.needs:
        pytest.importorskip(case.needs)
    marker = tmp_path / "PWNED"
    path = tmp_path / "payload.pkl"
    path.write_bytes(case.build(str(marker)))
    code = (
        "import pickle, sys\n"
        "try:\n"
        "    pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "except Exception:\n"
        "    pass\n"
    )
    run_python("-c", code, str(path), cwd=tmp_path)
    assert marker.exists(), f"{case.name}: the payload did not run when unpickled"
