"""Archive tricks: where zipfile and PyTorch's reader could see different content, the file is an
error, never safe; well-formed variants (zip64, deflate, descriptors, any member order) are read
exactly like torch.load reads them."""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

import pytest

import ckptguard
from ckptguard import FileVerdict
from tests.hostile import CASES
from tests.pickleasm import EMPTY_DICT, program
from tests.zipcraft import DEFLATED, FLAG_DESCRIPTOR, FLAG_ENCRYPTED, Entry, Layout, build_zip
from tests.zipcraft import torch_entries as T

BENIGN = program(EMPTY_DICT)


def _hostile(marker: Path) -> bytes:
    return next(c for c in CASES if c.name == "os.system p2").build(str(marker))


def _scan(tmp_path: Path, data: bytes) -> ckptguard.FileReport:
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    return ckptguard.scan(path).files[0]


def _torch_load(tmp_path: Path, data: bytes) -> object:
    torch = pytest.importorskip("torch")
    path = tmp_path / "torch.pt"
    path.write_bytes(data)
    return torch.load(path, weights_only=True)


# ------------------------------------------------------------- well-formed variants torch reads

WELL_FORMED = {
    "plain": lambda p: Layout(T(p)),
    "deflated data.pkl": lambda p: Layout(T(p, method=DEFLATED)),
    "data descriptor (flag bit 3)": lambda p: Layout(T(p, flags=FLAG_DESCRIPTOR)),
    "zip64 member and end records": lambda p: Layout(T(p, zip64=True), zip64_end=True),
    "data.pkl not the first member": lambda p: Layout(
        [Entry("archive/version", b"3\n"), *reversed(T(p)[:2])]
    ),
    "any archive prefix": lambda p: Layout(T(p, prefix="resnet50_weights")),
    "archive comment": lambda p: Layout(T(p), comment=b"made by a tool"),
}


@pytest.mark.parametrize("variant", sorted(WELL_FORMED))
def test_well_formed_variants_are_read_like_torch_reads_them(variant: str, tmp_path: Path) -> None:
    benign = build_zip(WELL_FORMED[variant](BENIGN))
    assert _torch_load(tmp_path, benign) == {}, "the crafted archive is not one torch reads"
    rep = _scan(tmp_path, benign)
    assert rep.verdict is FileVerdict.SAFE, rep
    marker = tmp_path / "PWNED"
    hostile = _scan(tmp_path, build_zip(WELL_FORMED[variant](_hostile(marker))))
    assert hostile.verdict is FileVerdict.DANGEROUS, hostile
    assert [g.qualified_name for g in hostile.globals] == ["os.system"]
    assert not marker.exists()


# ------------------------------------------------------------- tricks: always an error

_H = object()  # placeholder for the hostile pickle


def _tricks(h: bytes) -> dict[str, Layout]:
    def dup(first: bytes, second: bytes) -> Layout:
        e = T(first)
        return Layout([*e, replace(e[0], data=second)])

    overlapped = T(BENIGN)
    inner = Entry("archive/extra.pkl", h)
    return {
        "duplicate data.pkl, hostile second": dup(BENIGN, h),
        "duplicate data.pkl, hostile first": dup(h, BENIGN),
        "local header names another member": Layout(T(h, local_name="archive/data.pkx")),
        "local header method differs": Layout(T(h, method=DEFLATED, local_method=0)),
        "local header flags differ": Layout(T(h, local_flags=0x800)),
        "local header CRC differs": Layout(T(h, local_crc=0)),
        "declared size differs from the data": Layout(T(h, size=len(h) + 5)),
        "encrypted flag": Layout(T(h, flags=FLAG_ENCRYPTED)),
        "unknown flag bits (masked headers)": Layout(T(h, flags=0x2000)),
        "data descriptor disagrees": Layout(T(h, flags=FLAG_DESCRIPTOR, descriptor_crc=1)),
        "CRC mismatch (torch ignores it, picklescan gave up)": Layout(T(h, crc=0x1234)),
        "overlapping members": Layout(
            [*overlapped, replace(inner, offset=0, local_name=overlapped[0].name)]
        ),
        "two entries, one local header": Layout(
            [*T(h), replace(T(h)[0], name="archive/x.pkl", offset=0)]
        ),
        "prepended data": Layout(T(h), prefix=b"MZ" + b"\x00" * 62),
        "prepended data, offsets adjusted (self-extracting)": Layout(
            T(h), prefix=b"#!/bin/sh\n" * 4, adjust_prefix=True
        ),
        "appended data": Layout(T(h), suffix=b"\x00" * 32),
        "fake end record in the comment": Layout(
            T(h), comment=b"PK\x05\x06" + b"\x00" * 16 + b"\x00\x00"
        ),
        "end record counts too many entries": Layout(T(h), count_delta=1),
        "a member the central directory does not list": Layout(
            [*T(BENIGN), Entry("archive/hidden.pkl", h)], central=[0, 1, 2]
        ),
        "hidden bytes between members": Layout(T(h), between={0: b"PK\x03\x04hidden"}),
        "member outside the archive directory": Layout([*T(h), Entry("other/data.pkl", h)]),
        "member name with ..": Layout([*T(h), Entry("archive/../evil.pkl", h)]),
        "member name with a backslash": Layout([*T(h), Entry("archive\\data.pkl", h)]),
        "member name with a NUL byte": Layout([*T(h), Entry("archive/data.pkl\x00.txt", h)]),
        "first member not in a directory": Layout([Entry("data.pkl", h), *T(BENIGN)]),
        "no data.pkl": Layout([Entry("archive/weights.pkl", h), Entry("archive/version", b"3")]),
        "unsupported compression method": Layout(T(h, method=12, local_method=12)),
        # found by the bit-flip fuzzer: zipfile (so picklescan, modelscan) refuses the archive,
        # torch reads it
        "version needed to extract that zipfile refuses": Layout(T(h, central_version=84)),
    }


_NAMES = sorted(_tricks(b"x"))


@pytest.mark.parametrize("trick", _NAMES)
def test_archive_tricks_are_errors_never_safe(trick: str, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    layout = _tricks(_hostile(marker))[trick]
    rep = _scan(tmp_path, build_zip(layout))
    assert rep.verdict is FileVerdict.ERROR, rep
    assert rep.findings and rep.findings[0].message, "an error must say what is wrong"
    assert not marker.exists()


def test_the_trick_builder_is_honest(tmp_path: Path) -> None:
    """The same builder without a trick gives an archive that scans clean."""
    assert _scan(tmp_path, build_zip(Layout(T(BENIGN)))).verdict is FileVerdict.SAFE


def test_zip64_end_record_fields_are_cross_checked(tmp_path: Path) -> None:
    data = bytearray(build_zip(Layout(T(BENIGN, zip64=True), zip64_end=True)))
    # the 32-bit end record must say 0xFFFF/0xFFFFFFFF or agree with the zip64 one
    eocd = data.rfind(b"PK\x05\x06")
    struct.pack_into("<H", data, eocd + 8, 7)
    assert _scan(tmp_path, bytes(data)).verdict is FileVerdict.ERROR
