"""End-to-end tests of ``ckptguard convert`` and ``ckptguard inspect`` (in process, main(argv))."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from ckptguard._cli import main
from tests import factories as F
from tests._cli.conftest import Files
from tests.pickleasm import system


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, out + err
    return code, out, err


def test_convert_ok_exits_0_with_a_summary(
    files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dst = tmp_path / "out.pt"
    code, out, _ = run(capsys, "convert", files.enum, dst)
    assert code == 0, out
    assert f"1 x {files.enum_global} -> its value" in out
    assert torch.load(dst)["hparams"]["mode"] == "infer"


def test_convert_dangerous_exits_1_and_writes_nothing(
    files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dst = tmp_path / "out.pt"
    code, _, err = run(capsys, "convert", files.dangerous, dst)
    assert code == 1
    assert "refusing to convert" in err and "os.system" in err
    assert not dst.exists() and not files.marker.exists()


def test_convert_errors_exit_2(
    files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "exists.pt"
    existing.write_bytes(b"x")
    code, _, err = run(capsys, "convert", files.safe, existing)
    assert code == 2 and "--force" in err
    assert existing.read_bytes() == b"x"
    code, _, _ = run(capsys, "convert", files.safe, existing, "--force")
    assert code == 0
    code, _, err = run(capsys, "convert", files.truncated, tmp_path / "t.pt")
    assert code == 2 and "truncat" in err.lower()
    code, _, _ = run(capsys, "convert", files.safe)
    assert code == 2
    code, _, _ = run(capsys, "convert", files.lfs, tmp_path / "lfs.pt")
    assert code == 2


def test_convert_json(files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "convert", files.training, tmp_path / "o.pt", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["source_format"] == "pytorch-zip" and doc["storages_new"] == 2
    assert doc["types"]["/step"]["type"] == "numpy.int64"


def test_convert_in_place_keeps_backups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "ckpts"
    d.mkdir()
    F.user_enum_checkpoint(d / "enum.ckpt")
    F.state_dict(d / "clean.pt")
    F.legacy_checkpoint(d / "legacy.pt")
    (d / "evil.pt").write_bytes(system(f"touch {tmp_path / 'PWNED'}"))
    (d / "notes.txt").write_text("hello")
    originals = {p.name: p.read_bytes() for p in d.iterdir()}
    code, out, _ = run(capsys, "convert", "--in-place", d)
    assert code == 1, out  # one file refused
    assert "converted" in out and "refused" in out and "unchanged" in out
    assert (d / ".ckptguard-backup" / "enum.ckpt").read_bytes() == originals["enum.ckpt"]
    assert (d / ".ckptguard-backup" / "legacy.pt").read_bytes() == originals["legacy.pt"]
    assert not (d / ".ckptguard-backup" / "clean.pt").exists()
    assert (d / "clean.pt").read_bytes() == originals["clean.pt"]
    assert (d / "evil.pt").read_bytes() == originals["evil.pt"]
    assert not (tmp_path / "PWNED").exists()
    assert torch.load(d / "enum.ckpt")["hparams"]["mode"] == "infer"
    assert len(torch.load(d / "legacy.pt")) == len(
        torch.load(d / ".ckptguard-backup" / "legacy.pt", weights_only=False)
    )
    # a second run changes nothing and does not overwrite the backups
    code, out, _ = run(capsys, "convert", "--in-place", d)
    assert out.splitlines()[-1].startswith("0 converted, 3 unchanged, 1 refused")
    assert (d / ".ckptguard-backup" / "enum.ckpt").read_bytes() == originals["enum.ckpt"]


def test_inspect_file_and_json(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", files.training)
    assert code == 0
    assert "step 120, epoch 3" in out and "val_loss 0.25" in out
    assert "4.weight: tensor float32 [5x144] 2.8 KiB" in out  # the units of scan
    code, out, _ = run(capsys, "inspect", files.training, "--json")
    doc = json.loads(out)
    assert doc["step"] == 120 and doc["tree"]["type"] == "dict"


def test_inspect_directory_table(
    files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "ck"
    d.mkdir()
    for i, loss in enumerate([0.9, 0.3, 0.5]):
        torch.save({"step": (i + 1) * 10, "val_loss": loss, "w": torch.zeros(2)}, d / f"s{i}.pt")
    shutil.copy(files.truncated, d / "broken.pt")
    code, out, _ = run(capsys, "inspect", d)
    lines = out.splitlines()
    assert code == 2  # the broken file is listed as an error
    names = [ln.split()[1] if ln.startswith("*") else ln.split()[0] for ln in lines[1:]]
    assert [Path(n).name for n in names[:3]] == ["s2.pt", "s1.pt", "s0.pt"]
    best = next(ln for ln in lines if ln.startswith("*"))
    assert "s1.pt" in best
    code, out, _ = run(capsys, "inspect", d, "--json", "--sort", "best")
    doc = json.loads(out)
    assert [Path(c["path"]).name for c in doc["checkpoints"]][:3] == ["s1.pt", "s2.pt", "s0.pt"]
    assert doc["primary_metric"] == "val_loss"


def test_inspect_missing_path_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "inspect", "/no/such/file.pt")
    assert code == 2 and "no such file" in err
