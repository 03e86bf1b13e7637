"""ckptguard's zip reader against torch's own (``torch._C.PyTorchFileReader``) on generated and
mutated archives (hypothesis): letter-case variants of member names, long names, duplicates,
member order, deflate, data descriptors, and byte flips anywhere.

Whenever ckptguard calls an archive safe, torch's reader must open it, list exactly the records
ckptguard read, not see a TorchScript archive, and return byte-identical data.pkl bytes (the
bytes ckptguard analysed) for every letter-case spelling of "data.pkl" torch may be asked for.
"""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ckptguard._assess import report_for
from ckptguard._errors import CheckpointError
from ckptguard._formats import read_buffer
from ckptguard._formats._common import stream_digest
from ckptguard._policy import default_policy
from ckptguard._verdict import FileVerdict
from tests.pickleasm import EMPTY_DICT, program
from tests.zipcraft import DEFLATED, FLAG_DESCRIPTOR, STORED, Entry, Layout, build_zip

torch = pytest.importorskip("torch")

BENIGN = program(EMPTY_DICT)
OTHER = program(EMPTY_DICT, protocol=2)[:-1] + b"0" + program(EMPTY_DICT, protocol=2)[2:]
_CASES = ("data.pkl", "DATA.PKL", "Data.pkl", "data.PKL", "dAtA.pKl")
_POLICY = default_policy()


def _spellings(name: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda ups: "".join(c.upper() if u else c for c, u in zip(name, ups, strict=True))
    )


_REL = st.one_of(
    _spellings("data.pkl"),
    _spellings("constants.pkl"),
    _spellings("version"),
    _spellings("byteorder"),
    st.just("data/0"),
    st.just("DATA/0"),
    st.just("code/x.py"),
    st.integers(1, 600).map(lambda n: "x" * n),
    st.integers(1, 600).map(lambda n: "x" * n + "constants.pkl"),
    st.integers(490, 520).map(lambda n: "d" * n + "data.pkl"),
)


@st.composite
def archives(draw: st.DrawFn) -> bytes:
    prefix = draw(st.one_of(st.just("archive"), st.integers(1, 505).map(lambda n: "A" * n)))
    core = [
        Entry(f"{prefix}/data.pkl", BENIGN),
        Entry(f"{prefix}/byteorder", b"little"),
        Entry(f"{prefix}/version", b"3\n"),
    ]
    extra = draw(
        st.lists(st.tuples(_REL, st.sampled_from([BENIGN, OTHER, b"3\n", b""])), max_size=3)
    )
    entries = core + [Entry(f"{prefix}/{rel}", data) for rel, data in extra]
    order = draw(st.permutations(range(len(entries))))
    entries = [entries[i] for i in order]
    if draw(st.booleans()):  # the first entry names the archive directory for torch
        entries.insert(0, entries.pop(next(i for i, e in enumerate(entries) if "/" in e.name)))
    styled = []
    for e in entries:
        method = draw(st.sampled_from([STORED, STORED, DEFLATED]))
        flags = draw(st.sampled_from([0, 0, FLAG_DESCRIPTOR]))
        zip64 = draw(st.sampled_from([False, False, True]))
        styled.append(replace(e, method=method, flags=flags, zip64=zip64))
    data = bytearray(build_zip(Layout(styled, zip64_end=draw(st.booleans()))))
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] ^= draw(st.integers(1, 255))
    return bytes(data)


def _safe(data: bytes) -> tuple[str, bytes] | None:
    """(archive directory, digest of the data.pkl ckptguard analysed) when ckptguard says safe."""
    try:
        extracted = read_buffer(data)
    except CheckpointError:
        return None
    if report_for("x.pt", extracted, _POLICY, len(data)).verdict is not FileVerdict.SAFE:
        return None
    prefix = extracted.details["archive"]
    stream = next(s for s in extracted.pickles if s.name == f"{prefix}/data.pkl")
    return prefix, stream.digest


def _members(data: bytes, prefix: str) -> set[str]:
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n[len(prefix) + 1 :] for n in z.namelist()}


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(archives())
@example(
    build_zip(
        Layout([Entry("archive/DATA.PKL", OTHER), *[Entry(f"archive/{n}", d) for n, d in
                (("data.pkl", BENIGN), ("byteorder", b"little"), ("version", b"3\n"))]])
    )
)  # fmt: skip
@example(
    build_zip(
        Layout([Entry("A" * 497 + "/" + n, d) for n, d in
                (("data.pkl", BENIGN), ("version", b"3\n"), ("constants.pkl" + "X" * 9, BENIGN))])
    )
)  # fmt: skip
@example(build_zip(Layout([Entry("archive/data.pkl", BENIGN, external_attr=0x10),
                          Entry("archive/version", b"3\n")])))  # fmt: skip
def test_a_safe_archive_reads_the_same_in_torch(data: bytes) -> None:
    safe = _safe(data)
    if safe is None:
        return
    prefix, digest = safe
    reader = torch._C.PyTorchFileReader(io.BytesIO(data))  # must open what ckptguard calls safe
    records = reader.get_all_records()
    assert "constants.pkl" not in records, "torch.load would dispatch to torch.jit.load"
    assert sorted(records) == sorted(_members(data, prefix))
    for spelling in _CASES:
        assert reader.has_record(spelling)
        assert stream_digest(bytes(reader.get_record(spelling))) == digest, spelling


def test_the_differential_sees_the_attacks() -> None:
    """Not vacuous: on the attack archives torch's reader does differ from a case-sensitive,
    uncut reading (so a ckptguard that called them safe would fail the test above)."""
    upper_first = build_zip(
        Layout([Entry("archive/DATA.PKL", OTHER), Entry("archive/data.pkl", BENIGN),
                Entry("archive/version", b"3\n")])
    )  # fmt: skip
    reader = torch._C.PyTorchFileReader(io.BytesIO(upper_first))
    assert bytes(reader.get_record("data.pkl")) == OTHER
    cut = build_zip(
        Layout([Entry("A" * 497 + "/" + n, d) for n, d in
                (("data.pkl", BENIGN), ("version", b"3\n"), ("constants.pkl" + "X" * 9, BENIGN))])
    )  # fmt: skip
    assert "constants.pkl" in torch._C.PyTorchFileReader(io.BytesIO(cut)).get_all_records()
    assert _safe(upper_first) is None and _safe(cut) is None
