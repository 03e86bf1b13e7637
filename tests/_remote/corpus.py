"""The corpus the remote tests upload: the project's hostile corpus in several containers,
the red-team and container samples, benign checkpoints of every format, and damaged copies.
``build(tmp)`` writes each object under ``tmp`` and returns {name: bytes}."""

from __future__ import annotations

import io
import pickle
import re
import struct
import zipfile
from pathlib import Path

from ckptguard import FileReport
from tests import factories as F
from tests import hostile_container as hc
from tests import hostile_red1 as hr
from tests.factories import data_pkl_zip
from tests.hostile import CASES
from tests.pickleasm import EMPTY_DICT, program


def _npy_object(payload: bytes) -> bytes:
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


def _npz(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def build(tmp: Path, *, hostile: bool = True) -> dict[str, bytes]:
    marker = str(tmp / "MARKER")
    out: dict[str, bytes] = {}
    if hostile:
        for case in CASES:
            p = case.build(marker)
            n = _safe(case.name)
            out[f"hostile/plain/{n}.pkl"] = p
            out[f"hostile/zip/{n}.pt"] = data_pkl_zip(p)
            out[f"hostile/npy/{n}.npy"] = _npy_object(p)
            out[f"hostile/row/{n}.pkl"] = program(EMPTY_DICT) + p
        out["hostile/npz/first.npz"] = _npz({"arr_0.npy": _npy_object(CASES[0].build(marker))})
        work = tmp / "build"
        work.mkdir(exist_ok=True)
        for name, builder in hr.CASES.items():
            out[f"red/{_safe(name)}.bin"] = builder(
                work / f"{_safe(name)}.bin", Path(marker)
            ).read_bytes()
        out["container/twin.pt"] = hc.case_twin_data_pkl(
            work / "twin.pt", Path(marker)
        ).read_bytes()
        out["container/longname.pt"] = hc.long_name_torchscript(work / "ln.pt").read_bytes()
        out["container/frametail.pt"] = hc.frame_tail_legacy(
            work / "ft.pt", Path(marker)
        ).read_bytes()
        out["container/v7tar.pt"] = hc.v7_tar_legacy(work / "v7.pt", Path(marker)).read_bytes()
    benign = tmp / "benign"
    benign.mkdir(exist_ok=True)
    sd = F.state_dict(benign / "sd.pt").read_bytes()
    out["benign/sd.pt"] = sd
    out["benign/train.ckpt"] = F.training_checkpoint(benign / "t.ckpt").read_bytes()
    out["benign/legacy.pt"] = F.legacy_checkpoint(benign / "l.pt").read_bytes()
    for proto in (0, 2, 4, 5):
        out[f"benign/plain{proto}.pkl"] = pickle.dumps(
            {"a": [1, 2.5, "x"], "b": (None, True)}, protocol=proto
        )
    out["benign/empty.bin"] = b""
    out["damaged/sd_truncated.pt"] = sd[: len(sd) - 100]
    out["damaged/sd_cut_half.pt"] = sd[: len(sd) // 2]
    legacy = out["benign/legacy.pt"]
    out["damaged/legacy_truncated.pt"] = legacy[: len(legacy) - 7]
    out["damaged/legacy_appended.pt"] = legacy + b"xx"
    out["notes/README.md"] = b"# models\nnothing to see\n"
    out["notes/config.json"] = b'{"hidden_size": 8}\n'
    for name, data in out.items():
        path = tmp / "local" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return out


def comparable(rep: FileReport, path: str) -> tuple[object, ...]:
    """What must be equal between a remote and a local scan of the same bytes (the path, and
    the path inside hints and messages, differ)."""

    def norm(text: str | None) -> str | None:
        return None if text is None else text.replace(path, "PATH")

    return (
        rep.format,
        rep.verdict,
        rep.globals,
        tuple((f.rule, f.severity, norm(f.message), f.location) for f in rep.findings),
        rep.pickles,
        rep.size,
        norm(rep.hint),
    )
