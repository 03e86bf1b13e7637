"""Issue 11.3: whole-model pickles (``torch.save(model)``), legacy and zip.

Each ``nn.Module`` class of a legacy whole-model pickle travels in a ``('module', <class>,
<source file>, <source>)`` persistent id; torch.load's ``persistent_load`` returns the class
and only compares the source text. ckptguard reports the classes as the globals they are,
loads the file when they are allowed, and says that the source text is not executed."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

import ckptguard
from ckptguard import CorruptCheckpointError, UnsafeCheckpointError
from ckptguard._verdict import FileVerdict, Severity, Use, Verdict
from tests import hostile_compat as H
from tests import pickleasm as A
from tests._load import whole_model
from tests._load.hostile import legacy_with_pickle
from tests.subproc import REPO, run_python


def _saved(tmp_path: Path, legacy: bool) -> Path:
    path = tmp_path / ("legacy.pt" if legacy else "zip.pt")
    torch.save(whole_model.make(), path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_whole_model_classes_are_reported_as_globals(tmp_path: Path, legacy: bool) -> None:
    f = ckptguard.scan(_saved(tmp_path, legacy)).files[0]
    assert f.verdict is FileVerdict.REVIEW  # not "this file tries to run code"
    assert not [x for x in f.findings if x.severity is not Severity.INFO]
    unknown = {g.qualified_name: g for g in f.globals if g.verdict is Verdict.UNKNOWN}
    assert sorted(unknown) == sorted(whole_model.CLASSES)
    for g in unknown.values():
        assert set(g.uses) == {Use.CALL, Use.BUILD}, g
    notes = [x for x in f.findings if x.rule == "torch-module-source"]
    if legacy:
        (note,) = notes
        assert note.severity is Severity.INFO
        assert "never executed" in note.message
        assert "tests._load.whole_model.TinyNet" in note.message
    else:
        assert not notes  # the zip format pickles no source text
    allowed = ckptguard.scan(_saved(tmp_path, legacy), allow=whole_model.CLASSES).files[0]
    assert allowed.verdict is FileVerdict.SAFE


def _same_model(got: torch.nn.Module, want: torch.nn.Module) -> None:
    assert type(got) is type(want)
    a, b = got.state_dict(), want.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype
        assert torch.equal(a[k], b[k]), k
    assert [type(m) for m in got.modules()] == [type(m) for m in want.modules()]
    assert type(got.scale) is torch.nn.Parameter


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_whole_model_loads_when_its_classes_are_allowed(tmp_path: Path, legacy: bool) -> None:
    path = _saved(tmp_path, legacy)
    with pytest.raises(UnsafeCheckpointError) as info:
        ckptguard.load(path)
    assert "tries to run code" not in str(info.value)
    assert "allow=" in (info.value.hint or "")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # unchanged source: no SourceChangeWarning
        got = ckptguard.load(path, allow=whole_model.CLASSES)
    _same_model(got, torch.load(path, weights_only=False))
    x = torch.randn(4, 3)
    got.eval()
    assert torch.equal(got(x), whole_model.make().eval()(x))


def test_legacy_source_change_warns_like_torch_and_runs_nothing(tmp_path: Path) -> None:
    """The source text inside is never executed: a source that would touch a marker, and that
    differs from the installed class, gives torch's SourceChangeWarning and nothing else."""
    path = _saved(tmp_path, legacy=True)
    marker = tmp_path / "RAN"
    data = path.read_bytes()
    old = b"class TinyNet(torch.nn.Module):"
    assert data.count(old) == 1
    evil = f"import os; os.system('touch {marker}')#".encode()
    new = old + b"\n" + evil
    # the BINUNICODE length before the source must grow with it
    start = data.index(old)
    length = int.from_bytes(data[start - 4 : start], "little")
    patched = (
        data[: start - 4] + (length + len(new) - len(old)).to_bytes(4, "little")
        + new + data[start + len(old) :]
    )  # fmt: skip
    path.write_bytes(patched)
    assert ckptguard.scan(path, allow=whole_model.CLASSES).files[0].verdict is FileVerdict.SAFE
    serialization = __import__("torch.serialization").serialization
    with pytest.warns(serialization.SourceChangeWarning):
        got = ckptguard.load(path, allow=whole_model.CLASSES)
    assert isinstance(got, whole_model.TinyNet)
    with pytest.warns(serialization.SourceChangeWarning):
        torch.load(path, weights_only=False)
    assert not marker.exists()


def test_legacy_and_zip_whole_models_convert_alike(tmp_path: Path) -> None:
    outs = []
    for legacy in (True, False):
        src = _saved(tmp_path, legacy)
        out = tmp_path / f"out-{src.stem}.pt"
        ckptguard.convert(src, out)
        outs.append(torch.load(out, weights_only=True))
    a, b = outs
    fc_a, fc_b = a["_modules"]["fc"]["_parameters"], b["_modules"]["fc"]["_parameters"]
    assert torch.equal(fc_a["weight"], fc_b["weight"])
    assert a["__ckptguard__"]["types"] == b["__ckptguard__"]["types"]


# ---------------------------------------------------------------------------- hostile ids


@pytest.mark.parametrize("name", sorted(H.SAMPLES))
def test_hostile_module_id_runs_under_stock_torch_load(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "PWNED"
    path = H.write(name, tmp_path / "evil.pt", marker)
    code = (
        "import sys, torch\n"
        "try:\n    torch.load(sys.argv[1], weights_only=False)\nexcept Exception:\n    pass\n"
    )
    run_python("-c", code, str(path), cwd=tmp_path)
    assert marker.exists(), f"{name}: the payload did not run under stock torch.load"


@pytest.mark.parametrize("name", sorted(H.SAMPLES) + sorted(H.NOT_LIVE))
def test_hostile_module_id_is_refused_and_runs_nothing(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "PWNED"
    path = H.write(name, tmp_path / "evil.pt", marker)
    f = ckptguard.scan(path).files[0]
    assert f.verdict is FileVerdict.DANGEROUS, f
    assert any(g.qualified_name == "os.system" for g in f.globals)
    code = (
        "import ckptguard, sys\n"
        "for fn in (lambda: ckptguard.load(sys.argv[1]), "
        "lambda: ckptguard.convert(sys.argv[1], sys.argv[1] + '.out')):\n"
        "    try:\n        fn()\n    except ckptguard.CheckpointError:\n        pass\n"
        "    else:\n        raise SystemExit('not refused')\n"
    )
    proc = run_python("-c", code, str(path), cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    assert not Path(str(path) + ".out").exists()


def test_a_called_module_id_class_is_a_call_of_that_global(tmp_path: Path) -> None:
    """A call through the id is judged as a call of the global (os.system: dangerous, called)."""
    path = H.write("module_id_os_system", tmp_path / "evil.pt", tmp_path / "m")
    (g,) = [g for g in ckptguard.scan(path).files[0].globals if g.qualified_name == "os.system"]
    assert g.verdict is Verdict.DANGEROUS
    assert Use.CALL in g.uses


@pytest.mark.parametrize(
    "pid",
    [
        A.MARK + A.ustr("module") + A.ustr("not a class") + A.ustr("f") + A.ustr("s") + A.TUPLE,
        A.MARK
        + A.ustr("module")
        + A.glob("collections", "OrderedDict")
        + A.binint1(3)
        + A.NONE
        + A.TUPLE,
        A.MARK
        + A.ustr("module")
        + A.glob("collections", "OrderedDict")
        + A.ustr("f")
        + A.ustr("s")
        + A.ustr("x")
        + A.TUPLE,
        A.ustr("module") + A.TUPLE1,
    ],
    ids=["no-class", "source-not-text", "five-items", "one-item"],
)
def test_malformed_module_ids_are_refused(tmp_path: Path, pid: bytes) -> None:
    path = legacy_with_pickle(tmp_path / "bad.pt", A.proto(2) + pid + A.BINPERSID + A.STOP)
    f = ckptguard.scan(path, allow=["collections.OrderedDict"]).files[0]
    assert f.verdict is FileVerdict.ERROR, f
    assert any(x.rule == "torch-bad-persistent-id" for x in f.findings)
    with pytest.raises(CorruptCheckpointError):
        ckptguard.load(path)


def test_state_given_to_the_returned_class_itself_is_a_global_mutation(tmp_path: Path) -> None:
    """BUILD on what the id returns changes the class: never safe."""
    pid = A.MARK + A.ustr("module") + A.glob("collections", "OrderedDict") + A.NONE + A.NONE
    body = pid + A.TUPLE + A.BINPERSID + A.EMPTY_DICT + A.ustr("x") + A.binint1(1)
    path = legacy_with_pickle(tmp_path / "bad.pt", A.proto(2) + body + A.SETITEM + A.BUILD + A.STOP)
    f = ckptguard.scan(path).files[0]
    assert f.verdict is FileVerdict.DANGEROUS
    assert any(x.rule == "pickle-global-mutation" for x in f.findings)
