from __future__ import annotations

import io

import pytest

from ckptguard._reporters import _human
from ckptguard._results import FileReport, GlobalRef, ScanReport
from ckptguard._verdict import FileVerdict, Verdict
from tests._reporters import samples as S


def _block(text: str, path: str) -> str:
    """The lines of one file's block (from its header to the next header)."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        if not line.startswith(" "):
            inside = path in line
            if inside:
                out.append(line)
            continue
        if inside:
            out.append(line)
    assert out, f"{path} not in report:\n{text}"
    return "\n".join(out)


def test_every_file_has_path_format_verdict() -> None:
    text = _human.render(S.REPORT)
    for f in S.REPORT.files:
        block = _block(text, f.path)
        assert f.format in block
        assert f.verdict.value.upper() in block


def test_unknown_global_gets_allow_flag_python_and_convert_hints() -> None:
    block = _block(_human.render(S.REPORT), S.REVIEW_FILE.path)
    assert "unknown" in block
    assert "deepafx_st.utils.DSPMode" in block
    assert "not in any vetted profile" in block
    assert "2x call" in block
    assert "ckptguard scan 'ckpts/with enum.ckpt' --allow deepafx_st.utils.DSPMode" in block
    assert "ckptguard.load(path, allow=['deepafx_st.utils.DSPMode'])" in block
    assert "ckptguard convert" in block


def test_dangerous_file_says_do_not_load_and_never_suggests_allow() -> None:
    block = _block(_human.render(S.REPORT), S.DANGEROUS_FILE.path)
    assert "os.system" in block
    assert "runs a shell command" in block
    assert "do not load it" in block
    assert "import os.system" in block
    assert "--allow" not in block
    assert "allow=" not in block
    # the finding: severity, rule, message
    assert (
        "dangerous" in block and "pickle-reduce-dangerous" in block and "calls os.system" in block
    )


def test_error_file_shows_diagnosis_and_hint() -> None:
    block = _block(_human.render(S.REPORT), S.ERROR_FILE.path)
    assert "scan-error" in block
    assert "Git LFS pointer" in block
    assert "hint: run: git lfs pull" in block


def test_safe_globals_only_with_verbose() -> None:
    plain = _human.render(S.REPORT)
    verbose = _human.render(S.REPORT, verbose=True)
    assert "_rebuild_tensor_v2" not in plain
    assert "torch._utils._rebuild_tensor_v2" in verbose
    assert "zip-info" not in plain  # info findings too
    assert "zip-info" in verbose
    assert "ckpts/README.md" in verbose  # skipped files listed


def test_summary_line_counts_verdicts_and_skipped() -> None:
    last = _human.render(S.REPORT).splitlines()[-1]
    assert last == (
        "4 files scanned: 1 safe, 1 review, 1 dangerous, 1 error; 1 skipped (not checkpoints)"
    )
    empty = _human.render(ScanReport(files=()))
    assert "no checkpoint files found" in empty


def test_quiet_prints_only_problem_files() -> None:
    text = _human.render(S.REPORT, quiet=True)
    assert S.SAFE_FILE.path not in text
    assert S.REVIEW_FILE.path in text
    assert "scanned" not in text
    assert _human.render(ScanReport(files=(S.SAFE_FILE,)), quiet=True) == ""


def test_colour_only_when_asked() -> None:
    assert "\x1b[" not in _human.render(S.REPORT)
    assert "\x1b[" in _human.render(S.REPORT, color=True)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_use_color_respects_tty_and_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert _human.use_color(_Tty())
    assert not _human.use_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not _human.use_color(_Tty())


def test_hostile_names_cannot_inject_terminal_escapes() -> None:
    evil = GlobalRef(
        module="x\x1b]0;pwned\x07",
        name="y\nFAKE LINE",
        verdict=Verdict.UNKNOWN,
        reason="not vetted",
        count=1,
    )
    rep = FileReport(
        path="a\x1b[2Jb.pt", format="pickle", verdict=FileVerdict.REVIEW, globals=(evil,)
    )
    text = _human.render(ScanReport(files=(rep,)))
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "\nFAKE LINE" not in text
    assert "\\x1b" in text


def test_format_size() -> None:
    assert _human.format_size(None) is None
    assert _human.format_size(131) == "131 B"
    assert _human.format_size(4096) == "4.0 KiB"
    assert _human.format_size(3 * 1024**3) == "3.0 GiB"
