"""ckptguard.load keeps a safetensors file's tensor order: the order
safetensors.torch.load_file returns (by data offset), not a hash order (issue 11 item 6)."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
st = pytest.importorskip("safetensors.torch")

import ckptguard  # noqa: E402
from ckptguard._formats._safetensors import parse_header  # noqa: E402


def _handmade(entries: list[tuple[str, int]], *, shuffle_header: random.Random) -> bytes:
    """A safetensors file whose header lists the entries in a shuffled order, each entry
    (name, element count) placed in the data section in the order given."""
    header: dict[str, object] = {}
    pos = 0
    spans = []
    for name, count in entries:
        spans.append((name, count, pos))
        pos += 4 * count
    shuffle_header.shuffle(spans)
    for name, count, off in spans:
        header[name] = {"dtype": "F32", "shape": [count], "data_offsets": [off, off + 4 * count]}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    data = b"".join(struct.pack("<f", float(i)) for i in range(pos // 4))
    return struct.pack("<Q", len(raw)) + raw + data


def test_load_keeps_file_order_like_load_file_over_many_calls(tmp_path: Path) -> None:
    rng = random.Random(11)
    names = [f"layer{rng.randrange(10**6)}.w{i}" for i in range(200)]
    path = tmp_path / "m.safetensors"
    st.save_file({n: torch.full((2,), float(i)) for i, n in enumerate(names)}, str(path))
    expected = list(st.load_file(str(path)))
    assert sorted(expected) == sorted(names)
    orders = {tuple(ckptguard.load(path)) for _ in range(20)}
    assert orders == {tuple(expected)}


def test_load_orders_by_data_offset_not_header_order(tmp_path: Path) -> None:
    rng = random.Random(6)
    entries = [(f"t{rng.randrange(10**9)}", rng.randrange(1, 5)) for _ in range(60)]
    path = tmp_path / "h.safetensors"
    path.write_bytes(_handmade(entries, shuffle_header=rng))
    expected = list(st.load_file(str(path)))
    assert expected == [n for n, _c in entries]  # what load_file does: by data offset
    for _ in range(20):
        got = ckptguard.load(path)
        assert list(got) == expected
        ref = st.load_file(str(path))
        for k in expected:
            assert torch.equal(got[k], ref[k])


def test_parse_header_lists_entries_in_data_order() -> None:
    rng = random.Random(3)
    entries = [(f"n{i}", 1 + i % 3) for i in range(30)]
    raw = _handmade(entries, shuffle_header=rng)
    got, meta = parse_header(raw)
    assert [e.name for e in got] == [n for n, _c in entries]
    assert meta is None
