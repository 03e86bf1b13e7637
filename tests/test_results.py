"""The scanner's records (_results) and the public report dataclasses (_model) stay in step."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import ckptguard
from ckptguard import _model, _results
from tests import factories as F

PAIRS = [
    (_results.FindingRecord, _model.Finding),
    (_results.GlobalRecord, _model.GlobalRef),
    (_results.FileRecord, _model.FileReport),
    (_results.SkippedRecord, _model.Skipped),
    (_results.ScanRecord, _model.ScanReport),
]


@pytest.mark.parametrize(("record", "public"), PAIRS)
def test_records_have_the_public_fields_in_order(record: type, public: type) -> None:
    assert record.__slots__ == tuple(f.name for f in dataclasses.fields(public))


def test_scan_returns_frozen_dataclasses_equal_to_the_records(tmp_path: Path) -> None:
    from ckptguard._policy import default_policy
    from ckptguard._scan import scan_paths

    F.training_checkpoint(tmp_path / "train.pt")
    F.user_enum_checkpoint(tmp_path / "enum.pt")
    report = ckptguard.scan(tmp_path)
    assert isinstance(report, ckptguard.ScanReport)
    enum = next(f for f in report.files if f.path.endswith("enum.pt"))
    for obj in (report, enum, enum.globals[0]):
        assert dataclasses.is_dataclass(obj)
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.path = "x"  # type: ignore[union-attr]
    doc = dataclasses.asdict(report)  # nested all the way down
    assert doc["files"][report.files.index(enum)]["globals"][0]["verdict"] == "unknown"
    records = scan_paths([tmp_path], policy=default_policy())
    assert report.verdict is records.verdict
    assert report.exit_code == records.exit_code == 1
    for pub, rec in zip(report.files, records.files, strict=True):
        assert pub.needs_allow == rec.needs_allow
        assert [dataclasses.astuple(g) for g in pub.globals] == [g._fields() for g in rec.globals]
        assert [dataclasses.astuple(f) for f in pub.findings] == [f._fields() for f in rec.findings]
        assert dataclasses.astuple(pub)[:3] == rec._fields()[:3]
