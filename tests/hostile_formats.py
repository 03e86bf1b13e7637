"""Hostile container samples: files whose bytes a stock loader reads differently from the bytes
a scanner analyses (tests only; built from first principles, nothing here loads them).

Each builder takes the path of a marker file and returns the file's bytes. ``loader`` names
the stock loader under which the payload really runs (a test runs it in a subprocess, in a
temporary directory, and checks that the marker appears, so that the samples cannot rot into
dead payloads); ``live`` is the loader's observable proof when the class runs no Python payload
(TorchScript dispatch).
"""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

from tests.hostile import CASES
from tests.pickleasm import (
    EMPTY_DICT,
    NEWTRUE,
    POP,
    STOP,
    binbytes_head,
    binint2,
    framed,
    program,
    proto,
)
from tests.zipcraft import Entry, Layout, build_zip

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
BENIGN = program(EMPTY_DICT)


@dataclass(frozen=True)
class Sample:
    name: str
    build: Callable[[str], bytes]
    loader: str  # "torch-path", "torch-bytesio", "numpy", "pickle-file", "torch-dispatch"
    suffix: str = ".pt"
    rule: str | None = None  # the finding ckptguard reports (None: any error/dangerous)


def payload(marker: str, protocol: int = 2) -> bytes:
    """A pickle that creates ``marker`` through os.system when loaded."""
    name = "os.system p2" if protocol == 2 else "os.system p0"
    return next(c for c in CASES if c.name == name).build(marker)


# ------------------------------------------------------------------ zip: letter case, 511 cut


def _upper_data_pkl_first(marker: str) -> bytes:
    """A benign archive/data.pkl plus archive/DATA.PKL: torch's case-insensitive lookup of
    "data.pkl" meets DATA.PKL first (it comes first in the directory) and unpickles it."""
    return build_zip(
        Layout(
            [
                Entry("archive/DATA.PKL", payload(marker, 0)),
                Entry("archive/data.pkl", BENIGN),
                Entry("archive/byteorder", b"little"),
                Entry("archive/version", b"3\n"),
            ]
        )
    )


def _upper_data_pkl_only(marker: str) -> bytes:
    """Only archive/Data.Pkl: torch finds it when asked for data.pkl."""
    return build_zip(
        Layout(
            [
                Entry("archive/Data.Pkl", payload(marker, 0)),
                Entry("archive/byteorder", b"little"),
                Entry("archive/version", b"3\n"),
            ]
        )
    )


def _torchscript_after_cut(marker: str) -> bytes:
    """A 497-character archive directory and a member named constants.pkl plus a suffix:
    torch's record listing cuts the name at 511 bytes, lists "constants.pkl", and torch.load
    hands the archive to torch.jit.load. (No Python payload: the proof is the dispatch.)"""
    del marker
    prefix = "A" * 497
    return build_zip(
        Layout(
            [
                Entry(f"{prefix}/data.pkl", BENIGN),
                Entry(f"{prefix}/byteorder", b"little"),
                Entry(f"{prefix}/version", b"3\n"),
                Entry(f"{prefix}/constants.pkl" + "X" * 40, BENIGN),
            ]
        )
    )


# ------------------------------------------------------------------ legacy: tar polyglot


def _tar_checksum(block: bytearray) -> None:
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)


def _v7_tar_pickle(marker: str) -> bytes:
    """One pickle (a BINBYTES blob, then STOP) that is also an old V7 tar archive (no "ustar"
    magic, valid header checksum) holding a "storages" member: torch.load, given a path,
    opens it with tarfile and unpickles "storages"."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in (("AAAAAAAA", b""), ("storages", payload(marker))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = bytearray(out.getvalue())
    head = proto(2) + binbytes_head(len(raw) - 7)
    raw[0:7] = head  # the first member's name now starts a pickle
    for at in (0, 512):  # the two headers, as V7 writes them: no magic, no version
        block = raw[at : at + 512]
        block[257:265] = b"\0" * 8
        _tar_checksum(block)
        raw[at : at + 512] = block
    return bytes(raw) + STOP


# ------------------------------------------------------------------ legacy: FRAME tail


def _legacy_frame_tail(marker: str, benign_legacy: bytes, ends: list[int]) -> bytes:
    """A legacy torch file whose magic-number pickle ends inside a FRAME. Fed from an
    io.BytesIO the C unpickler continues after the frame, at pickles hidden in a BINBYTES
    blob that a linear reader takes for the protocol-version pickle."""
    magic_ops = pickle.dumps(LEGACY_MAGIC, protocol=2)[2:-1]
    hidden = pickle.dumps(1001, protocol=2) + payload(marker)
    tail = proto(2) + binbytes_head(len(hidden))
    head = proto(4) + framed(magic_ops + STOP + tail)
    version = POP + binint2(1001) + STOP  # the linear reader's pickle 2 evaluates to 1001
    return head + hidden + version + benign_legacy[ends[1] :]


# ------------------------------------------------------------------ numpy: object dtypes


def npy(descr: object, body: bytes, shape: tuple[int, ...] = (1,)) -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body


def npz(members: dict[str, bytes]) -> bytes:

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


# dtype spellings numpy reads as object arrays (their data is unpickled)
OBJECT_DESCRS: dict[str, object] = {
    "|O8": "|O8",
    "<O8": "<O8",
    "O4": "O4",
    "object": "object",
    "structured with an object field": [("a", "<i4"), ("b", "|O")],
    "subarray of objects": ("|O", (1,)),
    "comma string with an object": "i4,O",
}


# ------------------------------------------------------------------ pickles the old sniff skipped


def _frame_first(marker: str) -> bytes:
    """A pickle whose first opcode is FRAME (no PROTO): pickle.load runs it."""
    body = payload(marker, 0)
    return framed(body)


def _newtrue_first(marker: str) -> bytes:
    """NEWTRUE, POP, then the payload: a first byte outside the old sniff list."""
    return NEWTRUE + POP + payload(marker, 0)


def samples(benign_legacy: bytes, legacy_ends: list[int]) -> list[Sample]:
    out = [
        Sample("zip DATA.PKL before data.pkl", _upper_data_pkl_first, "torch-path",
               rule="zip-case-collision"),
        Sample("zip Data.Pkl only", _upper_data_pkl_only, "torch-path", rule="zip-case-variant"),
        Sample("zip constants.pkl after the 511-byte cut", _torchscript_after_cut,
               "torch-dispatch", rule="zip-long-name"),
        Sample("pickle that is also a V7 tar", _v7_tar_pickle, "torch-path", rule="format-tar"),
        Sample(
            "legacy pickle ending inside a FRAME",
            lambda m: _legacy_frame_tail(m, benign_legacy, legacy_ends),
            "torch-bytesio",
        ),
        Sample("pickle starting with FRAME", _frame_first, "pickle-file", suffix=""),
        Sample("pickle starting with NEWTRUE", _newtrue_first, "pickle-file", suffix=""),
    ]  # fmt: skip
    for label, descr in OBJECT_DESCRS.items():
        out.append(Sample(f"npy {label}", lambda m, d=descr: npy(d, payload(m)), "numpy", ".npy"))
        out.append(
            Sample(
                f"npz member {label}",
                lambda m, d=descr: npz({"a.npy": npy(d, payload(m))}),
                "numpy-npz",
                ".npz",
            )
        )
    return out
