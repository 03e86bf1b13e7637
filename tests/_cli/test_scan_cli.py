"""End-to-end tests of ``ckptguard scan`` (the real scanner, in process via main(argv))."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from ckptguard._cli import main
from tests._cli.conftest import Files
from tests._reporters.test_sarif import check_sarif
from tests.pickleasm import EMPTY_DICT, MARK, MEMOIZE, binput, frame, proto


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, out + err
    return code, out, err


def test_safe_files_exit_0(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "scan", files.safe, files.training)
    assert code == 0, out
    assert "SAFE" in out
    assert "2 files scanned: 2 safe" in out


def test_unknown_global_exits_1_with_allow_hint(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "scan", files.enum)
    assert code == 1, out
    assert "REVIEW" in out
    assert files.enum_global in out
    assert f"ckptguard scan {files.enum} --allow {files.enum_global}" in out
    assert f"ckptguard.load(path, allow=['{files.enum_global}'])" in out
    assert "ckptguard convert" in out


def test_allow_turns_review_into_safe(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "scan", files.enum, "--allow", files.enum_global)
    assert code == 0, out
    code, out, _ = run(capsys, "scan", files.enum, "--allow", files.enum_global, "--json")
    doc = json.loads(out)
    (g,) = [g for g in doc["files"][0]["globals"] if g["name"] == files.enum_global]
    assert g["verdict"] == "allowed"
    assert doc["files"][0]["verdict"] == "safe"


def test_dangerous_exits_1_without_allow_hint(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "scan", files.dangerous)
    assert code == 1, out
    assert "DANGEROUS" in out
    assert "system" in out
    assert "do not load it" in out
    assert "--allow" not in out
    assert "allow=" not in out
    assert not files.marker.exists(), "the hostile pickle was executed"


def test_allow_cannot_make_dangerous_safe(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "scan", files.dangerous, "--allow", "os.system")
    assert code in (1, 2), out + err  # refused either as still dangerous or as a policy error
    assert not files.marker.exists()


@pytest.mark.parametrize("kind", ["truncated", "lfs"])
def test_broken_file_exits_2_with_diagnosis(
    kind: str, files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    path = getattr(files, kind)
    code, out, _ = run(capsys, "scan", path)
    assert code == 2, out
    assert "ERROR" in out
    assert "scan-error" in out or "error" in out


def test_lfs_pointer_is_named(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "scan", files.lfs, "--json")
    (f,) = json.loads(out)["files"]
    assert f["verdict"] == "error"
    assert "lfs" in f["format"].lower() or "LFS" in json.dumps(f["findings"])


def test_missing_path_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "scan", tmp_path / "nope.pt")
    assert code == 2
    assert "nope.pt" in out


def test_error_wins_over_review(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(capsys, "scan", files.enum, files.dangerous, files.truncated)
    assert code == 2


def test_bad_flag_exits_2(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(files.safe), "--no-such-flag"]) == 2
    assert "usage:" in capsys.readouterr().err
    assert main(["scan"]) == 2
    assert main(["scan", str(files.safe), "--jobs", "0"]) == 2
    assert main(["frobnicate"]) == 2
    assert main([]) == 2
    capsys.readouterr()


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("ckptguard ")
    assert main(["scan", "--help"]) == 0
    assert "--allow" in capsys.readouterr().out


def test_bad_policy_file_exits_2(
    files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text("this is = = not toml [\n")
    code, out, err = run(capsys, "scan", files.safe, "--policy", bad)
    assert code == 2
    assert "ckptguard: error:" in err
    assert out == ""


def test_missing_policy_file_exits_2(
    files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "scan", files.safe, "--policy", tmp_path / "absent.toml")
    assert code == 2
    assert "ckptguard: error:" in err


def test_malformed_allow_exits_2(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "scan", files.safe, "--allow", "not a global!")
    assert code == 2
    assert "ckptguard: error:" in err


def test_json_document(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "scan", files.safe, files.enum, files.dangerous, "--json")
    assert code == 1
    doc = json.loads(out)  # exactly one JSON document on stdout
    assert [f["path"] for f in doc["files"]] == [
        str(files.safe),
        str(files.enum),
        str(files.dangerous),
    ]
    for f in doc["files"]:
        assert {"path", "format", "verdict", "globals", "findings"} <= f.keys()
        assert f["verdict"] in {"safe", "review", "dangerous", "error"}
        for g in f["globals"]:
            assert {"name", "verdict", "reason", "count"} <= g.keys()
            assert g["name"] == f"{g['module']}.{g['attribute']}"
            assert g["verdict"] in {"safe", "allowed", "unknown", "dangerous"}
            assert isinstance(g["count"], int) and g["count"] >= 1
        for x in f["findings"]:
            assert {"rule", "severity", "message"} <= x.keys()
    safe, enum, evil = doc["files"]
    assert safe["format"] == "pytorch-zip"
    assert safe["verdict"] == "safe"
    assert any(g["name"] == "torch._utils._rebuild_tensor_v2" for g in safe["globals"])
    assert enum["verdict"] == "review"
    assert {g["name"]: g["verdict"] for g in enum["globals"]}[files.enum_global] == "unknown"
    assert evil["verdict"] == "dangerous"
    assert any(g["verdict"] == "dangerous" for g in evil["globals"])


def test_sarif_file(files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    local = tmp_path / "ckpts"
    local.mkdir()
    for p in (files.safe, files.enum, files.dangerous, files.truncated):
        shutil.copy(p, local / p.name)
    sarif = tmp_path / "out.sarif"
    code, out, _ = run(capsys, "scan", "ckpts", "--sarif", sarif)
    assert code == 2
    assert "ERROR" in out  # the human report still goes to stdout
    run_ = check_sarif(json.loads(sarif.read_text()))
    by_rule: dict[str, set[str]] = {}
    for r in run_["results"]:
        art = r["locations"][0]["physicalLocation"]["artifactLocation"]
        assert art["uriBaseId"] == "%SRCROOT%"
        by_rule.setdefault(r["ruleId"], set()).add(art["uri"])
    assert "ckpts/enum.ckpt" in by_rule["global-unknown"]
    assert "ckpts/evil.pt" in by_rule["global-dangerous"]
    assert "ckpts/truncated.pt" in by_rule["scan-error"]
    assert not any("state_dict.pt" in u for uris in by_rule.values() for u in uris)


def test_sarif_to_stdout_conflicts_with_json(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "scan", files.safe, "--json", "--sarif", "-")
    assert code == 2
    assert "stdout" in err


def test_sarif_unwritable_exits_2(
    files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "scan", files.safe, "--sarif", tmp_path / "no" / "dir.sarif")
    assert code == 2
    assert "SARIF" in err


def test_directory_recursion_skips_non_checkpoints(
    files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "models"
    (root / "a" / "b").mkdir(parents=True)
    shutil.copy(files.safe, root / "top.pt")
    shutil.copy(files.training, root / "a" / "training.pt")
    shutil.copy(files.safe, root / "a" / "b" / "weights.bin")
    (root / "README.md").write_text("# My model\n\nTrained for 3 epochs.\n")
    code, out, _ = run(capsys, "scan", root, "--json")
    assert code == 0, out
    doc = json.loads(out)
    scanned = sorted(Path(f["path"]).relative_to(root).as_posix() for f in doc["files"])
    assert scanned == ["a/b/weights.bin", "a/training.pt", "top.pt"]
    assert [(Path(s["path"]).name, s["model_format"]) for s in doc["skipped"]] == [
        ("README.md", None)
    ]
    code, out, _ = run(capsys, "scan", root)
    assert "1 skipped" in out.splitlines()[-1]


def test_parallel_jobs_same_result(
    files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(10):
        shutil.copy(files.safe if i % 3 else files.enum, root / f"m{i:02}.pt")
    _, serial, _ = run(capsys, "scan", root, "--json", "--jobs", "1")
    code, parallel, _ = run(capsys, "scan", root, "--json", "--jobs", "2")
    assert code == 1
    assert json.loads(serial)["files"] == json.loads(parallel)["files"]


def test_quiet_and_verbose(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "scan", files.safe, "-q")
    assert (code, out) == (0, "")
    _, out, _ = run(capsys, "scan", files.safe, "-v")
    assert "torch._utils._rebuild_tensor_v2" in out
    _, out, _ = run(capsys, "scan", files.safe)
    assert "_rebuild_tensor_v2" not in out
    assert main(["scan", str(files.safe), "-q", "-v"]) == 2
    capsys.readouterr()


def test_no_progress_bar_when_not_a_tty(
    files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "d"
    root.mkdir()
    for i in range(6):
        shutil.copy(files.safe, root / f"{i}.pt")
    _, _, err = run(capsys, "scan", root)
    assert err == ""


BROKEN: dict[str, bytes] = {
    "empty.pt": b"",
    "random.pt": bytes(range(256)) * 4,
    "html.ckpt": b"<!DOCTYPE html><html><body>Sign in to continue</body></html>\n",
    "zip-header-only.pt": b"PK\x03\x04" + b"\x00" * 26,
    "pickle-truncated.pkl": proto(4) + frame(16) + EMPTY_DICT + MEMOIZE + MARK + b"\x8c",
    "pickle-no-stop.pkl": proto(2) + EMPTY_DICT + binput(0),
    "bad-opcode.pkl": proto(2) + b"\xff",
    "huge-length.pkl": proto(4) + b"\x8d" + struct.pack("<Q", 2**63 - 1),  # BINUNICODE8
}


def test_never_a_traceback_for_broken_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, data in BROKEN.items():
        (tmp_path / name).write_bytes(data)
    paths = [tmp_path / n for n in BROKEN]
    code, out, _ = run(capsys, "scan", *paths)
    assert code == 2, out
    for p in paths:
        assert str(p) in out
    code, out, _ = run(capsys, "scan", *paths, "--json")
    assert code == 2
    verdicts = {Path(f["path"]).name: f["verdict"] for f in json.loads(out)["files"]}
    assert set(verdicts) == set(BROKEN)
    assert all(v != "safe" for v in verdicts.values()), verdicts


def test_json_is_one_compact_line_for_programs(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "scan", files.safe, files.enum, "--json")
    assert code == 1
    assert out.count("\n") == 1  # the document, then a newline
    assert json.loads(out)["files"][1]["verdict"] == "review"


def test_json_is_indented_on_a_terminal(
    files: Files, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    code, out, _ = run(capsys, "scan", files.safe, "--json")
    assert code == 0
    assert out.startswith('{\n  "tool": "ckptguard"')
    assert json.loads(out)["files"][0]["verdict"] == "safe"
