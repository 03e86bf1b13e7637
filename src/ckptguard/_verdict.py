"""Verdicts, severities and uses: the enums every layer shares (no dataclasses, no typing).

Kept apart from the report types (:mod:`ckptguard._results`) so that every layer (the policy,
the readers) can use them without the report.
"""

from __future__ import annotations

import enum


class Verdict(str, enum.Enum):
    """Verdict on one global."""

    SAFE = "safe"  # in a shipped, vetted profile
    ALLOWED = "allowed"  # allowed by the user (flag, policy file, pyproject)
    UNKNOWN = "unknown"  # neither vetted nor allowed: needs review
    DANGEROUS = "dangerous"  # a code-execution/import/file/process/network primitive

    def __str__(self) -> str:
        return self.value

    @property
    def file_verdict(self) -> FileVerdict:
        """The file verdict a global with this verdict forces."""
        return _GLOBAL_TO_FILE[self]


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

    @property
    def exit_code(self) -> int:
        """0 for safe, 1 for review/dangerous, 2 for error (the CLI's exit status)."""
        return _EXIT_CODE[self]


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


class Use(str, enum.Enum):
    """How a pickle uses a global."""

    CALL = "call"  # called: REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ
    BUILD = "build"  # an object it made is given state with BUILD (__setstate__)
    REFERENCE = "reference"  # only pushed (an argument, a persistent id, a dict value, ...)

    def __str__(self) -> str:
        return self.value


# What a load refuses: every global that is neither vetted nor allowed.
REFUSED = (Verdict.UNKNOWN, Verdict.DANGEROUS)

_FILE_RANK = {
    FileVerdict.SAFE: 0,
    FileVerdict.REVIEW: 1,
    FileVerdict.DANGEROUS: 2,
    FileVerdict.ERROR: 3,
}

_EXIT_CODE = {
    FileVerdict.SAFE: 0,
    FileVerdict.REVIEW: 1,
    FileVerdict.DANGEROUS: 1,
    FileVerdict.ERROR: 2,
}

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


def worst_verdict(verdicts: list[FileVerdict] | tuple[FileVerdict, ...]) -> FileVerdict:
    worst = FileVerdict.SAFE
    for v in verdicts:
        if v.rank > worst.rank:
            worst = v
    return worst
