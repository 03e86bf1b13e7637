"""Human reporter: per file what it is, its verdict, what is wrong, and the exact next step."""

from __future__ import annotations

import os
import shlex

from ckptguard._advice import referenced_only
from ckptguard._formats._torchscript import only_torchscript
from ckptguard._reporters._common import VERDICT_ORDER, summary
from ckptguard._reporters._terminal import escape, lines_to_text, style
from ckptguard._results import FileRecord, FindingRecord, GlobalRecord, ScanRecord
from ckptguard._verdict import FileVerdict, Severity, Verdict

TYPE_CHECKING = False  # typing is only for type checkers (start-up time)
if TYPE_CHECKING:
    from typing import TextIO

_INDENT = "  "
_LABEL_WIDTH = 10  # "dangerous" + 1


def use_color(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _Painter:
    """Styles text when colour is on (markers that only the output layer turns into colour
    codes: see :mod:`ckptguard._reporters._terminal`)."""

    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, name: str) -> str:
        return style(text, name) if self.color else text

    def label(self, word: str, *, upper: bool = False) -> str:
        text = word.upper() if upper else word
        padded = text.ljust(_LABEL_WIDTH)
        return self(text, word) + padded[len(text) :]


def format_size(size: int | None) -> str | None:
    if size is None:
        return None
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return None  # pragma: no cover


def clean(text: str) -> str:
    """Escape what a terminal would act on. Not needed inside :func:`render`'s lines (they are
    all escaped when they become text); kept for callers that build text of their own."""
    return escape(text)


def _quote(text: str) -> str:
    return shlex.quote(text)


def render(
    report: ScanRecord, *, verbose: bool = False, quiet: bool = False, color: bool = False
) -> str:
    """The whole human report, ending with a newline (empty when quiet and all is safe).

    Built as lines; :func:`~ckptguard._reporters._terminal.lines_to_text` escapes whatever came
    from a file (names, keys, paths, messages), so nothing here calls an escape of its own."""
    paint = _Painter(color)
    lines: list[str] = []
    # Several files that need classes allowed: one combined --allow list at the end instead
    # of the same four-line hint under each file.
    needing = [f for f in report.files if f.verdict is FileVerdict.REVIEW and f.needs_allow]
    combine = len(needing) > 1
    for f in report.files:
        if quiet and f.verdict is FileVerdict.SAFE:
            continue
        lines.extend(render_file(f, verbose=verbose, paint=paint, combined=combine))
    if combine:
        lines.extend(_combined_next_step(needing, paint))
    unread = report.unread_models
    if unread:  # always shown: these make the scan an error
        lines.append(paint("not scanned (model formats ckptguard does not read):", "error"))
        lines.extend(f"{_INDENT}{clean(s.path)}: {clean(s.reason)}" for s in unread)
    others = [s for s in report.skipped if s.model_format is None]
    if verbose and others:
        lines.append(paint("skipped (not checkpoints):", "dim"))
        lines.extend(paint(f"{_INDENT}{clean(s.path)}: {clean(s.reason)}", "dim") for s in others)
    if not quiet:
        if lines:
            lines.append("")
        lines.extend(policy_lines(report, paint=paint))
        lines.append(summary_line(report, paint=paint))
    elif lines:
        lines.extend(policy_lines(report, paint=paint))
    return lines_to_text(lines)


def policy_lines(report: ScanRecord, *, paint: _Painter | None = None) -> list[str]:
    """Which policy judged the files, and which policy files were found but not applied."""
    paint = paint or _Painter(False)
    lines = []
    if report.policy_sources:
        lines.append(paint(clean(f"policy: {'; '.join(report.policy_sources)}"), "dim"))
    lines.extend(
        paint(clean(f"policy ignored: {note}"), "warning") for note in report.policy_ignored
    )
    return lines


def _bytes_read(report: ScanRecord) -> str:
    """' (X read of Y scanned)' when files were read remotely (by byte ranges)."""
    remote = [f for f in report.files if f.bytes_read is not None]
    if not remote:
        return ""
    read = sum(f.bytes_read or 0 for f in remote)
    size = sum(f.size or 0 for f in report.files)
    return f" ({format_size(read)} read of {format_size(size)} scanned)"


def summary_line(report: ScanRecord, *, paint: _Painter | None = None) -> str:
    paint = paint or _Painter(False)
    counts = summary(report)
    n = counts["files"]
    if n == 0:
        head = paint("no checkpoint files found: nothing was scanned (error)", "error")
    else:
        parts = [
            paint(f"{counts[v.value]} {v.value}", v.value) for v in VERDICT_ORDER if counts[v.value]
        ]
        head = f"{n} file{'s' if n != 1 else ''} scanned: " + ", ".join(parts)
    head += _bytes_read(report)
    others = counts["skipped"] - counts["unread_models"]
    if others:
        head += f"; {others} skipped (not checkpoints)"
    if counts["unread_models"]:
        head += "; " + paint(
            f"{counts['unread_models']} model file{'s' if counts['unread_models'] != 1 else ''} "
            "not scanned (format not read: error)",
            "error",
        )
    return head


def render_file(
    f: FileRecord,
    *,
    verbose: bool = False,
    paint: _Painter | None = None,
    combined: bool = False,
) -> list[str]:
    paint = paint or _Painter(False)
    details = [f.format]
    size = format_size(f.size)
    if size:
        details.append(size)
    lines = [
        f"{paint.label(f.verdict.value, upper=True)} {paint(f.path, 'bold')}  "
        + paint(f"({', '.join(details)})", "dim")
    ]
    if verbose and f.pickles:
        lines.append(paint(f"{_INDENT}pickles: {', '.join(f.pickles)}", "dim"))
    for g in f.globals:
        if verbose or g.verdict in (Verdict.UNKNOWN, Verdict.DANGEROUS):
            lines.append(_global_line(g, paint))
    for x in f.findings:
        if verbose or x.severity is not Severity.INFO:
            lines.append(_finding_line(x, paint))
    for i in f.items:  # a DCP checkpoint's bytes items, each with its own verdict
        if verbose or i.verdict is not FileVerdict.SAFE:
            lines.extend(
                f"{_INDENT}{line}" for line in render_file(i, verbose=verbose, paint=paint)
            )
    if combined and f.verdict is FileVerdict.REVIEW and f.needs_allow:
        lines.append(f"{_INDENT}{paint('next:', 'bold')} see the combined --allow list below")
    else:
        lines.extend(_next_step(f, paint))
    return lines


def _combined_next_step(files: list[FileRecord], paint: _Painter) -> list[str]:
    """One hint for every file that needs classes allowed: the union of the names."""
    names = sorted({n for f in files for n in f.needs_allow})
    flags = " ".join(f"--allow {_quote(n)}" for n in names)
    where = _common_dir([f.path for f in files])
    pad = _INDENT * 3
    return [
        "",
        f"{paint('next:', 'bold')} {len(files)} files need {len(names)} "
        f"class{'es' if len(names) != 1 else ''} allowed; if you trust "
        + ("it" if len(names) == 1 else "them")
        + ":",
        f"{pad}ckptguard scan {_quote(where)} {flags}",
        f"{pad}Python: ckptguard.load(path, allow={names!r})",
        f"{pad}third-party code: ckptguard run {flags} SCRIPT.py",
        f"lasting fix: ckptguard convert --in-place {_quote(where)} "
        "(re-saves them so that plain torch.load works)",
        f"{pad}trade-off: convert stores these classes as plain data (an Enum as its value, an "
        "object as a dict); to get the objects back, load with restore_types=True",
    ]


def _common_dir(paths: list[str]) -> str:
    try:
        common = os.path.commonpath([os.path.dirname(p) or "." for p in paths])
    except ValueError:  # absolute and relative paths mixed
        return "."
    return common or "."


def _global_line(g: GlobalRecord, paint: _Painter) -> str:
    uses = ", ".join(u.value for u in g.uses)
    usage = f"{g.count}x" + (f" {uses}" if uses else "")
    text = f"{_INDENT}{paint.label(g.verdict.value)} {g.qualified_name}  [{usage}]"
    if g.reason:
        text += f": {g.reason}"
    return text


def _finding_line(x: FindingRecord, paint: _Painter) -> str:
    text = f"{_INDENT}{paint.label(x.severity.value)} {x.rule}: {x.message}"
    if x.location:
        text += paint(f"  (at {x.location})", "dim")
    return text


def _these(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"these {len(names)} classes"


def _next_step(f: FileRecord, paint: _Painter) -> list[str]:
    step = paint("next:", "bold")
    pad = _INDENT * 3
    if f.verdict is FileVerdict.DANGEROUS and f.hint and only_torchscript(f.globals, f.findings):
        return [f"{_INDENT}{step} {f.hint}"]  # TorchScript: the same advice for every archive
    referenced = referenced_only(f.globals, f.findings)
    if f.verdict is FileVerdict.DANGEROUS and referenced:  # values the file never calls
        them = "them" if len(referenced) > 1 else "it"
        return [
            f"{_INDENT}{step} "
            + paint(
                f"this file references {', '.join(referenced)} as "
                f"{'values' if len(referenced) > 1 else 'a value'} (not called by the file "
                f"itself; loading imports {them} and hands {them} to your code): do not load it",
                "dangerous",
            ),
            f"{pad}(it cannot be allowed; if you made it yourself, re-save it without {them})",
        ]
    if f.verdict is FileVerdict.DANGEROUS:
        names = [g.qualified_name for g in f.globals if g.verdict is Verdict.DANGEROUS]
        what = "run code" + (f" / import {', '.join(names)}" if names else "")
        return [
            f"{_INDENT}{step} " + paint(f"this file tries to {what}: do not load it", "dangerous"),
            f"{pad}(it cannot be allowed; if you made it yourself, re-save it from a trusted "
            "environment)",
        ]
    if f.verdict is FileVerdict.REVIEW:
        unknown = list(f.needs_allow)
        if not unknown:
            hint = f.hint or "review the findings above before loading it"
            return [f"{_INDENT}{step} {hint}"]
        flags = " ".join(f"--allow {_quote(n)}" for n in unknown)
        return [
            f"{_INDENT}{step} if you trust "
            + ("this class" if len(unknown) == 1 else "these classes")
            + ", allow "
            + ("it" if len(unknown) == 1 else "them")
            + ":",
            f"{pad}ckptguard scan {_quote(f.path)} {flags}",
            f"{pad}Python: ckptguard.load(path, allow={unknown!r})",
            f"{_INDENT}lasting fix: ckptguard convert {_quote(f.path)} OUT.pt "
            "(re-saves it so that plain torch.load works)",
            f"{pad}trade-off: convert stores {_these(unknown)} as plain data (an Enum as its "
            "value, an object as a dict); to get the objects back, load OUT.pt with "
            "restore_types=True",
        ]
    if f.verdict is FileVerdict.ERROR and f.hint:
        return [f"{_INDENT}{paint('hint:', 'bold')} {f.hint}"]
    return []
