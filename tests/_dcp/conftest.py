from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.hostile_dcp import write_benign


@pytest.fixture(scope="session")
def benign_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dcp_template") / "ckpt"
    write_benign(root)
    return root


@pytest.fixture
def benign(benign_template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ckpt"
    shutil.copytree(benign_template, root)
    return root


def pytest_configure(config: pytest.Config) -> None:
    # t-devloop registers the marker project-wide; registering it again is harmless
    config.addinivalue_line("markers", "slow: a slow test (multi-process, large data)")
