"""End to end: hostile strings in a file never reach the terminal raw, never crash a writer,
and never hide the verdict (scan, inspect, convert; human, --json, --sarif)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ckptguard._cli import main
from ckptguard._reporters import _human
from tests import hostile_output as H
from tests._reporters.textcheck import json_problems, terminal_problems


def _liveness(data: bytes, tmp_path: Path, marker: Path) -> None:
    """The payload is real: pickle.loads in a fresh process creates the marker (it may fail
    afterwards, on a name no module has: the payload ran first)."""
    path = tmp_path / "live.pkl"
    path.write_bytes(data)
    code = (
        "import pickle\n"
        f"try:\n    pickle.loads(open({str(path)!r}, 'rb').read())\n"
        "except Exception:\n    pass\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, timeout=60, check=True)
    assert marker.exists(), "the payload did not run under pickle.loads"
    marker.unlink()


@pytest.fixture
def forged(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "PWNED"
    data = H.forged_keys(str(marker))
    _liveness(data, tmp_path, marker)
    path = tmp_path / "forged.pkl"
    path.write_bytes(data)
    return path, marker


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _forged_lines(text: str) -> list[str]:
    """Lines that START like a verdict or summary a forgery tried to write."""
    starts = ("verdict: safe", "0 files scanned", "SAFE", "1 file scanned: 1 safe")
    return [line for line in text.splitlines() if line.strip().startswith(starts)]


def test_scan_of_a_forging_file_shows_the_real_verdict_and_no_control_character(
    forged: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path, marker = forged
    code, out, err = _run(["scan", str(path)], capsys)
    assert code == 1
    assert out.splitlines()[0].startswith("DANGEROUS")
    assert out.rstrip().splitlines()[-1] == "1 file scanned: 1 dangerous"
    assert terminal_problems(out) == [] and terminal_problems(err) == []
    assert _forged_lines(out) == []
    assert "os.system" in out
    assert not marker.exists()


def test_inspect_of_a_forging_file_escapes_every_key(
    forged: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path, marker = forged
    code, out, err = _run(["inspect", str(path)], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].endswith("verdict: dangerous")
    assert terminal_problems(out) == [] and terminal_problems(err) == []
    assert _forged_lines(out) == []
    assert "\\x0d\\x1b[2K verdict: safe\\x0a: 0" in out  # the key, visibly escaped
    assert any("ckptguard scan" in line for line in lines)  # the next step
    assert len(lines) == len(out.split("\n")) - 1  # no stray CR/LS/PS line breaks
    assert not marker.exists()


def test_inspect_json_of_a_forging_file_keeps_the_keys_exactly(
    forged: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _marker = forged
    code, out, _err = _run(["inspect", str(path), "--json"], capsys)
    assert code == 0
    assert json_problems(out) == []
    keys = [it["key"] for it in json.loads(out)["tree"]["items"]]
    assert keys[: len(H.FORGERIES)] == list(H.FORGERIES)


def test_convert_refuses_a_forging_file_with_a_clean_message(
    forged: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, marker = forged
    before = sorted(os.listdir(tmp_path))
    code, out, err = _run(["convert", str(path), str(tmp_path / "out.pt")], capsys)
    assert code == 1
    assert terminal_problems(err) == [] and terminal_problems(out) == []
    assert "dangerous" in err and str(path) in err and "ckptguard scan" in err
    assert sorted(os.listdir(tmp_path)) == before
    assert not marker.exists()


def test_lone_surrogates_in_names_give_full_json_and_sarif(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "PWNED"
    data = H.surrogate_names(str(marker))
    _liveness(data, tmp_path, marker)
    path = tmp_path / "surrogates.pkl"
    path.write_bytes(data)
    monkeypatch.chdir(tmp_path)
    sarif = tmp_path / "report.sarif"
    code, out, err = _run(["scan", str(path), "--json", "--sarif", str(sarif)], capsys)
    assert code == 1, err
    assert json_problems(out) == []
    assert json_problems(sarif.read_text(encoding="utf-8")) == []
    names = {g["name"] for g in json.loads(out)["files"][0]["globals"]}
    assert names == {"os.system", "mod\\ud800x.na\\udfffme\\udc80"}
    results = json.loads(sarif.read_text(encoding="utf-8"))["runs"][0]["results"]
    assert {r["properties"]["global"] for r in results if "global" in r["properties"]} == names
    code, out, err = _run(["scan", str(path)], capsys)
    assert code == 1 and terminal_problems(out) == [] and "mod\\ud800x" in out
    code, out, err = _run(["inspect", str(path), "--json"], capsys)
    assert json_problems(out) == []
    assert not marker.exists()


def test_error_messages_escape_the_paths_they_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evil = str(tmp_path / "a\x1b[2J\rverdict: safe\nb.pt")
    for argv in (["inspect", evil], ["convert", evil, str(tmp_path / "o.pt")]):
        code, _out, err = _run(argv, capsys)
        assert code == 2
        assert terminal_problems(err) == [], err
        assert err.count("\n") == len(err.splitlines()) and "\\x1b[2J" in err
        assert "hint:" in err


@pytest.mark.parametrize("build", [H.forged_keys, H.surrogate_names])
def test_load_refuses_the_hostile_output_samples(
    tmp_path: Path, build: Callable[[str], bytes]
) -> None:
    import ckptguard

    marker = tmp_path / "PWNED"
    path = tmp_path / "sample.pkl"
    path.write_bytes(build(str(marker)))
    with pytest.raises(ckptguard.UnsafeCheckpointError) as info:
        ckptguard.load(str(path))
    assert "os.system" in {g.qualified_name for g in info.value.globals}
    assert not marker.exists()


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_a_terminal_that_cannot_spell_a_name_gets_escapes_not_a_crash(
    tmp_path: Path, encoding: str
) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "modèle-模型.pkl"
    path.write_bytes(H.surrogate_names(str(marker)))
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    cli = [sys.executable, "-m", "ckptguard"]
    proc = subprocess.run(
        [*cli, "scan", str(path), "--json"], capture_output=True, env=env, timeout=120
    )
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout.decode(encoding))  # the encoding the stream was given
    assert doc["files"][0]["path"] == str(path)
    proc = subprocess.run([*cli, "scan", str(path)], capture_output=True, env=env, timeout=120)
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr
    assert proc.stdout.startswith(b"DANGEROUS")
    assert not marker.exists()


def test_an_uncaught_refusal_prints_no_control_character(tmp_path: Path) -> None:
    """A script that lets ckptguard.load's refusal propagate: Python prints the traceback with
    str(exc), which names the file's globals; it must be terminal-safe too."""
    marker = tmp_path / "PWNED"
    path = tmp_path / "forged.pkl"
    path.write_bytes(H.forged_keys(str(marker)))
    code = f"import ckptguard\nckptguard.load({str(path)!r})\n"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 1 and "UnsafeCheckpointError" in proc.stderr
    assert terminal_problems(proc.stderr) == [], proc.stderr
    assert "os.system" in proc.stderr
    assert not marker.exists()


def test_inspect_of_a_directory_escapes_names_and_keeps_the_table_aligned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "PWNED"
    (tmp_path / "a\x1b[2J\rSAFE.pkl").write_bytes(H.forged_keys(str(marker)))
    (tmp_path / "plain.pkl").write_bytes(H.shared_lists(3))
    code, out, err = _run(["inspect", str(tmp_path)], capsys)
    assert code == 0, err
    assert terminal_problems(out) == [] and terminal_problems(err) == []
    lines = out.splitlines()
    assert len(lines) == 3 and "\\x1b[2J\\x0dSAFE.pkl" in out
    verdict_at = lines[0].index("verdict")
    assert {line[verdict_at:].split()[0] for line in lines[1:]} == {"dangerous", "safe"}
    assert not marker.exists()


def test_scan_in_colour_has_only_its_own_colour_codes(
    forged: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, marker = forged
    monkeypatch.setattr(_human, "use_color", lambda _stream: True)
    code, out, _err = _run(["scan", str(path), "-v"], capsys)
    assert code == 1
    assert "\x1b[1;31m" in out  # colour is on
    assert terminal_problems(out, color=True) == []
    assert _forged_lines(out) == []
    assert not marker.exists()
