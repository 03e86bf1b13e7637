"""The scan report: what ``ckptguard.scan()`` returns, and what the scanner, the CLI and the
reporters work on. One definition of each type.

The types are slotted, immutable records (cheap to import and to create: a ``ckptguard scan``
process never imports :mod:`dataclasses`, and start-up time is what the CLI is measured on).
To everyone else they are frozen dataclasses too: :func:`dataclasses.fields`, ``asdict``,
``astuple``, ``replace`` and ``is_dataclass`` work on them (the dataclass description is
built from these classes the first time something asks for it, see :class:`ReportType`), and
assigning a field raises :class:`dataclasses.FrozenInstanceError`. They compare, hash, print,
pickle and copy by their fields. Field names are the JSON contract.

The public names are ``ckptguard.Finding``, ``GlobalRef``, ``FileReport``, ``Skipped`` and
``ScanReport``; ``FindingRecord``, ``GlobalRecord``, ``FileRecord``, ``SkippedRecord`` and
``ScanRecord`` are the same classes under the names the readers used before.
"""

from __future__ import annotations

from ckptguard._record import Record, set_field
from ckptguard._verdict import FileVerdict, Severity, Use, Verdict, worst_verdict

TYPE_CHECKING = False  # typing only for type checkers (start-up time)
if TYPE_CHECKING:
    from dataclasses import Field
    from typing import Any, ClassVar

_DATACLASS_ATTRS = ("__dataclass_fields__", "__dataclass_params__")


def _as_dataclass(cls: type) -> None:
    """Give ``cls`` the attributes by which :mod:`dataclasses` knows a frozen dataclass, from
    a dataclass made of the same fields (names, annotations and defaults of ``__init__``)."""
    import dataclasses  # noqa: PLC0415 - only when something asks (start-up time)

    names: tuple[str, ...] = cls.__slots__  # type: ignore[attr-defined]
    defaults = cls.__init__.__defaults__ or ()  # type: ignore[misc]
    first_default = len(names) - len(defaults)
    spec: list[Any] = []
    for i, name in enumerate(names):
        annotation = cls.__annotations__[name]
        if i < first_default:
            spec.append((name, annotation))
        else:
            spec.append((name, annotation, dataclasses.field(default=defaults[i - first_default])))
    shadow = dataclasses.make_dataclass(cls.__name__, spec, frozen=True)
    for attr in _DATACLASS_ATTRS:
        type.__setattr__(cls, attr, getattr(shadow, attr))


class ReportType(type):
    """The metaclass of the report types: answers :mod:`dataclasses`' questions on demand."""

    if not TYPE_CHECKING:  # for type checkers, a missing attribute stays an error

        def __getattr__(cls, name: str) -> object:
            if name in _DATACLASS_ATTRS and "__slots__" in cls.__dict__:
                _as_dataclass(cls)
                return type.__getattribute__(cls, name)
            if name == "__match_args__" and "__slots__" in cls.__dict__:
                return cls.__dict__["__slots__"]
            raise AttributeError(f"type object {cls.__name__!r} has no attribute {name!r}")


class Report(Record, metaclass=ReportType):
    """Base of the report types: an immutable record that is also a frozen dataclass."""

    __slots__ = ()
    if TYPE_CHECKING:  # what dataclasses.fields()/asdict() look for (see ReportType)
        __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def __setattr__(self, name: str, value: object) -> None:
        from dataclasses import FrozenInstanceError  # noqa: PLC0415 - only on misuse

        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        from dataclasses import FrozenInstanceError  # noqa: PLC0415 - only on misuse

        raise FrozenInstanceError(f"cannot delete field {name!r}")

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> object:  # only for attributes not found
            if name in _DATACLASS_ATTRS:
                return getattr(type(self), name)
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class Finding(Report):
    """Something noteworthy about a file that is not a single global."""

    __slots__ = ("rule", "severity", "message", "location")  # noqa: RUF023 - field order
    rule: str  # stable id from ckptguard._scan_rules (docs/rules.md), e.g. "zip-case-variant"
    severity: Severity
    message: str
    location: str | None  # e.g. "archive/data.pkl@123" (member and byte offset)

    def __init__(
        self, rule: str, severity: Severity, message: str, location: str | None = None
    ) -> None:
        set_field(self, "rule", rule)
        set_field(self, "severity", severity)
        set_field(self, "message", message)
        set_field(self, "location", location)


class GlobalRef(Report):
    """One global a file's pickles would import, with its verdict.

    ``qualified_name`` is ``module.name``; ``file_verdict`` the file verdict it forces.
    """

    __slots__ = ("module", "name", "verdict", "reason", "count", "uses", "locations")  # noqa: RUF023
    module: str
    name: str
    verdict: Verdict
    reason: str
    count: int  # how many times the pickles reference it
    uses: tuple[Use, ...]  # sorted, distinct
    locations: tuple[str, ...]  # pickles (members) that reference it

    def __init__(  # noqa: PLR0917 - mirrors the fields
        self,
        module: str,
        name: str,
        verdict: Verdict,
        reason: str,
        count: int,
        uses: tuple[Use, ...] = (),
        locations: tuple[str, ...] = (),
    ) -> None:
        set_field(self, "module", module)
        set_field(self, "name", name)
        set_field(self, "verdict", verdict)
        set_field(self, "reason", reason)
        set_field(self, "count", count)
        set_field(self, "uses", uses)
        set_field(self, "locations", locations)

    @property
    def qualified_name(self) -> str:
        return f"{self.module}.{self.name}"

    @property
    def file_verdict(self) -> FileVerdict:
        return self.verdict.file_verdict


class FileReport(Report):
    """The scan result for one file. ``needs_allow``: the unknown globals' qualified names."""

    __slots__ = (  # noqa: RUF023 - field order
        "path", "format", "verdict", "globals", "findings", "pickles", "size", "hint",
        "bytes_read", "items",
    )  # fmt: skip
    path: str
    format: str  # "pytorch-zip", "pytorch-legacy", "torchscript", "pickle", "numpy", "numpy-npz",
    #              "safetensors", "git-lfs-pointer", "html", "text", "unknown", ...
    verdict: FileVerdict
    globals: tuple[GlobalRef, ...]
    findings: tuple[Finding, ...]
    pickles: tuple[str, ...]  # names of the pickles that were analysed
    size: int | None  # bytes on disk
    hint: str | None  # the next command to run, when the verdict is not safe
    bytes_read: int | None  # bytes fetched from remote storage (None: a local file)
    items: tuple[FileReport, ...]  # a DCP checkpoint's bytes items, each with its own verdict

    def __init__(  # noqa: PLR0917 - mirrors the fields
        self,
        path: str,
        format: str,
        verdict: FileVerdict,
        globals: tuple[GlobalRef, ...] = (),
        findings: tuple[Finding, ...] = (),
        pickles: tuple[str, ...] = (),
        size: int | None = None,
        hint: str | None = None,
        bytes_read: int | None = None,
        items: tuple[FileReport, ...] = (),
    ) -> None:
        set_field(self, "path", path)
        set_field(self, "format", format)
        set_field(self, "verdict", verdict)
        set_field(self, "globals", globals)
        set_field(self, "findings", findings)
        set_field(self, "pickles", pickles)
        set_field(self, "size", size)
        set_field(self, "hint", hint)
        set_field(self, "bytes_read", bytes_read)
        set_field(self, "items", items)

    @property
    def needs_allow(self) -> tuple[str, ...]:
        """Qualified names of the unknown globals (what `--allow` would have to list)."""
        return tuple(g.qualified_name for g in self.globals if g.verdict is Verdict.UNKNOWN)


class Skipped(Report):
    """A file met while walking a directory that was not scanned, and why."""

    __slots__ = ("path", "reason", "model_format")  # noqa: RUF023 - field order
    path: str
    reason: str  # e.g. "a text file, not a checkpoint", "an ONNX model: ckptguard does not ..."
    model_format: str | None  # a model format ckptguard does not read ("onnx", "tensorflow",
    #                           ...): makes the scan's verdict error; None for other files

    def __init__(self, path: str, reason: str, model_format: str | None = None) -> None:
        set_field(self, "path", path)
        set_field(self, "reason", reason)
        set_field(self, "model_format", model_format)


class ScanReport(Report):
    """The result of scanning one or more paths. ``verdict``: the worst file verdict, and
    ``error`` when nothing was scanned or a model file ckptguard does not read was skipped;
    ``exit_code``: 0 all safe, 1 any review/dangerous, 2 any error."""

    __slots__ = ("files", "skipped", "policy_sources", "policy_ignored")  # noqa: RUF023
    files: tuple[FileReport, ...]
    skipped: tuple[Skipped, ...]  # files met while walking directories, not scanned
    policy_sources: tuple[str, ...]  # where the policy that judged the files came from
    policy_ignored: tuple[str, ...]  # policy files found but not applied, and why

    def __init__(
        self,
        files: tuple[FileReport, ...],
        skipped: tuple[Skipped, ...] = (),
        policy_sources: tuple[str, ...] = (),
        policy_ignored: tuple[str, ...] = (),
    ) -> None:
        set_field(self, "files", files)
        set_field(self, "skipped", skipped)
        set_field(self, "policy_sources", policy_sources)
        set_field(self, "policy_ignored", policy_ignored)

    @property
    def verdict(self) -> FileVerdict:
        """The worst file verdict; ``error`` also when nothing was scanned at all, or when a
        model file of a format ckptguard does not read was skipped (it was not checked)."""
        verdicts = [f.verdict for f in self.files]
        if not self.files or any(s.model_format is not None for s in self.skipped):
            verdicts.append(FileVerdict.ERROR)
        return worst_verdict(verdicts)

    @property
    def unread_models(self) -> tuple[Skipped, ...]:
        """The skipped files that are models of a format ckptguard does not read."""
        return tuple(s for s in self.skipped if s.model_format is not None)

    @property
    def exit_code(self) -> int:
        """0 when every file is safe, 1 when any is review/dangerous, 2 when any is error (or
        nothing was scanned, or a model file of a format ckptguard does not read was skipped)."""
        return self.verdict.exit_code


# The same classes under the names the scanner's modules have used (merges of work in flight).
FindingRecord = Finding
GlobalRecord = GlobalRef
FileRecord = FileReport
SkippedRecord = Skipped
ScanRecord = ScanReport
