"""Directory scans: every file is scanned or listed as not scanned with its reason; sniffing
never decides safety; model formats ckptguard does not read, and scans that read nothing, are
errors (exit 2), in the API, human, JSON and SARIF output."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest

import ckptguard
from ckptguard import FileVerdict
from ckptguard._cli import main
from ckptguard._formats import sniff
from tests.hostile_formats import payload
from tests.pickleasm import EMPTY_SET, NEWTRUE, POP, binbytes, framed, ustr


def _savedmodel(root: Path) -> Path:
    (root / "variables").mkdir(parents=True)
    (root / "saved_model.pb").write_bytes(b"\x08\x01\x12\x00")
    (root / "fingerprint.pb").write_bytes(b"\x08\x9a")
    (root / "variables" / "variables.index").write_bytes(b"\x00\x00\x01")
    (root / "variables" / "variables.data-00000-of-00001").write_bytes(b"\x00" * 64)
    return root


def test_a_savedmodel_folder_is_an_error_not_safe(tmp_path: Path) -> None:
    report = ckptguard.scan(_savedmodel(tmp_path / "sm"))
    assert report.files == ()
    assert report.verdict is FileVerdict.ERROR and report.exit_code == 2
    names = {Path(s.path).name: s.model_format for s in report.skipped}
    assert names["saved_model.pb"] == "tensorflow"
    assert names["variables.data-00000-of-00001"] == "tensorflow"
    assert all(s.reason for s in report.skipped)


@pytest.mark.parametrize(
    ("name", "data", "fmt"),
    [
        ("model.onnx", b"\x08\x07\x12\x04onnx", "onnx"),
        ("model.keras", b"\x00\x00keras", "keras"),
        ("model.tflite", b"\x1c\x00\x00\x00TFL3\x00\x00", "tflite"),
        ("weights", b"GGUF\x03\x00\x00\x00" + b"\x00" * 16, "gguf"),
        ("weights.hdf5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 16, "hdf5"),
    ],
)
def test_other_model_formats_next_to_a_safe_checkpoint_make_the_scan_an_error(
    tmp_path: Path, name: str, data: bytes, fmt: str
) -> None:
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps({"a": 1}))
    (tmp_path / name).write_bytes(data)
    report = ckptguard.scan(tmp_path)
    assert [f.verdict for f in report.files] == [FileVerdict.SAFE]
    unread = [s for s in report.skipped if s.model_format is not None]
    assert [(Path(s.path).name, s.model_format) for s in unread] == [(name, fmt)]
    assert "does not read" in unread[0].reason
    assert report.verdict is FileVerdict.ERROR and report.exit_code == 2


def test_an_empty_directory_is_an_error(tmp_path: Path) -> None:
    assert ckptguard.scan(tmp_path).exit_code == 2
    (tmp_path / "README.md").write_text("# nothing here\n")
    report = ckptguard.scan(tmp_path)
    assert report.files == () and report.exit_code == 2


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(lambda m: framed(payload(m, 0)), id="FRAME"),
        pytest.param(lambda m: NEWTRUE + POP + payload(m, 0), id="NEWTRUE"),
        pytest.param(lambda m: ustr("x") + POP + payload(m, 0), id="SHORT_BINUNICODE"),
        pytest.param(lambda m: binbytes(b"x") + POP + payload(m, 0), id="SHORT_BINBYTES"),
        pytest.param(lambda m: EMPTY_SET + POP + payload(m, 0), id="EMPTY_SET"),
    ],
)  # fmt: skip
def test_a_pickle_with_any_first_opcode_is_scanned_in_a_directory(
    tmp_path: Path, first: Callable[[str], bytes]
) -> None:
    marker = tmp_path / "PWNED"
    (tmp_path / "blob").write_bytes(first(str(marker)))
    assert sniff(tmp_path / "blob") == "pickle"
    report = ckptguard.scan(tmp_path)
    assert [Path(f.path).name for f in report.files] == ["blob"]
    assert report.files[0].verdict is FileVerdict.DANGEROUS
    assert not marker.exists()


@pytest.mark.parametrize(
    "text",
    [
        "Copyright (c) 2024 someone\n\nPermission is hereby granted...\n",
        "Licensed under the Apache License, Version 2.0\n",
        "(c) the authors\n",
        "]]>\n",
        "}\n",
        "I am a plain note\n",
        "config:\n  lr: 0.1\n",
    ],
)
def test_text_files_are_listed_as_not_checkpoints(tmp_path: Path, text: str) -> None:
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps([1]))
    (tmp_path / "NOTES").write_text(text)
    report = ckptguard.scan(tmp_path)
    assert [Path(f.path).name for f in report.files] == ["ok.pkl"]
    assert [(Path(s.path).name, s.model_format) for s in report.skipped] == [("NOTES", None)]
    assert report.skipped[0].reason.startswith("not a checkpoint")
    assert report.exit_code == 0


def test_links_pipes_and_unreadable_entries_are_listed(tmp_path: Path) -> None:
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps([1]))
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "link")
    os.symlink(tmp_path / "missing", tmp_path / "dangling")
    os.mkfifo(tmp_path / "pipe")
    report = ckptguard.scan(tmp_path)
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert "symbolic link to a directory" in reasons["link"]
    assert "broken symbolic link" in reasons["dangling"]
    assert "not a regular file" in reasons["pipe"]


def test_cli_output_names_what_was_not_scanned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps([1]))
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07")
    (tmp_path / "README.md").write_text("# hi\n")
    assert main(["scan", str(tmp_path), "--no-progress"]) == 2
    out = capsys.readouterr().out
    assert "model.onnx" in out and "does not read" in out
    assert main(["scan", str(tmp_path), "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "error" and doc["summary"]["unread_models"] == 1
    skipped = {Path(s["path"]).name: s for s in doc["skipped"]}
    assert skipped["model.onnx"]["model_format"] == "onnx"
    assert skipped["README.md"]["model_format"] is None and skipped["README.md"]["reason"]
    sarif = tmp_path / "out.sarif"
    assert main(["scan", str(tmp_path), "--sarif", str(sarif), "--no-progress"]) == 2
    capsys.readouterr()
    run = json.loads(sarif.read_text())["runs"][0]
    assert [r["ruleId"] for r in run["results"]] == ["format-not-read"]


def test_a_model_of_another_format_named_explicitly_says_so(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07\x12\x04onnx")
    rep = ckptguard.scan(path).files[0]
    assert rep.verdict is FileVerdict.ERROR and rep.format == "onnx"
    assert rep.findings[0].rule == "format-not-read"


def test_version_control_directories_are_listed_not_walked(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "objects.pkl").write_bytes(pickle.dumps([1]))
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps([1]))
    report = ckptguard.scan(tmp_path)
    assert [Path(f.path).name for f in report.files] == ["ok.pkl"]
    assert [(Path(s.path).name, s.model_format) for s in report.skipped] == [(".git", None)]
