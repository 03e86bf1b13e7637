"""What the scanner produces: slotted, immutable records (cheap to import and to create).

The public report model (:mod:`ckptguard._model`: frozen dataclasses) is built from these
records by ``ckptguard.scan()`` and wherever a report leaves the library (errors, results);
the scanner, the CLI and the reporters work on the records, so that a ``ckptguard scan`` process
never imports :mod:`dataclasses` (start-up time is what the CLI is measured on). Each record has
exactly the fields of its public counterpart (a test keeps them in step), and both share their
derived properties through the ``*View`` mixins below.
"""

from __future__ import annotations

from ckptguard._record import Record, set_field
from ckptguard._verdict import FileVerdict, Severity, Use, Verdict, worst_verdict


class GlobalView:
    """Derived properties of a global (shared by :class:`GlobalRecord` and ``GlobalRef``)."""

    __slots__ = ()
    module: str
    name: str
    verdict: Verdict

    @property
    def qualified_name(self) -> str:
        return f"{self.module}.{self.name}"

    @property
    def file_verdict(self) -> FileVerdict:
        return self.verdict.file_verdict


class FileView:
    """Derived properties of a file's result (shared by :class:`FileRecord` and ``FileReport``)."""

    __slots__ = ()
    verdict: FileVerdict
    globals: tuple[GlobalView, ...]

    @property
    def needs_allow(self) -> tuple[str, ...]:
        """Qualified names of the unknown globals (what `--allow` would have to list)."""
        return tuple(g.qualified_name for g in self.globals if g.verdict is Verdict.UNKNOWN)


class SkippedView:
    """What a not-scanned file carries (shared by :class:`SkippedRecord` and ``Skipped``)."""

    __slots__ = ()
    path: str
    reason: str
    model_format: str | None


class ScanView:
    """Derived properties of a scan (shared by :class:`ScanRecord` and ``ScanReport``)."""

    __slots__ = ()
    files: tuple[FileView, ...]
    skipped: tuple[SkippedView, ...]

    @property
    def verdict(self) -> FileVerdict:
        """The worst file verdict; ``error`` also when nothing was scanned at all, or when a
        model file of a format ckptguard does not read was skipped (it was not checked)."""
        verdicts = [f.verdict for f in self.files]
        if not self.files or any(s.model_format is not None for s in self.skipped):
            verdicts.append(FileVerdict.ERROR)
        return worst_verdict(verdicts)

    @property
    def unread_models(self) -> tuple[SkippedView, ...]:
        """The skipped files that are models of a format ckptguard does not read."""
        return tuple(s for s in self.skipped if s.model_format is not None)

    @property
    def exit_code(self) -> int:
        """0 when every file is safe, 1 when any is review/dangerous, 2 when any is error (or
        nothing was scanned, or a model file of a format ckptguard does not read was skipped)."""
        return self.verdict.exit_code


class FindingRecord(Record):
    """Something noteworthy about a file that is not a single global."""

    __slots__ = ("rule", "severity", "message", "location")  # noqa: RUF023 - field order
    rule: str  # stable id, e.g. "zip-duplicate-member", "pickle-truncated"
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


class GlobalRecord(Record, GlobalView):
    """One global a file's pickles would import, with its verdict."""

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


class FileRecord(Record, FileView):
    """The scan result for one file."""

    __slots__ = (  # noqa: RUF023 - field order
        "path", "format", "verdict", "globals", "findings", "pickles", "size", "hint", "items",
    )  # fmt: skip
    path: str
    format: str  # see ckptguard._formats.FORMATS, or "git-lfs-pointer", "html", "unknown", ...
    verdict: FileVerdict
    globals: tuple[GlobalRecord, ...]
    findings: tuple[FindingRecord, ...]
    pickles: tuple[str, ...]  # names of the pickles that were analysed
    size: int | None  # bytes on disk
    hint: str | None  # the next command to run, when the verdict is not safe
    items: tuple[FileRecord, ...]  # a DCP checkpoint's bytes items, each with its own verdict

    def __init__(  # noqa: PLR0917 - mirrors the fields
        self,
        path: str,
        format: str,
        verdict: FileVerdict,
        globals: tuple[GlobalRecord, ...] = (),
        findings: tuple[FindingRecord, ...] = (),
        pickles: tuple[str, ...] = (),
        size: int | None = None,
        hint: str | None = None,
        items: tuple[FileRecord, ...] = (),
    ) -> None:
        set_field(self, "path", path)
        set_field(self, "format", format)
        set_field(self, "verdict", verdict)
        set_field(self, "globals", globals)
        set_field(self, "findings", findings)
        set_field(self, "pickles", pickles)
        set_field(self, "size", size)
        set_field(self, "hint", hint)
        set_field(self, "items", items)


class SkippedRecord(Record, SkippedView):
    """A file met while walking a directory that was not scanned, and why."""

    __slots__ = ("path", "reason", "model_format")  # noqa: RUF023 - field order
    path: str
    reason: str  # e.g. "a text file, not a checkpoint", "an ONNX model: ckptguard does not ..."
    model_format: str | None  # a model format ckptguard does not read ("onnx", ...): makes the
    #                           scan's verdict error; None for files that are not models

    def __init__(self, path: str, reason: str, model_format: str | None = None) -> None:
        set_field(self, "path", path)
        set_field(self, "reason", reason)
        set_field(self, "model_format", model_format)


class ScanRecord(Record, ScanView):
    """The result of scanning one or more paths."""

    __slots__ = ("files", "skipped", "policy_sources", "policy_ignored")  # noqa: RUF023
    files: tuple[FileRecord, ...]
    skipped: tuple[SkippedRecord, ...]  # files met while walking directories, not scanned
    policy_sources: tuple[str, ...]  # where the policy that judged the files came from
    policy_ignored: tuple[str, ...]  # policy files found but not applied, and why

    def __init__(
        self,
        files: tuple[FileRecord, ...],
        skipped: tuple[SkippedRecord, ...] = (),
        policy_sources: tuple[str, ...] = (),
        policy_ignored: tuple[str, ...] = (),
    ) -> None:
        set_field(self, "files", files)
        set_field(self, "skipped", skipped)
        set_field(self, "policy_sources", policy_sources)
        set_field(self, "policy_ignored", policy_ignored)
