"""PyTorch zip archives (torch.save's default), TorchScript archives and numpy .npz files."""

from __future__ import annotations

from ckptguard._pickle import GlobalConst, PersistentRef, PickleAnalysis
from ckptguard._pickle._analysis import PickleLimits
from ckptguard._results import FindingRecord
from ckptguard._scan_rules import (
    TORCH_BAD_LOCATION,
    TORCH_BAD_PERSISTENT_ID,
    TORCH_MISSING_STORAGE,
    TORCH_STORAGE_SIZE,
    TORCH_TENSOR_LAYOUT,
    ZIP_CASE_COLLISION,
    ZIP_CASE_VARIANT,
    ZIP_LONG_NAME,
)
from ckptguard._verdict import Severity

from . import _torchscript
from ._common import NPY_MAGIC, Buffer, analyse_stream, corrupt, error_finding
from ._extracted import Extracted, Member, PickleStream
from ._zip import member_head, read_member, read_members, verify_member

# Element sizes of the storage classes torch writes into persistent ids.
_STORAGE_ELEMENT_SIZE = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
    "BoolStorage": 1, "ComplexDoubleStorage": 16, "ComplexFloatStorage": 8,
    "QUInt8Storage": 1, "QInt8Storage": 1, "QInt32Storage": 4, "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1, "UntypedStorage": 1,
}  # fmt: skip
_SMALL_RECORDS = ("version", ".format_version", "byteorder", ".storage_alignment")
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def storage_element_size(storage_type: object) -> int | None:
    name = storage_type.name if isinstance(storage_type, GlobalConst) else storage_type
    return _STORAGE_ELEMENT_SIZE.get(name) if isinstance(name, str) else None


# torch's record listing (PyTorchFileReader.get_all_records, which torch.load's TorchScript test
# reads) copies at most this many bytes of a member name: a longer name is listed cut short.
TORCH_NAME_MAX = 511


def torch_name_findings(members: list[Member]) -> list[FindingRecord]:
    """Names torch's reader would see differently from their full, exact spelling.

    torch's record lookups (``get_record("data.pkl")``, storages, ``version``) ignore ASCII
    letter case and return whichever of several matching members its sorted directory search
    meets first; its record listing cuts names at :data:`TORCH_NAME_MAX` bytes. Either way
    torch may read other bytes than the member ckptguard analysed under that name.
    """
    findings: list[FindingRecord] = []
    folded: dict[bytes, str] = {}
    for m in members:
        raw = m.name.encode()
        if len(raw) > TORCH_NAME_MAX:
            findings.append(
                error_finding(
                    ZIP_LONG_NAME,
                    f"zip member name of {len(raw)} bytes: torch's record listing cuts names at "
                    f"{TORCH_NAME_MAX} bytes (to {raw[:TORCH_NAME_MAX][-40:]!r}...), so torch.load "
                    "would see another name than the one ckptguard read",
                    m.name[:80],
                )
            )
        key = raw.lower()  # miniz folds ASCII letters only, like bytes.lower()
        other = folded.setdefault(key, m.name)
        if other != m.name:
            findings.append(
                error_finding(
                    ZIP_CASE_COLLISION,
                    f"zip members {other!r} and {m.name!r} differ only in letter case: torch's "
                    "record lookups ignore case and may read either one",
                    m.name,
                )
            )
    return findings


def is_torchscript_name(rel: str) -> bool:
    """A member that makes torch.load hand the archive to torch.jit.load (any letter case)."""
    low = rel.lower()
    return low == "constants.pkl" or low.startswith("code/")


def read_zip(buf: Buffer, limits: PickleLimits) -> Extracted:
    members = read_members(buf)
    if not members:
        raise corrupt("empty zip archive: not a checkpoint", fmt="zip")
    names = [m.name for m in members]
    if all(n.endswith(".npy") or n.endswith("/") for n in names):
        return _read_npz(buf, members, limits)
    first = names[0]
    if "/" not in first:
        raise corrupt(
            f"zip archive whose first member {first!r} is not inside a directory: not a "
            "PyTorch checkpoint (PyTorch requires an archive directory)",
            fmt="zip",
        )
    prefix = first.split("/", 1)[0] + "/"
    outside = [n for n in names if not n.startswith(prefix)]
    if outside:
        raise corrupt(
            f"zip members outside the archive directory {prefix!r} (e.g. {outside[0]!r}): "
            "PyTorch and other readers would see different files",
            fmt="zip",
        )
    findings = torch_name_findings(members)
    by_name = {m.name[len(prefix) :]: m for m in members}
    torchscript = [rel for rel in by_name if is_torchscript_name(rel)]
    fmt = "torchscript" if torchscript else "pytorch-zip"
    if "data.pkl" not in by_name:
        variant = next((rel for rel in by_name if rel.lower() == "data.pkl"), None)
        if variant is not None:
            raise corrupt(
                f"zip member {prefix}{variant} instead of {prefix}data.pkl: torch's record "
                "lookups ignore letter case, so torch.load unpickles it as data.pkl",
                fmt="zip",
                rule=ZIP_CASE_VARIANT,
            )
        raise corrupt(f"zip archive without {prefix}data.pkl: not a PyTorch checkpoint", fmt="zip")
    streams: list[PickleStream] = []
    for rel, m in by_name.items():
        if _is_pickle_member(buf, rel, m):
            data = read_member(buf, m)
            streams.append(analyse_stream(data, m.name, limits))
        else:
            if m.method:  # torch writes members stored; a deflated one must at least inflate
                verify_member(buf, m)
            if m.size >= len(NPY_MAGIC) and member_head(buf, m, len(NPY_MAGIC)) == NPY_MAGIC:
                # numpy.load opens any member that starts like a .npy file as one
                sub = _read_npy_member(buf, m, limits)
                streams.extend(sub.pickles)
                findings.extend(sub.findings)
    if torchscript:  # one verdict and one message for every TorchScript archive
        findings.append(
            FindingRecord(
                _torchscript.RULE, Severity.DANGEROUS, _torchscript.MESSAGE, prefix + torchscript[0]
            )
        )
    data_stream = next(s for s in streams if s.name == prefix + "data.pkl")
    if not torchscript:
        findings.extend(_check_storages(data_stream, by_name, prefix))
        findings.extend(check_tensors(data_stream.analysis, data_stream.name))
    details = {"archive": prefix.rstrip("/")}
    for rel in _SMALL_RECORDS:
        small = by_name.get(rel)
        if small is not None and small.size <= 64:
            details[rel.lstrip(".")] = read_member(buf, small).decode("ascii", "replace").strip()
    return Extracted(
        format=fmt, pickles=tuple(streams), findings=tuple(findings), details=details,
        records=tuple(members),
    )  # fmt: skip


def _is_pickle_member(buf: Buffer, rel: str, m: Member) -> bool:
    """Every *.pkl member, and any other member that starts like a pickle (outside data/)."""
    if rel.lower().endswith(".pkl"):  # torch's lookups ignore case
        return True
    if rel.startswith(("data/", "code/", ".data/")) or rel in _SMALL_RECORDS or m.size < 2:
        return False
    return member_head(buf, m, 2) in _PICKLE_MAGIC


# Device types a storage location may name ("cuda:1", "cpu", ...): anything else makes
# torch.load fail with "don't know how to restore data location".
_DEVICE_TYPES = frozenset(
    {
        "cpu", "cuda", "mps", "meta", "xpu", "hpu", "xla", "mtia", "ipu", "npu", "mlu", "musa",
        "lazy", "vulkan", "maia", "privateuseone", "ve", "ort", "fpga", "ideep", "mkldnn",
        "opengl", "opencl", "hip", "sdaa", "tpu",
    }
)  # fmt: skip


def valid_location(location: object) -> bool:
    if not isinstance(location, str):
        return False
    kind, colon, index = location.partition(":")
    return kind in _DEVICE_TYPES and (not colon or index.isdigit())


def check_tensors(analysis: PickleAnalysis, where: str) -> list[FindingRecord]:
    """Every tensor rebuilt from a storage must fit in it (torch refuses the file otherwise):
    storage_offset + sum((size - 1) * stride) < the storage's element count."""
    findings: list[FindingRecord] = []
    pids = analysis.persistent_ids
    for key, args in analysis.calls:
        problem = _tensor_problem(args, pids)
        if problem is not None:
            findings.append(
                error_finding(
                    TORCH_TENSOR_LAYOUT,
                    f"a tensor rebuilt by {'.'.join(key)} {problem}: torch.load refuses the "
                    "file (damaged or altered)",
                    where,
                )
            )
            if len(findings) >= 20:
                break
    return findings


def _ints(v: object) -> bool:
    return type(v) is tuple and set(map(type, v)) <= _INT


_INT = {int}


def _tensor_problem(args: object, pids: tuple[object, ...]) -> str | None:
    if not (type(args) is tuple and len(args) >= 4):
        return "has malformed arguments"
    ref, offset, size, stride = args[:4]
    if type(ref) is not PersistentRef:
        return None  # not a storage of this file's records (e.g. a nested call): not checked
    pid = pids[ref.index] if 0 <= ref.index < len(pids) else None
    if not (type(pid) is tuple and len(pid) >= 5 and type(pid[4]) is int):
        return None  # reported by the storage checks
    if type(offset) is not int or offset < 0 or not _ints(size) or not _ints(stride):
        return "has malformed offset, size or stride"
    assert isinstance(size, tuple) and isinstance(stride, tuple)
    if len(size) != len(stride) or (size and min(size) < 0):
        return f"has size {size} and stride {stride} of different lengths or negative sizes"
    if 0 in size:
        return None
    needed = offset + 1
    for d, st in zip(size, stride, strict=True):
        needed += (d - 1) * st
    if needed > pid[4] or (stride and min(stride) < 0):
        return f"needs {needed} elements but its storage holds {pid[4]}"
    return None


def _check_storages(
    stream: PickleStream, by_name: dict[str, Member], prefix: str
) -> list[FindingRecord]:
    """Every persistent id must name an existing storage record large enough for it."""
    findings: list[FindingRecord] = []
    seen: dict[object, tuple[object, object]] = {}
    for pid in stream.analysis.persistent_ids:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and type(pid[2]) is str:
            view = (repr(pid[1]), pid[4])
            if seen.setdefault(pid[2], view) != view:
                # torch.load keeps the first id's view of a storage (its loaded_storages cache);
                # one key with two element types or sizes is read otherwise than it was judged
                findings.append(
                    error_finding(
                        TORCH_STORAGE_SIZE,
                        f"tensor storage {pid[2]!r} is named by persistent ids that disagree on "
                        "its element type or size: loaders keep the first (damaged or crafted "
                        "file)",
                        stream.name,
                    )
                )
                continue
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            findings.append(
                error_finding(
                    TORCH_BAD_PERSISTENT_ID,
                    f"persistent id {pid!r} is not a torch storage reference: torch.load fails",
                    stream.name,
                )
            )
            continue
        _, storage_type, key, location, numel = pid[:5]
        if not valid_location(location):
            findings.append(
                error_finding(
                    TORCH_BAD_LOCATION,
                    f"tensor storage {key!r} names the device {location!r}: torch.load does not "
                    "know it (damaged or altered file)",
                    stream.name,
                )
            )
        record = by_name.get(f"data/{key}") if isinstance(key, str) else None
        if record is None:
            findings.append(
                error_finding(
                    TORCH_MISSING_STORAGE,
                    f"tensor storage {key!r} has no {prefix}data/{key} record: the file is "
                    "incomplete",
                    stream.name,
                )
            )
            continue
        elsize = storage_element_size(storage_type)
        if elsize is not None and isinstance(numel, int) and record.size < numel * elsize:
            findings.append(
                error_finding(
                    TORCH_STORAGE_SIZE,
                    f"storage record data/{key} holds {record.size} bytes but the pickle needs "
                    f"{numel * elsize}: the file is truncated or altered",
                    stream.name,
                )
            )
        if len(findings) >= 20:
            break
    return findings


def _read_npz(buf: Buffer, members: list[Member], limits: PickleLimits) -> Extracted:
    streams: list[PickleStream] = []
    findings: list[FindingRecord] = []
    for m in members:
        if m.name.endswith("/"):
            continue
        sub = _read_npy_member(buf, m, limits)
        streams.extend(sub.pickles)
        findings.extend(sub.findings)
    return Extracted(format="numpy-npz", pickles=tuple(streams), findings=tuple(findings))


def _read_npy_member(buf: Buffer, m: Member, limits: PickleLimits) -> Extracted:
    from ._npy import read_npy  # noqa: PLC0415 - start-up time: few files are .npz

    if not m.method:
        return read_npy(_Slice(buf, m), m.name, limits)
    # a deflated member (numpy.savez_compressed): its header is inflated alone, the rest only
    # when it is an object array's pickle (bounded like every pickle member); numeric data is
    # only checked, in bounded memory
    member = _Deflated(buf, m)
    found = read_npy(member, m.name, limits)
    if member.whole is None:
        verify_member(buf, m)
    return found


class _Deflated:
    """A deflated member, inflated only as far as it is read (its header), or whole on demand."""

    _HEAD = 12 + (64 << 10)  # a .npy preamble and the largest header read_npy accepts

    def __init__(self, buf: Buffer, m: Member) -> None:
        self.buf, self.m = buf, m
        self.head = member_head(buf, m, self._HEAD)
        self.whole: bytes | None = None

    def __len__(self) -> int:
        return self.m.size

    def __getitem__(self, s: slice) -> bytes:
        start, stop, _ = s.indices(self.m.size)
        if stop <= len(self.head):
            return self.head[start:stop]
        if self.whole is None:
            self.whole = read_member(self.buf, self.m)
        return self.whole[start:stop]


class _Slice:
    """A stored member viewed in place (so that numeric arrays are never read)."""

    def __init__(self, buf: Buffer, m: Member) -> None:
        self.buf, self.start, self.size = buf, m.data_offset, m.size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, s: slice) -> bytes:
        start, stop, _ = s.indices(self.size)
        return bytes(self.buf[self.start + start : self.start + stop])
