"""Would Python's tarfile open this file? torch.load's legacy path asks it first.

``torch.load`` hands a file given by path (or as a real open file at offset 0) that is not a
zip archive to ``tarfile.open(fileobj=f, mode="r:")`` before it tries the pickle path; if that
succeeds it unpickles the tar's own members, which ckptguard never reads. tarfile accepts the
first 512-byte block when it is all NUL bytes (an empty archive) or when its checksum field
(bytes 148-156: octal text, or base-256 when the first byte is 0x80/0xFF) equals the unsigned
or the signed byte sum of the block with that field counted as spaces. No ``ustar`` magic is
needed (old V7 archives have none). :func:`tar_would_open` is exactly that test, without
tarfile's later field parsing (a block that passes it and then fails there makes torch.load
raise, not read the pickle), so it flags a superset of what torch opens as a tar.
"""

from __future__ import annotations

BLOCK = 512
_CHKSUM = slice(148, 156)


def _number(field: bytes) -> int | None:
    """A tar number field the way tarfile's ``nti`` reads it (None: it raises)."""
    if field[0] in (0o200, 0o377):
        n = int.from_bytes(field[1:], "big")
        return n - 256 ** (len(field) - 1) if field[0] == 0o377 else n
    nul = field.find(b"\0")
    text = field if nul < 0 else field[:nul]
    try:
        return int(text.decode("ascii").strip() or "0", 8)
    except (UnicodeDecodeError, ValueError):
        return None


def tar_would_open(head: bytes) -> bool:
    """True when tarfile would accept ``head`` (a file's first bytes) as a tar archive."""
    if len(head) < BLOCK:
        return False
    block = head[:BLOCK]
    if block.count(0) == BLOCK:
        return True
    chksum = _number(block[_CHKSUM])
    if chksum is None:
        return False
    rest = block[:148] + block[156:]
    unsigned = 256 + sum(rest)
    signed = unsigned - 256 * sum(1 for b in rest if b >= 128)
    return chksum in (unsigned, signed)
