"""A server may announce any object size in its Content-Range: one no sparse copy can hold is an
error record for that object, not an exception that ends the whole scan."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import pytest

import ckptguard
from ckptguard._verdict import FileVerdict
from tests._remote.servers import Behaviour, RangeServer, range_server


@pytest.fixture
def server() -> Iterator[RangeServer]:
    with range_server() as srv:
        yield srv


def test_an_object_claiming_an_impossible_size_is_an_error_record(server: RangeServer) -> None:
    data = pickle.dumps({"a": "x" * 4096}, 2)  # longer than the first range asked for
    server.objects["huge.pkl"] = data
    server.behaviour["huge.pkl"] = Behaviour("huge-total")
    server.objects["fine.pkl"] = data
    report = ckptguard.scan([server.url("huge.pkl"), server.url("fine.pkl")])
    huge, fine = report.files
    assert huge.verdict is FileVerdict.ERROR
    assert [f.rule for f in huge.findings] == ["remote-size-mismatch"]
    assert str(1 << 62) in huge.findings[0].message
    assert fine.verdict is FileVerdict.SAFE  # the other object is still scanned
