"""The legacy (pre-1.6) torch.save format: five pickles in a row, then raw storages."""

from __future__ import annotations

from ckptguard._errors import PickleError
from ckptguard._pickle._analysis import GlobalConst, GlobalUsage, PickleAnalysis, PickleLimits
from ckptguard._results import FindingRecord
from ckptguard._scan_rules import (
    TORCH_BAD_LOCATION,
    TORCH_BAD_PERSISTENT_ID,
    TORCH_LEGACY_FRAME,
    TORCH_MODULE_SOURCE,
    TORCH_STORAGE_KEYS,
    TORCH_STORAGE_SIZE,
    TORCH_TRAILING_DATA,
    TORCH_TRUNCATED,
)
from ckptguard._verdict import Severity

from ._common import PROTOCOL_VERSION, Buffer, error_finding
from ._extracted import Extracted, PickleStream
from ._framing import frame_tail
from ._torchzip import check_tensors, storage_element_size, valid_location

_NAMES = ("magic number", "protocol version", "system info", "object", "storage keys")


def read_legacy(buf: Buffer, first: PickleAnalysis, limits: PickleLimits) -> Extracted:
    """``first`` is the already analysed magic-number pickle at the start of ``buf``."""
    from ckptguard._pickle import analyze_pickle  # noqa: PLC0415
    from ckptguard._pickle._vm import globals_in_a_row  # noqa: PLC0415

    streams = [PickleStream("pickle 1 (magic number)", first)]
    framing: list[FindingRecord] = []
    pos = 0
    for i, label in enumerate(_NAMES, 1):
        name = f"pickle {i} ({label})"
        a = first if i == 1 else None
        if a is None:
            try:
                a = analyze_pickle(buf, start=pos, where=name, limits=limits)
            except PickleError as exc:  # the globals of the pickles before it are reported too
                raise _failed(streams, exc.problem, exc.offset, exc.partial, exc.hint) from None
            streams.append(PickleStream(name, a, start=pos))
        # torch.load reads these pickles one after the other from one file object: each must
        # start where every stream type the unpickler may be fed leaves the previous one
        problem = frame_tail(buf, pos, a.end)
        if problem is not None and not framing:
            framing.append(
                error_finding(
                    TORCH_LEGACY_FRAME,
                    f"legacy torch file, {name}: {problem}; ckptguard cannot tell which bytes "
                    "torch.load would unpickle next",
                    f"{name}@{pos}",
                )
            )
        for other in a.other_ends:  # torch.load's file object reads the next pickle elsewhere
            found = globals_in_a_row(
                buf, other, len(_NAMES) - i, where=f"{name} (file object)", limits=limits
            )
            if found:
                more = PickleAnalysis(
                    protocol=0, end=other, globals=found, findings=(),
                    persistent_ids=(), value=None, opcodes=0,
                )  # fmt: skip
                extra = f"{name} (then as a file object reads on from byte {other})"
                streams.append(PickleStream(extra, more))
        pos = a.end
    if len(streams) > len(_NAMES):  # the pickles io.BytesIO reads elsewhere are reported only
        raise _failed(
            streams,
            "a FRAME leaves data after STOP: io.BytesIO and torch.load read the legacy pickles "
            "from other offsets than ckptguard",
        )
    version = streams[1].analysis.value
    if version != PROTOCOL_VERSION:
        raise _failed(
            streams,
            f"legacy torch file with protocol version {version!r} (expected {PROTOCOL_VERSION})",
        )
    keys = streams[4].analysis.value
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _failed(streams, "legacy torch file: the storage-key list is not a list of strings")
    findings = framing + _walk_storages(buf, pos, keys, streams[3])
    findings += check_tensors(streams[3].analysis, streams[3].name)
    findings += _module_findings(streams[3])
    for pid in streams[3].analysis.persistent_ids:
        if not (isinstance(pid, tuple) and pid and pid[0] in ("storage", "module", b"module")):
            findings.append(
                error_finding(
                    TORCH_BAD_PERSISTENT_ID,
                    f"persistent id {pid!r} is not a torch storage reference: torch.load fails",
                    streams[3].name,
                )
            )
            break
    for pid in streams[3].analysis.persistent_ids:
        if isinstance(pid, tuple) and len(pid) >= 5 and not valid_location(pid[3]):
            findings.append(
                error_finding(
                    TORCH_BAD_LOCATION,
                    f"a tensor storage names the device {pid[3]!r}: torch.load does not know it "
                    "(damaged or altered file)",
                    streams[3].name,
                )
            )
            break
    return Extracted(
        format="pytorch-legacy",
        pickles=tuple(streams),
        findings=tuple(findings),
        details={"storages": str(len(keys))},
    )


def _module_findings(main: PickleStream) -> list[FindingRecord]:
    """Whole-model pickles (``torch.save(model)``): each ``nn.Module`` class travels in a
    ``('module', <class>, <source file>, <source text>)`` persistent id. torch.load's
    ``persistent_load`` returns the class (a global, imported by the pickle's own GLOBAL and
    judged by the policy like any other) and only compares the source text with the installed
    class's source to warn when it changed: the text is never executed. Anything else in such
    an id is refused."""
    classes: list[str] = []
    for pid in main.analysis.persistent_ids:
        if not (isinstance(pid, tuple) and pid and pid[0] in ("module", b"module")):
            continue
        if not (
            len(pid) == 4
            and type(pid[1]) is GlobalConst
            and all(x is None or type(x) is str for x in pid[2:])
        ):
            return [
                error_finding(
                    TORCH_BAD_PERSISTENT_ID,
                    "a whole-model persistent id is not ('module', <class>, <source file>, "
                    "<source text>): refused (damaged or crafted file)",
                    main.name,
                )
            ]
        name = f"{pid[1].module}.{pid[1].name}"
        if name not in classes:
            classes.append(name)
    if not classes:
        return []
    shown = ", ".join(classes[:5]) + (f" and {len(classes) - 5} more" if len(classes) > 5 else "")
    return [
        FindingRecord(
            TORCH_MODULE_SOURCE,
            Severity.INFO,
            f"whole-model pickle: {len(classes)} module class"
            f"{'es' if len(classes) != 1 else ''} ({shown}) carry the source text they had "
            "when saved; that text is never executed (torch.load and ckptguard.load only "
            "compare it with the installed class's source and warn if it changed): the classes "
            "are imported from the installed code, as the globals listed",
            main.name,
        )
    ]


def _failed(
    streams: list[PickleStream],
    problem: str,
    offset: int | None = None,
    partial: tuple[GlobalUsage, ...] = (),
    hint: str | None = None,
) -> PickleError:
    """The file is broken: the error carries every global its pickles reached before the break
    (a payload in the object pickle stays listed when the storage keys are missing)."""
    reached = tuple(g for s in streams for g in s.analysis.globals) + partial
    err = PickleError(problem, offset=offset, partial=reached, hint=hint)
    err.format = "pytorch-legacy"
    return err


def _walk_storages(
    buf: Buffer, pos: int, keys: list[str], main: PickleStream
) -> list[FindingRecord]:
    """Check that the raw storage records after the pickles exactly fill the file."""
    elsize: dict[str, int] = {}
    numel: dict[str, int] = {}
    for pid in main.analysis.persistent_ids:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            key = pid[2]
            size = storage_element_size(pid[1])
            if isinstance(key, str) and size is not None:
                if key in elsize and (elsize[key], numel.get(key)) != (
                    size,
                    pid[4] if type(pid[4]) is int else None,
                ):
                    # torch.load keeps the first id's view of a storage, the scan would judge
                    # the last: loaders read such a key differently
                    return [_disagreeing(key, main.name)]
                elsize[key] = size
                if type(pid[4]) is int:
                    numel[key] = pid[4]
    if set(keys) != set(elsize):
        return [
            error_finding(
                TORCH_STORAGE_KEYS,
                "legacy torch file: the storage-key list does not match the storages the "
                "object pickle references",
                main.name,
            )
        ]
    size = len(buf)
    for key in keys:
        if pos + 8 > size:
            return [error_finding(TORCH_TRUNCATED, f"storage {key!r} is cut off: truncated file")]
        count = int.from_bytes(buf[pos : pos + 8], "little", signed=True)
        pos += 8 + count * elsize[key]
        if count < 0 or pos > size:
            return [error_finding(TORCH_TRUNCATED, f"storage {key!r} is cut off: truncated file")]
        if key in numel and numel[key] != count:
            return [
                error_finding(
                    TORCH_STORAGE_SIZE,
                    f"storage {key!r} holds {count} elements but the pickle says {numel[key]}: "
                    "torch.load refuses such a file (damaged or altered)",
                )
            ]
    if pos != size:
        return [
            error_finding(
                TORCH_TRAILING_DATA,
                f"{size - pos} bytes after the last storage: the file was altered or appended to",
            )
        ]
    return []


def _disagreeing(key: str, where: str) -> FindingRecord:
    return error_finding(
        TORCH_STORAGE_SIZE,
        f"storage {key!r} is named by persistent ids that disagree on its element type or "
        "size: loaders keep the first and could read it otherwise than the scan (damaged or "
        "crafted file)",
        where,
    )
