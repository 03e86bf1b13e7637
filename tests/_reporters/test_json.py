from __future__ import annotations

import json

from ckptguard import __version__
from ckptguard._reporters import _json
from tests._reporters import samples as S


def test_document_has_the_contract_fields() -> None:
    doc = json.loads(_json.dumps(S.REPORT))
    assert isinstance(doc["files"], list) and len(doc["files"]) == 4
    for f in doc["files"]:
        assert {"path", "format", "verdict", "globals", "findings"} <= f.keys()
        for g in f["globals"]:
            assert {"name", "verdict", "reason", "count"} <= g.keys()
        for x in f["findings"]:
            assert {"rule", "severity", "message"} <= x.keys()


def test_values() -> None:
    doc = json.loads(_json.dumps(S.REPORT))
    by_path = {f["path"]: f for f in doc["files"]}
    review = by_path[S.REVIEW_FILE.path]
    assert review["format"] == "pytorch-zip"
    assert review["verdict"] == "review"
    assert review["needs_allow"] == ["deepafx_st.utils.DSPMode"]
    g = review["globals"][0]
    assert g == {
        "name": "deepafx_st.utils.DSPMode",
        "verdict": "unknown",
        "reason": "not in any vetted profile",
        "count": 2,
        "module": "deepafx_st.utils",
        "attribute": "DSPMode",
        "uses": ["call"],
        "locations": ["archive/data.pkl"],
    }
    err = by_path[S.ERROR_FILE.path]
    assert err["findings"][0]["rule"] == "scan-error"
    assert err["findings"][0]["severity"] == "error"
    assert err["hint"].startswith("run: git lfs pull")
    assert doc["tool"] == "ckptguard"
    assert doc["version"] == __version__
    assert doc["skipped"] == [
        {"path": "ckpts/README.md", "reason": "not a checkpoint (text)", "model_format": None}
    ]
    assert doc["summary"] == {
        "files": 4,
        "safe": 1,
        "review": 1,
        "dangerous": 1,
        "error": 1,
        "skipped": 1,
        "unread_models": 0,
    }
    assert doc["verdict"] == "error"
    assert doc["exit_code"] == 2
