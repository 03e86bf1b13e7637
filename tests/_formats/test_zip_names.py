"""Zip members torch's reader (miniz) sees differently from their exact name and attributes:
letter case, the 511-byte listing cut, TorchScript names in any case, the DOS directory bit.
Each is an error with its own rule, never safe; the same archive without the trick is safe."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest

import ckptguard
from ckptguard import FileVerdict
from tests.pickleasm import EMPTY_DICT, program
from tests.zipcraft import Entry, Layout, build_zip

BENIGN = program(EMPTY_DICT)


def _archive(
    *extra: Entry, prefix: str = "archive", data_name: str = "data.pkl", dos_dir: int = -1
) -> bytes:
    """A benign torch archive; ``dos_dir``: the index of a member with the DOS directory bit."""
    members = [
        Entry(f"{prefix}/{data_name}", BENIGN),
        Entry(f"{prefix}/byteorder", b"little"),
        Entry(f"{prefix}/version", b"3\n"),
        *extra,
    ]
    return build_zip(
        Layout(
            [replace(e, external_attr=0x10) if i == dos_dir else e for i, e in enumerate(members)]
        )
    )


def _scan(tmp_path: Path, data: bytes) -> ckptguard.FileReport:
    path = tmp_path / "m.pt"
    path.write_bytes(data)
    return ckptguard.scan(path).files[0]


DIR = "zip-directory-attribute"
CASES = {
    "DATA.PKL beside data.pkl": (_archive(Entry("archive/DATA.PKL", BENIGN)), "zip-case-collision"),
    "Version beside version": (_archive(Entry("archive/Version", b"3\n")), "zip-case-collision"),
    "prefix in another case": (_archive(Entry("ARCHIVE/extra", b"x")), None),
    "only Data.Pkl": (_archive(data_name="Data.Pkl"), "zip-case-variant"),
    "name over 511 bytes": (_archive(Entry("archive/" + "n" * 600, b"x")), "zip-long-name"),
    "constants.pkl after the cut": (
        _archive(Entry("A" * 497 + "/constants.pkl" + "X" * 9, BENIGN), prefix="A" * 497),
        "zip-long-name",
    ),
    "CONSTANTS.PKL": (_archive(Entry("archive/CONSTANTS.PKL", BENIGN)), "torch-torchscript"),
    "Code/ directory": (_archive(Entry("archive/Code/m.py", b"x")), "torch-torchscript"),
    "data.pkl with the DOS directory bit": (_archive(dos_dir=0), DIR),
    "version with the DOS directory bit": (_archive(dos_dir=2), DIR),
    "directory name holding data": (_archive(Entry("archive/dir/", b"data")), DIR),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_names_torch_reads_differently_are_errors(name: str, tmp_path: Path) -> None:
    data, rule = CASES[name]
    rep = _scan(tmp_path, data)
    # a TorchScript archive (by torch's case-insensitive test) is dangerous: it is code
    want = FileVerdict.DANGEROUS if rule == "torch-torchscript" else FileVerdict.ERROR
    assert rep.verdict is want, rep
    if rule is not None:
        assert rule in {f.rule for f in rep.findings}, rep.findings


def test_the_same_archives_without_the_trick_are_safe(tmp_path: Path) -> None:
    assert _scan(tmp_path, _archive()).verdict is FileVerdict.SAFE
    assert _scan(tmp_path, _archive(Entry("archive/extra/", b""))).verdict is FileVerdict.SAFE
    assert (
        _scan(tmp_path, _archive(Entry("archive/" + "n" * 500, b"x"))).verdict is FileVerdict.SAFE
    )


def test_torch_really_reads_a_directory_flagged_member_differently() -> None:
    """The DOS-bit case is not theoretical: torch returns other bytes than the member holds."""
    torch = pytest.importorskip("torch")
    data = _archive(dos_dir=0)
    try:
        got = bytes(torch._C.PyTorchFileReader(io.BytesIO(data)).get_record("data.pkl"))
    except (RuntimeError, UnicodeDecodeError):
        return  # torch cannot read it at all: also not what ckptguard would have analysed
    assert got != BENIGN
