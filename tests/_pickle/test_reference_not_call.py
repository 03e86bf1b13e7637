"""Issue 11.8: a dangerous callable stored as a value is reported as what it is (a reference
the file does not call), still refused; and no call can pass for a reference."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

import ckptguard
from ckptguard import UnsafeCheckpointError
from ckptguard._advice import referenced_only
from ckptguard._cli import main
from ckptguard._verdict import FileVerdict, Severity, Use, Verdict
from tests import hostile_compat as H
from tests import pickleasm as A
from tests.subproc import run_python

_TRIES = "tries to run code"


def _write(tmp_path: Path, data: bytes, name: str = "f.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


REFERENCES = {
    "map-dict-value": A.proto(2) + A.EMPTY_DICT + A.ustr("f") + A.glob("builtins", "map")
    + A.SETITEM + A.STOP,
    "system-in-list": A.proto(2) + A.EMPTY_LIST + A.glob("os", "system") + A.APPEND + A.STOP,
    "map-in-vetted-call": A.proto(2) + A.glob("collections", "OrderedDict")
    + A.EMPTY_LIST + A.ustr("f") + A.glob("builtins", "map") + A.TUPLE2 + A.APPEND
    + A.TUPLE1 + A.REDUCE + A.STOP,
    "map-memoized-twice": A.proto(2) + A.glob("builtins", "map") + A.binput(0)
    + A.binget(0) + A.TUPLE2 + A.STOP,
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_a_referenced_callable_is_dangerous_and_said_to_be_a_reference(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, REFERENCES[name])
    pickle.loads(REFERENCES[name])
    f = ckptguard.scan(path).files[0]
    assert f.verdict is FileVerdict.DANGEROUS  # still refused: imported, handed to the caller
    (g,) = [g for g in f.globals if g.verdict is Verdict.DANGEROUS]
    assert tuple(g.uses) == (Use.REFERENCE,)
    assert referenced_only(f.globals, f.findings) == [g.qualified_name]
    assert _TRIES not in (f.hint or "")
    assert f"references {g.qualified_name}" in (f.hint or "")
    assert "does not call" in (f.hint or "")
    assert main(["scan", str(path)]) == 1
    out = capsys.readouterr().out
    assert _TRIES not in out
    assert "not called by the file itself" in out
    with pytest.raises(UnsafeCheckpointError) as info:
        ckptguard.load(path)
    assert _TRIES not in str(info.value)
    assert "not called by the file itself" in str(info.value)


def test_a_reference_beside_an_unknown_call_is_not_called_a_mere_reference(
    tmp_path: Path,
) -> None:
    """An unknown callee may call what it is given: the file may run it."""
    data = (
        A.proto(2) + A.glob("mypkg.tasks", "run") + A.glob("os", "system") + A.ustr("x")
        + A.TUPLE2 + A.REDUCE + A.STOP
    )  # fmt: skip
    f = ckptguard.scan(_write(tmp_path, data)).files[0]
    assert f.verdict is FileVerdict.DANGEROUS
    assert referenced_only(f.globals, f.findings) == []
    assert _TRIES in (f.hint or "")


@pytest.mark.parametrize("name", sorted(H.CALLS_AS_REFERENCES))
def test_call_dressed_as_reference_runs_under_pickle_load(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "PWNED"
    path = _write(tmp_path, H.CALLS_AS_REFERENCES[name](marker))
    code = (
        "import pickle, sys\n"
        "try:\n    pickle.load(open(sys.argv[1], 'rb'))\nexcept Exception:\n    pass\n"
    )
    run_python("-c", code, str(path), cwd=tmp_path)
    assert marker.exists(), f"{name}: the payload did not run under pickle.load"


@pytest.mark.parametrize("name", sorted(H.CALLS_AS_REFERENCES))
def test_call_dressed_as_reference_is_reported_as_a_call(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "PWNED"
    path = _write(tmp_path, H.CALLS_AS_REFERENCES[name](marker))
    f = ckptguard.scan(path).files[0]
    assert f.verdict is FileVerdict.DANGEROUS
    called = any(g.qualified_name == "os.system" and Use.CALL in g.uses for g in f.globals) or any(
        x.severity is Severity.DANGEROUS for x in f.findings
    )
    assert called, (f.globals, f.findings)
    assert referenced_only(f.globals, f.findings) == []
    assert _TRIES in (f.hint or "")
    with pytest.raises(UnsafeCheckpointError) as info:
        ckptguard.load(path)
    assert "not called by the file" not in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "data",
    [
        # NEWOBJ on it (a call of its __new__)
        A.proto(2) + A.glob("os", "system") + A.EMPTY_TUPLE + A.NEWOBJ + A.STOP,
        # NEWOBJ_EX, after a trip through the memo
        A.proto(4)
        + A.glob("os", "system")
        + A.MEMOIZE
        + A.POP
        + A.binget(0)
        + A.EMPTY_TUPLE
        + A.EMPTY_DICT
        + A.NEWOBJ_EX
        + A.STOP,
        # state given to the global itself
        A.proto(2)
        + A.glob("os", "system")
        + A.EMPTY_DICT
        + A.ustr("a")
        + A.binint1(1)
        + A.SETITEM
        + A.BUILD
        + A.STOP,
        # an extension code (whatever the victim process registered)
        A.proto(2)
        + A.EMPTY_LIST
        + A.glob("os", "system")
        + A.APPEND
        + A.ext1(1)
        + A.APPEND
        + A.STOP,
        # a persistent id's result called (the id holds the global as a value)
        A.proto(2)
        + A.MARK
        + A.ustr("storage")
        + A.glob("os", "system")
        + A.TUPLE
        + A.BINPERSID
        + A.ustr("x")
        + A.TUPLE1
        + A.REDUCE
        + A.STOP,
        # copyreg._reconstructor calls base.__new__ / base.__init__
        A.proto(2)
        + A.glob("copyreg", "_reconstructor")
        + A.glob("builtins", "object")
        + A.glob("os", "system")
        + A.ustr("x")
        + A.TUPLE3
        + A.REDUCE
        + A.STOP,
    ],
    ids=["NEWOBJ", "NEWOBJ_EX-memo", "BUILD-on-global", "EXT1", "persistent-id", "callee"],
)
def test_other_ways_to_call_are_never_described_as_references(tmp_path: Path, data: bytes) -> None:
    f = ckptguard.scan(_write(tmp_path, data)).files[0]
    assert f.verdict in (FileVerdict.DANGEROUS, FileVerdict.ERROR)
    assert referenced_only(f.globals, f.findings) == []
    if f.verdict is FileVerdict.DANGEROUS:
        assert _TRIES in (f.hint or "")
