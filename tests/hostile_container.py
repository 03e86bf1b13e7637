"""Hostile containers: files that PyTorch's own reader reads differently from a strict reader.

Each builder writes a file whose *scanned* content (what a strict linear reader of the zip
directory / the legacy pickle sequence sees) is a harmless checkpoint, while ``torch.load``
(weights_only=False) reads other bytes and runs a payload that creates ``marker``, or takes
its TorchScript path. They are built from first principles (pickle opcodes, zip members, tar
header fields), documented below; ``tests/_load/test_owned_container.py`` proves each payload
is live under the stock loader and never runs under ``ckptguard.load``.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
import tarfile
import zipfile
from pathlib import Path

import torch

from tests.pickleasm import EMPTY_DICT, STOP, call, framed, glob, program, proto, unicode0

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


def payload(marker: Path) -> bytes:
    """A protocol 0 pickle calling ``os.system('touch MARKER')`` (no PROTO, no binary opcodes)."""
    return program(call(glob("os", "system"), unicode0(f"touch {marker}")), protocol=None)


def _benign_zip(obj: object) -> list[tuple[str, bytes]]:
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    with zipfile.ZipFile(buf) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def _write_zip(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in members:
            z.writestr(name, data)
    return path


def case_twin_data_pkl(path: Path, marker: Path, *, twin_first: bool = False) -> Path:
    """``archive/data.pkl`` holds ``{"w": tensor}``; ``archive/DATA.PKL`` holds the payload.

    PyTorch looks records up ignoring letter case, so ``torch.load`` may unpickle the upper-case
    twin; a strict reader sees two different members and reads ``data.pkl``. The twin does not
    end in ``.pkl`` and does not start with a binary PROTO opcode, so a scanner that picks
    pickle members by name or magic skips it.
    """
    members = _benign_zip({"w": torch.arange(4.0)})
    twin = (members[0][0].rsplit("/", 1)[0] + "/DATA.PKL", payload(marker))
    members = [twin, *members] if twin_first else [*members, twin]
    return _write_zip(path, members)


def long_name_torchscript(path: Path) -> Path:
    """A state dict whose archive directory is 497 bytes long, plus a member named
    ``<dir>/constants.pklX``: 512 bytes, which PyTorch's record listing cuts at 511 bytes to
    ``<dir>/constants.pkl``, so ``torch.load`` dispatches the file to ``torch.jit.load``."""
    prefix = "a" * (511 - len("/constants.pkl"))
    members = []
    for name, data in _benign_zip({"w": torch.arange(4.0)}):
        members.append((prefix + "/" + name.split("/", 1)[1], data))
    members.append((prefix + "/constants.pklX", b"x"))
    return _write_zip(path, members)


def legacy_pickles(obj: object) -> list[bytes]:
    """The five pickles and the raw storage section of ``obj`` saved in the legacy format
    (split by CPython's unpickler reading a benign file; the last item is the raw section)."""
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    parts, pos = [], 0
    for _ in range(5):
        *_, (_, _, stop) = pickletools.genops(data[pos:])  # the last opcode is STOP
        parts.append(data[pos : pos + stop + 1])
        pos += stop + 1
    return [*parts, data[pos:]]


def frame_tail_legacy(path: Path, marker: Path) -> Path:
    """A legacy file whose third pickle is a protocol 4 FRAME running past its STOP.

    Layout: magic, protocol, then ``PROTO 4, FRAME L, {} STOP, H`` where the frame's L bytes
    also cover H = [object pickle: a uint8 tensor of len(P) elements][its key list][the
    8-byte element count len(P)], and after the frame: P, the payload pickle.

    A linear reader (next pickle starts after STOP) sees a valid legacy file: object, keys,
    and P as the raw bytes of the tensor's storage, ending exactly at the end of the file.
    CPython's unpickler reads the whole frame, stops at STOP and drops the rest of the frame,
    so the next ``pickle.load`` (torch's object pickle) starts at P and runs it.
    """
    p = payload(marker)
    magic, version, _, obj, keys, _ = legacy_pickles(torch.zeros(len(p), dtype=torch.uint8))
    tail = obj + keys + struct.pack("<q", len(p))
    path.write_bytes(magic + version + proto(4) + framed(EMPTY_DICT + STOP, tail) + p)
    return path


def v7_tar_legacy(path: Path, marker: Path) -> Path:
    """A legacy file (scanned: ``{}`` with no storages) that is also an old V7 tar archive.

    torch's legacy reader first tries ``tarfile.open`` on a real file. A V7 header has no
    ``ustar`` magic: only a name, octal numeric fields and a checksum. Here the first 512
    bytes are the magic-number and protocol pickles followed by a BINBYTES constant (the
    system-info pickle) whose content carries the header fields at their offsets; the second
    header ("storages", which torch unpickles first) and its content (the payload pickle) are
    further inside the same constant, followed by zero blocks (the end of the tar).
    """
    head = pickle.dumps(LEGACY_MAGIC, 2) + pickle.dumps(LEGACY_PROTOCOL, 2)
    p = payload(marker)
    total = 1024 + 512 * (1 + len(p) // 512) + 1024
    opener = proto(3) + b"B" + struct.pack("<I", total - len(head) - 7)  # BINBYTES
    file = bytearray(head + opener + bytes(total - len(head) - len(opener)))

    def header(at: int, name: bytes, size: int) -> None:
        block = file[at : at + 512]
        block[: len(name)] = name
        block[100:108] = b"0000644\x00"
        block[124:136] = b"%011o\x00" % size
        block[156:157] = b"0"
        block[148:156] = b" " * 8
        block[148:156] = b"%06o\x00 " % sum(block)
        file[at : at + 512] = block

    header(0, b"", 0)  # its name is the pickles' first bytes, up to the first NUL
    header(512, b"storages", len(p))
    file[1024 : 1024 + len(p)] = p
    path.write_bytes(bytes(file) + b"." + pickle.dumps({}, 2) + pickle.dumps([], 2))
    assert tarfile.is_tarfile(path), "the crafted file is not a tar archive"
    return path
