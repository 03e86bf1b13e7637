"""SourceBuffer: the format readers over a range-read source give the local verdict, reading
only what the walk needs; a pickle walk over a partly fetched object is exact (a payload far
past the first fetched prefix, or behind a long argument, is found); short reads fail closed."""

from __future__ import annotations

import io
import pickle

import pytest
import torch

from ckptguard import FileVerdict
from ckptguard._assess import report_for
from ckptguard._formats import read_buffer
from ckptguard._formats._source import SourceBuffer
from ckptguard._policy import resolve_policy
from ckptguard._remote._scan import _scan_buffer
from ckptguard._results import FileRecord
from tests.pickleasm import POP


class MemorySource:
    def __init__(self, data: bytes, short: bool = False) -> None:
        self.data, self.short, self.size = data, short, len(data)
        self.reads: list[tuple[int, int]] = []

    def read(self, offset: int, length: int) -> bytes:
        self.reads.append((offset, length))
        out = self.data[offset : offset + length]
        return out[:-1] if self.short and length > 1 else out

    def read_many(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        return [self.read(o, n) for o, n in ranges]


def _remote(data: bytes, short: bool = False) -> tuple[FileRecord, MemorySource]:
    src = MemorySource(data, short)
    with SourceBuffer(src) as buf:
        rec = _scan_buffer("mem://x", buf, resolve_policy(), listed=False)
    assert isinstance(rec, FileRecord)
    return rec, src


def _local(data: bytes) -> FileRecord:
    return report_for("mem://x", read_buffer(data), resolve_policy(), len(data))


def _payload() -> bytes:
    return b"cos\nsystem\n(S'touch /nonexistent/marker'\ntR."


def test_payload_far_past_the_first_prefix_is_found() -> None:
    data = pickle.dumps(list(range(60_000)), protocol=2)[:-1] + POP + _payload()
    rec, _ = _remote(data)
    assert rec.verdict is FileVerdict.DANGEROUS
    assert rec.globals == _local(data).globals


def test_payload_behind_a_long_argument_spanning_the_prefix_is_found() -> None:
    blob = b"\x80\x04" + b"\x8e" + (200_000).to_bytes(8, "little") + b"z" * 200_000 + b"0"
    data = blob + _payload()
    rec, _ = _remote(data)
    loc = _local(data)
    assert rec.verdict is loc.verdict is FileVerdict.DANGEROUS
    assert rec.globals == loc.globals and rec.findings == loc.findings


def test_legacy_pickles_longer_than_the_first_prefix_read_no_storage_data() -> None:
    buf = io.BytesIO()
    sd = {f"layer{i}.a_rather_long_parameter_name_{i}": torch.zeros(20_000) for i in range(1500)}
    torch.save(sd, buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    rec, _ = _remote(data)
    loc = _local(data)
    assert rec.verdict is loc.verdict is FileVerdict.SAFE
    assert rec.findings == loc.findings and rec.globals == loc.globals
    assert rec.bytes_read is not None and rec.bytes_read < len(data) // 20


def test_short_reads_fail_closed() -> None:
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(10)}, buf)
    rec, _ = _remote(buf.getvalue(), short=True)
    assert rec.verdict is FileVerdict.ERROR
    assert rec.findings[0].rule == "remote-truncated"


@pytest.mark.parametrize("start", [0, 5, 4095, 4096, 70_000])
def test_fetch_reads_each_byte_once(start: int) -> None:
    data = bytes(range(256)) * 1000
    src = MemorySource(data)
    with SourceBuffer(src) as buf:
        assert buf[start : start + 100] == data[start : start + 100]
        assert buf[start + 50 : start + 300] == data[start + 50 : start + 300]
        assert buf[-22:-18] == data[-22:-18]
        assert buf.rfind(b"\x00\x01", start) == data.rfind(b"\x00\x01", start)
        assert buf.find(b"\xfe\xff", start) == data.find(b"\xfe\xff", start)
        total = sum(n for _, n in src.reads)
        assert buf.bytes_read == total
        covered: set[int] = set()
        for o, n in src.reads:
            span = set(range(o, o + n))
            assert not covered & span
            covered |= span
