"""The report types are defined once (ckptguard._results) and are, to their users, frozen
dataclasses: fields, asdict/astuple/replace, equality, hashing, immutability, pickling, copying."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import typing
from pathlib import Path

import pytest

import ckptguard
from ckptguard import _results
from ckptguard._verdict import FileVerdict, Severity, Use, Verdict
from tests import factories as F

PUBLIC = [
    ckptguard.Finding,
    ckptguard.GlobalRef,
    ckptguard.FileReport,
    ckptguard.Skipped,
    ckptguard.ScanReport,
]


def _samples() -> list[object]:
    finding = ckptguard.Finding("zip-case-variant", Severity.ERROR, "m", "a@1")
    ref = ckptguard.GlobalRef("os", "system", Verdict.DANGEROUS, "r", 2, (Use.CALL,), ("p",))
    report = ckptguard.FileReport("a.pt", "pickle", FileVerdict.DANGEROUS, (ref,), (finding,))
    skipped = ckptguard.Skipped("b.onnx", "an ONNX model", "onnx")
    return [finding, ref, report, skipped, ckptguard.ScanReport((report,), (skipped,), ("s",))]


def test_one_class_per_report_type_and_the_old_record_names_are_the_same_classes() -> None:
    assert _results.FindingRecord is ckptguard.Finding
    assert _results.GlobalRecord is ckptguard.GlobalRef
    assert _results.FileRecord is ckptguard.FileReport
    assert _results.SkippedRecord is ckptguard.Skipped
    assert _results.ScanRecord is ckptguard.ScanReport


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda c: c.__name__)
def test_report_types_are_frozen_dataclasses_with_their_fields_in_order(cls: type) -> None:
    assert dataclasses.is_dataclass(cls)
    assert tuple(f.name for f in dataclasses.fields(cls)) == cls.__slots__
    # the annotations resolve (typing.get_type_hints, pydantic, cattrs read them)
    hints = typing.get_type_hints(cls)
    assert [n for n in hints if not n.startswith("__")] == list(cls.__slots__)
    assert cls.__match_args__ == cls.__slots__


def test_defaults_are_the_dataclass_defaults() -> None:
    fields = {f.name: f for f in dataclasses.fields(ckptguard.FileReport)}
    assert fields["path"].default is dataclasses.MISSING
    assert fields["globals"].default == ()
    assert fields["hint"].default is None


@pytest.mark.parametrize("obj", _samples(), ids=lambda o: type(o).__name__)
def test_report_objects_behave_as_frozen_dataclasses(obj: object) -> None:
    assert dataclasses.is_dataclass(obj)
    name = dataclasses.fields(obj)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, name, "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        delattr(obj, name)
    values = dataclasses.astuple(obj)  # type: ignore[call-overload]
    assert len(values) == len(type(obj).__slots__)  # type: ignore[attr-defined]
    same = dataclasses.replace(obj)  # type: ignore[type-var]
    assert same == obj and hash(same) == hash(obj) and same is not obj
    changed = dataclasses.replace(obj, **{name: "other"})  # type: ignore[type-var]
    assert changed != obj
    for clone in (pickle.loads(pickle.dumps(obj)), copy.copy(obj), copy.deepcopy(obj)):
        assert type(clone) is type(obj) and clone == obj and hash(clone) == hash(obj)
    assert repr(obj).startswith(f"{type(obj).__name__}(")


def test_asdict_nests_all_the_way_down_and_match_works() -> None:
    report = _samples()[-1]
    assert isinstance(report, ckptguard.ScanReport)
    doc = dataclasses.asdict(report)
    assert doc["files"][0]["globals"][0]["module"] == "os"
    assert doc["files"][0]["findings"][0]["rule"] == "zip-case-variant"
    match report.files[0]:
        case ckptguard.FileReport(path, fmt, verdict):
            assert (path, fmt, verdict) == ("a.pt", "pickle", FileVerdict.DANGEROUS)
        case _:
            pytest.fail("no match")


def test_scan_returns_the_report_types(tmp_path: Path) -> None:
    F.training_checkpoint(tmp_path / "train.pt")
    F.user_enum_checkpoint(tmp_path / "enum.pt")
    report = ckptguard.scan(tmp_path)
    assert type(report) is ckptguard.ScanReport
    assert report.exit_code == 1
    enum = next(f for f in report.files if f.path.endswith("enum.pt"))
    assert type(enum) is ckptguard.FileReport and type(enum.globals[0]) is ckptguard.GlobalRef
    assert enum.needs_allow == (enum.globals[0].qualified_name,)
    doc = dataclasses.asdict(report)
    assert doc["files"][report.files.index(enum)]["globals"][0]["verdict"] == "unknown"
