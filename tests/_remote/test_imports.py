"""The core scan keeps no new dependency: importing ckptguard, scanning local files and the CLI
never import fsspec, s3fs, aiohttp, distributed or the remote package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests import factories as F

_CODE = """
import sys, ckptguard
from ckptguard._cli import main
rep = ckptguard.scan(sys.argv[1])
assert rep.files[0].verdict.value == "safe", rep
assert rep.files[0].bytes_read is None
try:
    main(["scan", "--json", sys.argv[1]])
except SystemExit:
    pass
heavy = [m for m in ("fsspec", "s3fs", "aiohttp", "distributed", "dask", "ckptguard._remote",
                     "ckptguard._formats._source", "tempfile") if m in sys.modules]
print("HEAVY", heavy)
"""


def test_local_scan_imports_nothing_remote(tmp_path: Path) -> None:
    path = F.state_dict(tmp_path / "sd.pt")
    out = subprocess.run(
        [sys.executable, "-c", _CODE, str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().endswith("HEAVY []"), out
