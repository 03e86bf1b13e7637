"""Report objects: what a scan found, as frozen dataclasses.

These are the library's return values and the input of every reporter (human, JSON, SARIF).
Field names used in the JSON output are part of the public contract.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Verdict(str, enum.Enum):
    """Verdict on one global."""

    SAFE = "safe"  # in a shipped, vetted profile
    ALLOWED = "allowed"  # allowed by the user (flag, policy file, pyproject)
    UNKNOWN = "unknown"  # neither vetted nor allowed: needs review
    DANGEROUS = "dangerous"  # a code-execution/import/file/process/network primitive

    def __str__(self) -> str:
        return self.value


class FileVerdict(str, enum.Enum):
    """Verdict on a whole file: the worst of its globals and findings."""

    SAFE = "safe"
    REVIEW = "review"
    DANGEROUS = "dangerous"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value

    @property
    def rank(self) -> int:
        return _FILE_RANK[self]


_FILE_RANK = {
    FileVerdict.SAFE: 0,
    FileVerdict.REVIEW: 1,
    FileVerdict.DANGEROUS: 2,
    FileVerdict.ERROR: 3,
}


class Severity(str, enum.Enum):
    """Severity of a finding; maps onto the file verdict it forces."""

    INFO = "info"  # no effect on the verdict
    WARNING = "warning"  # file is at least `review`
    DANGEROUS = "dangerous"  # file is at least `dangerous`
    ERROR = "error"  # file is `error`

    def __str__(self) -> str:
        return self.value

    @property
    def file_verdict(self) -> FileVerdict:
        return _SEVERITY_TO_FILE[self]


_SEVERITY_TO_FILE = {
    Severity.INFO: FileVerdict.SAFE,
    Severity.WARNING: FileVerdict.REVIEW,
    Severity.DANGEROUS: FileVerdict.DANGEROUS,
    Severity.ERROR: FileVerdict.ERROR,
}

_GLOBAL_TO_FILE = {
    Verdict.SAFE: FileVerdict.SAFE,
    Verdict.ALLOWED: FileVerdict.SAFE,
    Verdict.UNKNOWN: FileVerdict.REVIEW,
    Verdict.DANGEROUS: FileVerdict.DANGEROUS,
}


class Use(str, enum.Enum):
    """How a pickle uses a global."""

    CALL = "call"  # called: REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ
    BUILD = "build"  # an object it made is given state with BUILD (__setstate__)
    REFERENCE = "reference"  # only pushed (an argument, a persistent id, a dict value, ...)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Finding:
    """Something noteworthy about a file that is not a single global."""

    rule: str  # stable id, e.g. "zip-duplicate-member", "pickle-truncated"
    severity: Severity
    message: str
    location: str | None = None  # e.g. "archive/data.pkl@123" (member and byte offset)


@dataclass(frozen=True)
class GlobalRef:
    """One global a file's pickles would import, with its verdict."""

    module: str
    name: str
    verdict: Verdict
    reason: str
    count: int  # how many times the pickles reference it
    uses: tuple[Use, ...] = ()  # sorted, distinct
    locations: tuple[str, ...] = ()  # pickles (members) that reference it

    @property
    def qualified_name(self) -> str:
        return f"{self.module}.{self.name}"

    @property
    def file_verdict(self) -> FileVerdict:
        return _GLOBAL_TO_FILE[self.verdict]


@dataclass(frozen=True)
class FileReport:
    """The scan result for one file."""

    path: str
    format: str  # "pytorch-zip", "pytorch-legacy", "torchscript", "pickle", "numpy", "numpy-npz",
    #              "safetensors", "git-lfs-pointer", "html", "text", "unknown", ...
    verdict: FileVerdict
    globals: tuple[GlobalRef, ...] = ()
    findings: tuple[Finding, ...] = ()
    pickles: tuple[str, ...] = ()  # names of the pickles that were analysed
    size: int | None = None  # bytes on disk
    hint: str | None = None  # the next command to run, when the verdict is not safe

    @property
    def needs_allow(self) -> tuple[str, ...]:
        """Qualified names of the unknown globals (what `--allow` would have to list)."""
        return tuple(g.qualified_name for g in self.globals if g.verdict is Verdict.UNKNOWN)


@dataclass(frozen=True)
class ScanReport:
    """The result of scanning one or more paths."""

    files: tuple[FileReport, ...]
    skipped: tuple[str, ...] = field(default=())  # files met while walking directories that
    #                                              are not checkpoints (README.md, ...)

    @property
    def verdict(self) -> FileVerdict:
        worst = FileVerdict.SAFE
        for f in self.files:
            if f.verdict.rank > worst.rank:
                worst = f.verdict
        return worst

    @property
    def exit_code(self) -> int:
        """0 when every file is safe, 1 when any is review/dangerous, 2 when any is error."""
        v = self.verdict
        if v is FileVerdict.ERROR:
            return 2
        if v is FileVerdict.SAFE:
            return 0
        return 1


def worst_verdict(verdicts: list[FileVerdict] | tuple[FileVerdict, ...]) -> FileVerdict:
    worst = FileVerdict.SAFE
    for v in verdicts:
        if v.rank > worst.rank:
            worst = v
    return worst
