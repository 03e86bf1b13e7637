from __future__ import annotations

from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: heavy tests (Dask clusters, big files)")


@pytest.fixture(scope="session")
def remote_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """The corpus of tests/_remote/corpus.py, built once: (its directory, {name: bytes});
    each object is also written under DIR/local/NAME."""
    from tests._remote.corpus import build

    tmp = tmp_path_factory.mktemp("remote-corpus")
    return tmp, build(tmp)
