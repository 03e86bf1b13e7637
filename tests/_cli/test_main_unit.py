"""main() error handling, with the scanner replaced (no checkpoint needed)."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Callable
from typing import Any

import pytest

from ckptguard._cli import main
from ckptguard._errors import PolicyError
from ckptguard._results import ScanReport
from tests._reporters import samples as S


def _fake_scanner(
    monkeypatch: pytest.MonkeyPatch,
    scan_paths: Callable[..., ScanReport],
    resolve_policy: Callable[..., object] = lambda **kw: object(),
) -> None:
    scan_mod = types.ModuleType("ckptguard._scan")
    scan_mod.scan_paths = scan_paths  # type: ignore[attr-defined]
    policy_mod = types.ModuleType("ckptguard._policy")
    policy_mod.resolve_policy = resolve_policy  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ckptguard._scan", scan_mod)
    monkeypatch.setitem(sys.modules, "ckptguard._policy", policy_mod)


def test_exit_code_follows_the_report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}

    def scan_paths(paths: list[str], **kw: Any) -> ScanReport:
        seen.update(kw, paths=paths)
        return ScanReport(files=(S.SAFE_FILE, S.REVIEW_FILE))

    def resolve_policy(**kw: Any) -> object:
        seen["policy_args"] = kw
        return "POLICY"

    _fake_scanner(monkeypatch, scan_paths, resolve_policy)
    code = main(["scan", "a.pt", "b", "--allow", "x.Y", "--allow", "z.*", "--jobs", "3"])
    assert code == 1
    assert seen["paths"] == ["a.pt", "b"]
    assert seen["jobs"] == 3
    assert seen["policy"] == "POLICY"
    assert seen["policy_args"] == {
        "allow": ["x.Y", "z.*"],
        "policy": None,
        "targets": ["a.pt", "b"],  # a pyproject.toml around them is not applied
    }
    assert seen["progress"] is not None  # stderr is not a TTY here: the bar draws nothing
    out, err = capsys.readouterr()
    assert "REVIEW" in out and err == ""


@pytest.mark.parametrize(
    ("files", "code"),
    [
        ((S.SAFE_FILE,), 0),
        ((S.SAFE_FILE, S.REVIEW_FILE), 1),
        ((S.DANGEROUS_FILE,), 1),
        ((S.ERROR_FILE, S.DANGEROUS_FILE), 2),
        ((), 2),  # nothing scanned: never a clean exit
    ],
)
def test_exit_codes(files: tuple[Any, ...], code: int, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_scanner(monkeypatch, lambda paths, **kw: ScanReport(files=files))
    assert main(["scan", "x", "--no-progress"]) == code
    assert main(["scan", "x", "--json"]) == code


def test_json_mode_has_no_progress_and_one_document(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def scan_paths(paths: list[str], **kw: Any) -> ScanReport:
        assert kw["progress"] is None
        return S.REPORT

    _fake_scanner(monkeypatch, scan_paths)
    assert main(["scan", "x", "--json"]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["summary"]["files"] == 4
    assert err == ""


def test_sarif_to_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_scanner(monkeypatch, lambda paths, **kw: S.REPORT)
    assert main(["scan", "x", "--sarif", "-"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == "2.1.0"


def test_policy_error_is_a_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def resolve_policy(**kw: Any) -> object:
        raise PolicyError("policy.toml: unknown key 'alow'", hint="did you mean 'allow'?")

    _fake_scanner(monkeypatch, lambda paths, **kw: S.REPORT, resolve_policy)
    assert main(["scan", "x", "--policy", "policy.toml"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "ckptguard: error: policy.toml: unknown key 'alow'\n  hint: did you mean 'allow'?\n"
    )


def test_internal_error_exits_2_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def scan_paths(paths: list[str], **kw: Any) -> ScanReport:
        raise IndexError("pop from empty list")

    _fake_scanner(monkeypatch, scan_paths)
    monkeypatch.delenv("CKPTGUARD_DEBUG", raising=False)
    assert main(["scan", "x"]) == 2
    _, err = capsys.readouterr()
    assert "internal error: IndexError: pop from empty list" in err
    assert "Traceback" not in err
    monkeypatch.setenv("CKPTGUARD_DEBUG", "1")
    with pytest.raises(IndexError):
        main(["scan", "x"])


def test_keyboard_interrupt_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def scan_paths(paths: list[str], **kw: Any) -> ScanReport:
        raise KeyboardInterrupt

    _fake_scanner(monkeypatch, scan_paths)
    assert main(["scan", "x"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_help_wraps_to_columns_without_shutil(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's formatter reads the width itself (argparse's imports shutil at every start)."""
    from ckptguard._cli import build_parser

    monkeypatch.setenv("COLUMNS", "50")
    text = build_parser().format_help()
    assert max(len(line) for line in text.splitlines()) <= 50
    sub = build_parser()._subparsers._group_actions[0].choices["scan"]  # type: ignore[union-attr]
    assert "Directories are walked recursively" in sub.format_help()  # raw description kept


def test_main_builds_only_the_subcommand_it_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from ckptguard._cli import build_parser

    choices = build_parser(full={"scan"})._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert list(choices) == ["scan"]
    names = ("scan", "run", "convert", "inspect", "code")
    assert main(["--help"]) == 0  # help lists every command, with its help line
    out = capsys.readouterr().out
    assert all(f"    {n} " in out for n in names), out
    assert main(["sacn", "x.pt"]) == 2  # so does the error for a typo
    err = capsys.readouterr().err
    assert "invalid choice: 'sacn'" in err
    assert all(f"'{n}'" in err for n in names), err
    assert main(["inspect", "--help"]) == 0
    assert "--sort" in capsys.readouterr().out


def test_main_leaves_the_garbage_collector_as_it_found_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import gc

    frozen: list[int] = []

    def scan_paths(paths: list[str], **kwargs: Any) -> ScanReport:
        frozen.append(gc.get_freeze_count())
        return ScanReport(files=(S.SAFE_FILE,))

    _fake_scanner(monkeypatch, scan_paths)
    assert main(["scan", "a.pt", "--json"]) == 0
    assert frozen[0] > 0  # import-time objects are out of the collector's way during the run
    assert gc.get_freeze_count() == 0
