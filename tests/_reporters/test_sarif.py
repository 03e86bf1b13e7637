"""SARIF 2.1.0 structure, checked by hand (the schema is not available offline)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ckptguard._reporters import _sarif
from ckptguard._results import FileReport, ScanReport
from ckptguard._verdict import FileVerdict
from tests._reporters import samples as S

LEVELS = {"none", "note", "warning", "error"}


def check_sarif(doc: dict[str, Any]) -> dict[str, Any]:
    """Assert the parts of SARIF 2.1.0 ckptguard relies on; return runs[0]."""
    assert doc["version"] == "2.1.0"
    assert "sarif" in doc["$schema"] and "2.1.0" in doc["$schema"]
    assert isinstance(doc["runs"], list) and len(doc["runs"]) == 1
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "ckptguard"
    assert isinstance(driver["version"], str)
    assert driver["informationUri"].startswith("https://")
    rule_ids = [r["id"] for r in driver["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    for r in driver["rules"]:
        assert r["shortDescription"]["text"]
        assert r["defaultConfiguration"]["level"] in LEVELS
    assert {"global-unknown", "global-dangerous", "scan-error"} <= set(rule_ids)
    for res in run["results"]:
        assert res["ruleId"] in rule_ids
        assert rule_ids[res["ruleIndex"]] == res["ruleId"]
        assert res["level"] in LEVELS
        assert isinstance(res["message"]["text"], str) and res["message"]["text"]
        assert res["locations"]
        for loc in res["locations"]:
            art = loc["physicalLocation"]["artifactLocation"]
            assert isinstance(art["uri"], str) and art["uri"]
            if "uriBaseId" in art:
                assert art["uriBaseId"] in run["originalUriBaseIds"]
                assert not art["uri"].startswith("/")
            else:
                assert art["uri"].startswith("file://")
    for base in run.get("originalUriBaseIds", {}).values():
        assert base["uri"].startswith("file://") and base["uri"].endswith("/")
    return run


def test_sarif_structure_and_results(tmp_path: Path) -> None:
    doc = json.loads(_sarif.dumps(S.REPORT, base_dir=str(tmp_path)))
    run = check_sarif(doc)
    results = {
        (r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]): r
        for r in run["results"]
    }
    assert ("global-unknown", "ckpts/with%20enum.ckpt") in results
    assert ("global-dangerous", "ckpts/evil.pt") in results
    assert ("global-unknown", "ckpts/evil.pt") in results
    assert ("pickle-reduce-dangerous", "ckpts/evil.pt") in results
    assert ("scan-error", "ckpts/lfs.ckpt") in results
    assert ("zip-info", "ckpts/model.pt") in results  # info finding as a note
    assert results[("global-dangerous", "ckpts/evil.pt")]["level"] == "error"
    assert results[("global-unknown", "ckpts/with%20enum.ckpt")]["level"] == "warning"
    assert results[("scan-error", "ckpts/lfs.ckpt")]["level"] == "error"
    assert results[("zip-info", "ckpts/model.pt")]["level"] == "note"
    unknown = results[("global-unknown", "ckpts/with%20enum.ckpt")]["message"]["text"]
    assert "--allow deepafx_st.utils.DSPMode" in unknown
    assert "git lfs pull" in results[("scan-error", "ckpts/lfs.ckpt")]["message"]["text"]
    assert "--allow" not in results[("global-dangerous", "ckpts/evil.pt")]["message"]["text"]
    # no result for safe globals
    assert not any("_rebuild_tensor_v2" in r["message"]["text"] for r in run["results"])
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.resolve().as_uri() + "/"


def test_paths_outside_base_dir_are_absolute_file_uris(tmp_path: Path) -> None:
    f = FileReport(path="/elsewhere/x.pt", format="pickle", verdict=FileVerdict.ERROR)
    doc = _sarif.to_document(ScanReport(files=(f,)), base_dir=str(tmp_path / "repo"))
    check_sarif(doc)
    art = doc["runs"][0]["artifacts"][0]["location"]
    assert art == {"uri": "file:///elsewhere/x.pt"}


def test_absolute_path_inside_base_dir_is_relative(tmp_path: Path) -> None:
    f = FileReport(path=str(tmp_path / "sub" / "m.pt"), format="pickle", verdict=FileVerdict.SAFE)
    doc = _sarif.to_document(ScanReport(files=(f,)), base_dir=str(tmp_path))
    art = doc["runs"][0]["artifacts"][0]["location"]
    assert art == {"uri": "sub/m.pt", "uriBaseId": "%SRCROOT%"}


def test_empty_report_is_valid() -> None:
    run = check_sarif(_sarif.to_document(ScanReport(files=())))
    assert run["results"] == []
    # a scan that read nothing is not a success
    assert run["invocations"][0]["executionSuccessful"] is False
    assert run["properties"]["verdict"] == "error"
