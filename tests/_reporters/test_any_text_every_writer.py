"""Every reporter survives any string a file can hold: lone surrogates, controls, escapes,
bidi characters, huge code points. Human text comes out terminal-safe; JSON and SARIF come out
as valid UTF-8 JSON that parses back (the --sarif crash: a lone surrogate in a global's name
left an empty SARIF file and no report)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ckptguard._code._findings import CodeError, CodeFinding, CodeReport, FileResult
from ckptguard._code._rules import RULES
from ckptguard._reporters import _code, _code_sarif, _human, _json, _jsontext, _sarif
from ckptguard._results import FileRecord, FindingRecord, GlobalRecord, ScanRecord, SkippedRecord
from ckptguard._verdict import FileVerdict, Severity, Use, Verdict
from tests._reporters.textcheck import json_problems, terminal_problems

# Any code point, surrogates included (hypothesis leaves them out by default), with the
# characters that matter most drawn often.
_chars = st.one_of(
    st.characters(codec=None, exclude_categories=()),
    st.integers(0xD800, 0xDFFF).map(chr),
    st.sampled_from(["\x1b", "\r", "\n", "\x9b", "\u202e", "\u2028", "\x7f", "\x00", "/", "~"]),
)
_text = st.text(_chars, max_size=12)


@st.composite
def scan_records(draw: st.DrawFn) -> ScanRecord:
    files = []
    for verdict in draw(st.lists(st.sampled_from(list(FileVerdict)), min_size=1, max_size=3)):
        globals_ = tuple(
            GlobalRecord(
                draw(_text),
                draw(_text),
                draw(st.sampled_from(list(Verdict))),
                draw(_text),
                draw(st.integers(1, 3)),
                uses=(Use.CALL,),
                locations=(draw(_text),),
            )
            for _ in range(draw(st.integers(0, 2)))
        )
        findings = tuple(
            FindingRecord(
                draw(_text),
                draw(st.sampled_from(list(Severity))),
                draw(_text),
                draw(st.one_of(st.none(), _text)),
            )
            for _ in range(draw(st.integers(0, 2)))
        )
        files.append(
            FileRecord(
                draw(_text) or "f",
                draw(_text),
                verdict,
                globals=globals_,
                findings=findings,
                pickles=(draw(_text),),
                size=draw(st.one_of(st.none(), st.integers(0, 10**12))),
                hint=draw(st.one_of(st.none(), _text)),
            )
        )
    skipped = SkippedRecord(draw(_text), draw(_text), draw(st.one_of(st.none(), _text)))
    return ScanRecord(tuple(files), skipped=(skipped,))


@st.composite
def code_reports(draw: st.DrawFn) -> CodeReport:
    path = draw(_text) or "x.py"
    finding = CodeFinding(
        path, 1, 2, 1, 9, draw(st.sampled_from(RULES)), draw(_text), draw(st.booleans())
    )
    error = CodeError(draw(_text) or "y.py", draw(_text), hint=draw(_text), line=3, column=1)
    return CodeReport(
        files=(FileResult(path, findings=(finding,)), FileResult(error.path, error=error)),
        errors=(CodeError(draw(_text) or "z", draw(_text)),),
    )


@settings(max_examples=60, deadline=None)
@given(scan_records())
def test_scan_reporters_take_any_text(report: ScanRecord) -> None:
    for color in (False, True):
        for verbose in (False, True):
            text = _human.render(report, verbose=verbose, color=color)
            assert terminal_problems(text, color=color) == []
    assert json_problems(_json.dumps(report)) == []
    assert json_problems(_json.dumps(report, indent=None)) == []
    sarif = _sarif.dumps(report, base_dir="/work/some dir")
    assert json_problems(sarif) == []
    assert json.loads(sarif)["version"] == "2.1.0"


@settings(max_examples=60, deadline=None)
@given(code_reports())
def test_code_reporters_take_any_text(report: CodeReport) -> None:
    for color in (False, True):
        assert terminal_problems(_code.render(report, color=color), color=color) == []
        assert terminal_problems(_code.render_errors(report, color=color), color=color) == []
    assert json_problems(_code.dumps(report)) == []
    assert json_problems(_code_sarif.dumps(report, base_dir="/w")) == []


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _text),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=3)
        ),
        max_leaves=10,
    )
)
def test_the_json_writer_takes_any_document(doc: object) -> None:
    assert json_problems(_jsontext.dumps(doc)) == []


def test_lone_surrogates_are_written_as_backslash_u_text() -> None:
    text = _jsontext.dumps({"name": "mod\ud800x"})
    assert json.loads(text) == {"name": "mod\\ud800x"}
    # other controls keep their value: a JSON escape
    assert json.loads(_jsontext.dumps(["\u202e\x1b\x9b"])) == ["\u202e\x1b\x9b"]


def test_a_global_with_a_lone_surrogate_in_sarif() -> None:
    g = GlobalRecord("mod\ud800", "na\udc80me", Verdict.DANGEROUS, "odd", 1)
    f = FileRecord("p\udcff.pt", "pickle", FileVerdict.DANGEROUS, globals=(g,))
    doc = json.loads(_sarif.dumps(ScanRecord((f,)), base_dir="/tmp"))
    result = doc["runs"][0]["results"][0]
    assert result["properties"]["global"] == "mod\\ud800.na\\udc80me"
    # an undecodable byte of a file name (surrogateescape) is written as that byte
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "p%FF.pt"
