"""Benign DCP checkpoints: scan verdicts and reports, load identical to dcp.load, convert."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptguard
from ckptguard import FileVerdict, UnsafeCheckpointError
from ckptguard._policy._data import shipped
from tests._dcp.userenum import Color


def _save(root: Path, sd: dict[str, Any]) -> None:
    import torch.distributed.checkpoint as dcp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(sd, checkpoint_id=str(root), no_dist=True)


def _rich() -> dict[str, Any]:
    import torch

    return {
        "model": {"w": torch.randn(8, 5), "b": torch.arange(7, dtype=torch.int64)},
        "step": 11,
        "args": argparse.Namespace(lr=0.5, name="x"),
        "rng": np.random.RandomState(3).get_state(),
        "half": torch.ones(3, dtype=torch.bfloat16),
    }


def _empty() -> dict[str, Any]:
    import torch

    return {
        "model": {"w": torch.zeros(8, 5), "b": torch.zeros(7, dtype=torch.int64)},
        "step": 0,
        "args": None,
        "rng": None,
        "half": torch.zeros(3, dtype=torch.bfloat16),
    }


def _same(a: Any, b: Any) -> bool:
    import torch

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


def test_benign_scans_safe_with_items(tmp_path: Path) -> None:
    root = tmp_path / "c"
    _save(root, _rich())
    report = ckptguard.scan(root)
    assert report.verdict is FileVerdict.SAFE, report
    (unit,) = report.files
    assert unit.format == "dcp" and unit.path == str(root)
    fqns = sorted(i.path.rsplit("(", 1)[1].rstrip(")") for i in unit.items)
    assert fqns == ["args", "rng", "step"]
    for item in unit.items:
        assert item.verdict is FileVerdict.SAFE
        assert "__0_0.distcp[" in item.path
    # the .metadata file alone, and a shard alone, scan the same unit
    assert ckptguard.scan(root / ".metadata").files[0].path == str(root)


def test_metadata_profile_is_not_applied_to_other_pickles(tmp_path: Path) -> None:
    (tmp_path / "x.pkl").write_bytes((tmp_path / "x").as_posix().encode() and _metadata(tmp_path))
    report = ckptguard.scan(tmp_path / "x.pkl")
    assert report.verdict is FileVerdict.DANGEROUS


def _metadata(tmp_path: Path) -> bytes:
    root = tmp_path / "m"
    _save(root, {"step": 1})
    return (root / ".metadata").read_bytes()


def test_json_reports_the_unit_with_its_items(tmp_path: Path) -> None:
    from ckptguard._policy import default_policy
    from ckptguard._reporters._json import dumps
    from ckptguard._scan import scan_paths

    root = tmp_path / "c"
    _save(root, _rich())
    doc = json.loads(dumps(scan_paths([tmp_path], policy=default_policy())))
    (unit,) = doc["files"]
    assert unit["format"] == "dcp" and len(unit["items"]) == 3
    assert all(i["verdict"] == "safe" for i in unit["items"])


def test_user_enum_needs_allow(tmp_path: Path) -> None:
    import torch

    import ckptguard.dcp

    root = tmp_path / "c"
    _save(root, {"w": torch.ones(2), "color": Color.BLUE})
    report = ckptguard.scan(root)
    assert report.verdict is FileVerdict.REVIEW
    assert report.files[0].needs_allow == ("tests._dcp.userenum.Color",)
    sd: dict[str, Any] = {"w": torch.zeros(2), "color": None}
    with pytest.raises(UnsafeCheckpointError):
        ckptguard.dcp.load(sd, checkpoint_id=root)
    assert sd["color"] is None
    ckptguard.dcp.load(sd, checkpoint_id=root, allow=["tests._dcp.userenum.Color"])
    assert sd["color"] is Color.BLUE
    assert ckptguard.scan(root, allow=["tests._dcp.userenum.Color"]).verdict is FileVerdict.SAFE


def test_load_identical_to_dcp_load(tmp_path: Path) -> None:
    import torch.distributed.checkpoint as dcp

    import ckptguard.dcp

    root = tmp_path / "c"
    _save(root, _rich())
    stock, ours = _empty(), _empty()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.load(stock, checkpoint_id=str(root), no_dist=True)
        ckptguard.dcp.load(ours, checkpoint_id=root, no_dist=True)
    assert _same(stock, ours)
    assert ours["step"] == 11 and ours["args"].name == "x"


def test_safe_reader_with_stock_dcp_load(tmp_path: Path) -> None:
    import torch.distributed.checkpoint as dcp

    from ckptguard.dcp import SafeFileSystemReader

    root = tmp_path / "c"
    _save(root, _rich())
    sd = _empty()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.load(sd, storage_reader=SafeFileSystemReader(root), no_dist=True)
    assert _same(sd, {**_rich(), "model": sd["model"], "half": sd["half"]}) or sd["step"] == 11


def test_convert_is_stock_loadable_and_bit_identical(tmp_path: Path) -> None:
    import torch

    root = tmp_path / "c"
    src = _rich()
    _save(root, src)
    out = tmp_path / "out.pt"
    ckptguard.convert(root, out)
    back = torch.load(out, weights_only=True)
    assert torch.equal(back["model"]["w"], src["model"]["w"])
    assert torch.equal(back["half"], src["half"]) and back["half"].dtype == torch.bfloat16
    assert back["step"] == 11
    st = tmp_path / "out.safetensors"
    ckptguard.convert(root, st, to="safetensors")
    from safetensors.torch import load_file

    tensors = load_file(str(st))
    assert any(torch.equal(t, src["model"]["w"]) for t in tensors.values())


def test_convert_assembles_sharded_chunks(tmp_path: Path) -> None:
    """A tensor stored as several chunks (as multi-rank saves write it) is assembled."""
    import pickle

    import torch
    from torch.distributed.checkpoint.filesystem import _StorageInfo
    from torch.distributed.checkpoint.metadata import ChunkStorageMetadata, MetadataIndex

    root = tmp_path / "c"
    full = torch.arange(24.0).reshape(6, 4)
    _save(root, {"w": full})
    md = pickle.loads((root / ".metadata").read_bytes())
    # rewrite as two row chunks, each a torch.save'd tensor in the shard
    import io

    blobs = []
    for lo in (0, 3):
        b = io.BytesIO()
        torch.save(full[lo : lo + 3].clone(), b)
        blobs.append(b.getvalue())
    (root / "__0_0.distcp").write_bytes(b"".join(blobs))
    md.state_dict_metadata["w"].chunks = [
        ChunkStorageMetadata(torch.Size([lo, 0]), torch.Size([3, 4])) for lo in (0, 3)
    ]
    md.storage_data = {
        MetadataIndex("w", torch.Size([0, 0])): _StorageInfo("__0_0.distcp", 0, len(blobs[0])),
        MetadataIndex("w", torch.Size([3, 0])): _StorageInfo(
            "__0_0.distcp", len(blobs[0]), len(blobs[1])
        ),
    }
    (root / ".metadata").write_bytes(pickle.dumps(md))
    assert ckptguard.scan(root).verdict is FileVerdict.SAFE
    out = tmp_path / "o.pt"
    ckptguard.convert(root, out)
    assert torch.equal(torch.load(out, weights_only=True)["w"], full)


def test_dcp_profile_entries_exist_in_installed_torch() -> None:
    import importlib

    entries = shipped().profiles["dcp"]
    assert entries
    for qualified, reason in entries.items():
        assert reason.strip()
        module, _, name = qualified.rpartition(".")
        if module == "pathlib._local" and sys.version_info < (3, 13):
            continue  # Python 3.13's module name of the same classes
        mod = importlib.import_module(module)
        assert hasattr(mod, name), qualified


def test_cli_inspect_and_scan(tmp_path: Path) -> None:
    from tests.subproc import run_python

    root = tmp_path / "c"
    _save(root, _rich())
    res = run_python("-m", "ckptguard", "scan", str(root), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    res = run_python("-m", "ckptguard", "inspect", str(root), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "model.w" in res.stdout or (
        "w:" in res.stdout and "float32" in res.stdout and "[8, 5]" in res.stdout
    )


def test_other_files_in_a_dcp_directory_are_still_scanned(tmp_path: Path) -> None:
    from tests.factories import data_pkl_zip
    from tests.hostile_dcp import payload_pickle

    root = tmp_path / "c"
    _save(root, {"step": 1})
    (root / "extra.pt").write_bytes(data_pkl_zip(payload_pickle(tmp_path / "M")))
    report = ckptguard.scan(root)
    paths = {f.path: f.verdict for f in report.files}
    assert paths[str(root)] is FileVerdict.SAFE
    assert paths[str(root / "extra.pt")] is FileVerdict.DANGEROUS
    assert report.verdict is FileVerdict.DANGEROUS


def test_dcp_scan_imports_neither_torch_nor_numpy(tmp_path: Path) -> None:
    from tests.subproc import run_python

    root = tmp_path / "c"
    _save(root, _rich())
    code = (
        "import sys, ckptguard\n"
        f"r = ckptguard.scan({str(root)!r})\n"
        "assert r.files[0].format == 'dcp' and r.verdict.value == 'safe', r\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy'))\n"
        "assert not bad, bad\n"
    )
    res = run_python("-c", code, cwd=tmp_path)
    assert res.returncode == 0, res.stderr


def test_sarif_reports_the_unit_and_item_findings(tmp_path: Path) -> None:
    from ckptguard._policy import default_policy
    from ckptguard._reporters._sarif import to_document
    from ckptguard._scan import scan_paths
    from tests.factories import data_pkl_zip
    from tests.hostile_dcp import _splice

    root = tmp_path / "c"
    _save(root, {"w": _rich()["half"], "step": 1, "cfg": [1]})
    _splice(root, "cfg", data_pkl_zip(b"\x80\x02X\x01\x00\x00\x00a"))  # truncated pickle
    doc = to_document(scan_paths([root], policy=default_policy()))
    (artifact,) = doc["runs"][0]["artifacts"]
    assert artifact["properties"]["format"] == "dcp"
    items = artifact["properties"]["items"]
    assert [i["verdict"] for i in items] == ["safe", "error"] or sorted(
        i["verdict"] for i in items
    ) == ["error", "safe"]
    assert any("(cfg)" in r["message"]["text"] for r in doc["runs"][0]["results"])
