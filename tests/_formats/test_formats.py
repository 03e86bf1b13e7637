"""Format reading by content: every format the issue names, benign and broken."""

from __future__ import annotations

import json
import pickle
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import ckptguard
from ckptguard import FileVerdict, Verdict
from tests import factories as F
from tests.hostile import CASES
from tests.pickleasm import ustr


def _one(path: Path, **kw: object) -> ckptguard.FileReport:
    return ckptguard.scan(path, **kw).files[0]  # type: ignore[arg-type]


def _safetensors(header: dict[str, object], body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


@pytest.mark.parametrize("protocol", range(6))
def test_plain_pickles_of_every_protocol(tmp_path: Path, protocol: int) -> None:
    path = F.plain_pickle(tmp_path / "p.pkl", {"w": [1.5, 2], "n": None, "s": {1}}, protocol)
    rep = _one(path)
    assert (rep.format, rep.verdict) == ("pickle", FileVerdict.SAFE)


def test_legacy_format_scans_every_pickle(tmp_path: Path) -> None:
    rep = _one(F.legacy_checkpoint(tmp_path / "legacy.pt"))
    assert (rep.format, rep.verdict) == ("pytorch-legacy", FileVerdict.SAFE)
    assert len(rep.pickles) == 5


def test_torchscript_is_reported_as_such(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    rep = _one(path)
    assert rep.format == "torchscript"
    # it is code: torch.load hands it to torch.jit.load, which compiles and runs it (issue 11.4:
    # one verdict for every TorchScript archive, with convert as the next step)
    assert rep.verdict is FileVerdict.DANGEROUS
    assert any(f.rule == "torch-torchscript" for f in rep.findings)


def test_npy_numeric_and_object_arrays(tmp_path: Path) -> None:
    np.save(tmp_path / "num.npy", np.arange(10, dtype=np.float32))
    assert _one(tmp_path / "num.npy").verdict is FileVerdict.SAFE
    np.save(tmp_path / "obj.npy", np.array([1, "a", None], dtype=object), allow_pickle=True)
    rep = _one(tmp_path / "obj.npy")
    assert (rep.format, rep.verdict) == ("numpy", FileVerdict.SAFE)
    np.savez(tmp_path / "both.npz", a=np.arange(3), b=np.array([{"k": 1}], dtype=object))
    rep = _one(tmp_path / "both.npz")
    assert (rep.format, rep.verdict) == ("numpy-npz", FileVerdict.SAFE)


def test_npy_truncated_is_an_error(tmp_path: Path) -> None:
    np.save(tmp_path / "num.npy", np.arange(100, dtype=np.float64))
    data = (tmp_path / "num.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-8])
    assert _one(tmp_path / "cut.npy").verdict is FileVerdict.ERROR


def test_safetensors_valid_and_invalid_headers(tmp_path: Path) -> None:
    good = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    (tmp_path / "ok.safetensors").write_bytes(_safetensors(good, b"\x00" * 8))
    rep = _one(tmp_path / "ok.safetensors")
    assert (rep.format, rep.verdict) == ("safetensors", FileVerdict.SAFE)
    bad = {
        "overlap": {
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
        },
        "wrong size": {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
        "unknown dtype": {"w": {"dtype": "PICKLE", "shape": [8], "data_offsets": [0, 8]}},
    }
    for name, header in bad.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(_safetensors(header, b"\x00" * 8))
        assert _one(path).verdict is FileVerdict.ERROR, name


@pytest.mark.parametrize(
    ("content", "fmt", "words"),
    [
        (
            b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 12\n",
            "git-lfs-pointer",
            "git lfs pull",
        ),
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "html", "HTML page"),
        (b"Repository not found\n", "text", "text file"),
    ],
)
def test_non_checkpoints_are_named_not_pickle_errors(
    tmp_path: Path, content: bytes, fmt: str, words: str
) -> None:
    path = tmp_path / "model.ckpt"
    path.write_bytes(content)
    rep = _one(path)
    assert (rep.format, rep.verdict) == (fmt, FileVerdict.ERROR)
    assert words in rep.findings[0].message + (rep.hint or "")


def test_empty_and_unknown_files_are_errors(tmp_path: Path) -> None:
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "junk.pt").write_bytes(bytes(range(256)) * 4)
    for name in ("empty.pt", "junk.pt"):
        rep = _one(tmp_path / name)
        assert rep.verdict is FileVerdict.ERROR and rep.findings[0].message


def test_format_is_detected_by_content_not_name(tmp_path: Path) -> None:
    """A torch zip named .npy, a pickle named .safetensors: read for what they are."""
    F.state_dict(tmp_path / "weights.npy")
    assert _one(tmp_path / "weights.npy").format == "pytorch-zip"
    marker = tmp_path / "PWNED"
    evil = next(c for c in CASES if c.name == "os.system p2").build(str(marker))
    (tmp_path / "model.safetensors").write_bytes(evil)
    rep = _one(tmp_path / "model.safetensors")
    assert (rep.format, rep.verdict) == ("pickle", FileVerdict.DANGEROUS)
    assert not marker.exists()


def test_numpy1_scalar_names_hand_built_at_protocol_4(tmp_path: Path) -> None:
    """numpy 1.x pickles name numpy.core.multiarray.scalar; numpy 2 writes numpy._core."""
    value = {"step": np.int64(7), "loss": np.float64(0.5)}
    data = pickle.dumps(value, protocol=4)
    # one FRAME around everything: drop it (frames are optional) so the name can change length
    assert data[2] == 0x95 and int.from_bytes(data[3:11], "little") == len(data) - 11
    data = data[:2] + data[11:]
    assert ustr("numpy._core.multiarray") in data
    old = data.replace(ustr("numpy._core.multiarray"), ustr("numpy.core.multiarray"))
    with warnings.catch_warnings():  # numpy 2 still loads numpy 1 names through numpy.core
        warnings.simplefilter("ignore")
        assert pickle.loads(old) == value
    path = tmp_path / "np1.pkl"
    path.write_bytes(old)
    rep = _one(path)
    assert rep.verdict is FileVerdict.SAFE
    assert "numpy.core.multiarray.scalar" in {g.qualified_name for g in rep.globals}
    assert all(g.verdict is Verdict.SAFE for g in rep.globals)
