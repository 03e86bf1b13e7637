"""The one error hierarchy of ckptguard, and the warnings it issues.

Every exception ckptguard raises on purpose derives from :class:`Error` and is defined here (a
test checks that no other module defines a subclass). Each carries a one-line ``problem`` and
an optional ``hint`` (the next command to run); :meth:`Error.diagnostics` renders both for
people. Only the CLI prints them and chooses an exit code.

The public classes say they are ``ckptguard.X`` (``__module__``), which is how tracebacks,
``repr`` and pickles name them.
"""

from __future__ import annotations

# pickle.UnpicklingError is the C accelerator's class (pickle.py re-exports it): importing
# _pickle alone keeps pickle.py, re and struct out of the scan's start-up.
from _pickle import UnpicklingError

from ckptguard._scan_rules import DCP_METADATA
from ckptguard._verdict import REFUSED, Severity

# typing is only needed by type checkers; importing it costs start-up time (mypy honours a
# module-level TYPE_CHECKING constant).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from ckptguard._pickle._analysis import GlobalUsage
    from ckptguard._results import FileReport, Finding, GlobalRef


def _escape_lines(text: str) -> str:
    """``text`` terminal-safe, keeping the line breaks ckptguard put in it (a refusal lists one
    global per line); text taken from a file is escaped where it enters the message, so it
    carries no line break of its own."""
    from ckptguard._reporters._terminal import escape  # noqa: PLC0415

    return "\n".join(escape(line) for line in text.split("\n"))


class Error(Exception):
    """Base class of every error ckptguard raises on purpose."""

    def __init__(self, problem: str, *, hint: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.hint = hint

    def diagnostics(self) -> str:
        """A human-readable explanation: what is wrong and what to do next. Terminal-safe
        (``str(exc)`` too, so a traceback or a warning cannot carry a file's escape
        sequences): see :mod:`ckptguard._reporters._terminal`; ``problem`` and ``hint`` keep
        the exact text."""
        from ckptguard._reporters._terminal import escape  # noqa: PLC0415

        text = _escape_lines(self.problem)
        if self.hint:
            text += f"\n  hint: {escape(self.hint)}"
        return text

    def __str__(self) -> str:
        return self.diagnostics()

    def __reduce__(self) -> tuple[object, ...]:
        # Subclasses take keyword-only arguments (some required, FormatError's ``rule``) that
        # ``args`` does not hold: rebuild without calling ``__init__``, then restore the state.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[Error], args: tuple[object, ...], state: dict[str, object]) -> Error:
    exc = cls.__new__(cls, *args)
    Exception.__init__(exc, *args)
    exc.__dict__.update(state)
    return exc


class UsageError(Error):
    """The caller asked for something ckptguard cannot do (bad flag, bad argument)."""


class PolicyError(Error):
    """A policy file or allow entry is invalid (bad TOML, unknown key, malformed name)."""


class CheckpointError(Error):
    """Base of everything ckptguard raises about a checkpoint file."""

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        hint: str | None = None,
        format: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.format = format  # e.g. "git-lfs-pointer", "html", "pytorch-zip"
        super().__init__(problem, hint=hint)

    def with_path(self, path: str | Path) -> CheckpointError:
        """Return this error with ``path`` set (readers raise before they know the path)."""
        if self.path is None:
            self.path = str(path)
        return self

    def diagnostics(self) -> str:
        from ckptguard._reporters._terminal import escape  # noqa: PLC0415

        head = _escape_lines(self.problem)
        if self.path:
            head = f"{escape(self.path)}: {head}"
        if self.hint:
            head += f"\n  hint: {escape(self.hint)}"
        return head


class CorruptCheckpointError(CheckpointError, RuntimeError):
    """The file is unreadable, truncated, inconsistent, or not a checkpoint at all.

    Also a :class:`RuntimeError`, what ``torch.load`` raises for a damaged archive, so that
    handlers written for ``torch.load`` keep working after ``ckptguard code --fix``."""


class RemoteError(CheckpointError):
    """A remote object could not be read completely and exactly (missing, forbidden, timed
    out, truncated, a server that ignores range requests or lies about the size): the file's
    verdict is ``error``, never ``safe``. ``rule`` is the stable id (``remote-*``)."""

    def __init__(
        self, problem: str, *, rule: str, path: str | Path | None = None, hint: str | None = None
    ) -> None:
        super().__init__(problem, path=path, hint=hint, format="remote")
        self.rule = rule


class UnsafeCheckpointError(CheckpointError, UnpicklingError):
    """The file needs globals that the policy does not allow, or tries to run code.

    Also a :class:`pickle.UnpicklingError`, what ``torch.load(weights_only=True)`` raises for
    a global it refuses, so that handlers written for ``torch.load`` keep working.

    ``report`` is the scan report behind the refusal (a :class:`~ckptguard.FileReport`, when
    the refusal comes from a scan); ``globals`` are its refused globals (unknown or
    dangerous) and ``findings`` its findings above ``info``.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        hint: str | None = None,
        format: str | None = None,
        report: FileReport | None = None,
    ) -> None:
        super().__init__(problem, path=path, hint=hint, format=format)
        self.report = report

    @property
    def globals(self) -> tuple[GlobalRef, ...]:
        if self.report is None:
            return ()
        return tuple(g for g in self.report.globals if g.verdict in REFUSED)

    @property
    def findings(self) -> tuple[Finding, ...]:
        if self.report is None:
            return ()
        return tuple(f for f in self.report.findings if f.severity is not Severity.INFO)


class PickleError(CorruptCheckpointError):
    """The stream is malformed, truncated, or exceeds a bound: fail closed."""

    def __init__(
        self,
        problem: str,
        *,
        offset: int | None = None,
        partial: tuple[GlobalUsage, ...] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(problem, hint=hint)
        self.offset = offset
        self.partial = partial  # globals seen before the failure (still reported)
        # the failure is a bound of ckptguard's, not one of CPython's unpickler (which reads on)
        self.over_limit = False


class ConvertError(CheckpointError):
    """The checkpoint holds something that has no weights-only form: convert refuses it."""


class FormatError(CorruptCheckpointError):
    """A file the format readers refuse, with the stable id of the rule it breaks."""

    def __init__(
        self, problem: str, *, rule: str, hint: str | None = None, format: str | None = None
    ) -> None:
        super().__init__(problem, hint=hint, format=format)
        self.rule = rule


class LoadWarning(UserWarning):
    """ckptguard.load ignored an argument that would have switched the safety off."""


class RefusedLoadWarning(UserWarning):
    """A load inside the patch was refused (shown even if the caller swallows the error)."""


# What ckptguard exports shows as ckptguard.X (tracebacks, repr, pickles: `ckptguard` has
# each of these names eagerly, so a pickle finds them there).
PUBLIC = (
    Error, UsageError, PolicyError, CheckpointError, CorruptCheckpointError,
    UnsafeCheckpointError, LoadWarning, RefusedLoadWarning,
)  # fmt: skip
for _cls in PUBLIC:
    _cls.__module__ = "ckptguard"


class DcpError(FormatError):
    """A DCP checkpoint that is unreadable, inconsistent or unsupported (fail closed)."""

    def __init__(self, problem: str, *, rule: str = DCP_METADATA, hint: str | None = None):
        super().__init__(problem, rule=rule, hint=hint, format="dcp")
