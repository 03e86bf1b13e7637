"""The rules that judge a global: dangerous, safe, allowed or unknown.

Precedence, first match wins:

1. malformed names (a dot-separated part that is not an identifier) -> dangerous;
2. ``[dangerous.globals]`` exact entries and the user's ``deny`` entries -> dangerous;
3. a vetted entry of an enabled profile (exact ``module.name``) -> safe; an exact vetted
   entry is a deliberate exception to a module-wide dangerous entry
   (``copyreg._reconstructor`` in ``copyreg``);
4. the *chain* rule -> dangerous: the dotted path ``module.name`` is cut into its parts, and
   every run of consecutive parts, starting at any part, is looked up in
   ``[dangerous.modules]`` and ``[dangerous.globals]`` (a leading underscore of the first
   part ignored: ``_os`` is ``os``). So ``os.system`` being dangerous makes ``mypkg.os.system``
   dangerous however the pickle splits it (``mypkg`` + ``os.system``, ``mypkg.os`` +
   ``system``), and ``x.builtins.eval``, ``torch`` + ``serialization.os.system``,
   ``argparse`` + ``_os.remove`` too. Also dangerous: dunder parts, ``[dangerous.attributes]``
   anywhere in the name (``torch.utils.collect_env`` + ``run``), a dotted path through a
   vetted global (``pathlib`` + ``PurePath.__new__``: the vetted class is safe, its
   attributes are not vetted), and a non-ASCII name whose NFKC form is dangerous;
5. the user's allow entries -> allowed. An exact entry matches that dotted path only; a
   wildcard ``pkg.mod.*`` matches only the names ``pkg.mod`` itself defines: module exactly
   ``pkg.mod`` and one more part with no dot and no leading underscore. It never reaches into
   another module through an attribute (``pkg.mod`` + ``torch.fx.x`` is not covered);
6. everything else -> unknown.

A user allow entry that is dangerous by rules 1, 2 or 4 is refused when the policy is built,
and so is a wildcard over a namespace that is not the user's own (``_namespace``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from ckptguard._errors import PolicyError
from ckptguard._policy._data import shipped, shipped_all
from ckptguard._record import Record, set_field
from ckptguard._verdict import Verdict

ALL_PROFILES = ("torch", "numpy", "python", "omegaconf", "lightning")
_VETTED_DEPTH = 12  # more dotted parts than any vetted name has (a test checks)


def _valid(dotted: str) -> bool:
    return bool(dotted) and all(part.isidentifier() for part in dotted.split("."))


def _chain(qualified: str) -> str | None:
    """Why some run of consecutive parts of ``qualified`` names a dangerous module or global.

    Runs start at every part and are at most as long as the longest dangerous entry, so the
    work is linear in the number of parts.
    """
    data = shipped_all()
    modules = data.dangerous_modules
    globals_ = data.dangerous_globals
    parts = qualified.split(".")
    depth = data.max_depth
    for i, first in enumerate(parts):
        heads = (first, first.lstrip("_")) if first.startswith("_") else (first,)
        for head in heads:
            if not head:
                continue
            run = head
            for j in range(i, min(len(parts), i + depth)):
                if j > i:
                    run = f"{run}.{parts[j]}"
                reason = modules.get(run) or globals_.get(run)
                if reason is not None:
                    if i == 0 and head == first:
                        return f"{run}: {reason}"
                    return (
                        f"{run} (reached as {'.'.join(parts[i : j + 1])!r} inside "
                        f"{qualified!r}): {reason}"
                    )
    return None


class Entry(Record):
    """A user allow/deny entry: ``module.Name`` or ``package.*``."""

    __slots__ = ("pattern", "reason")
    pattern: str
    reason: str

    def __init__(self, pattern: str, reason: str) -> None:
        set_field(self, "pattern", pattern)
        set_field(self, "reason", reason)

    @property
    def is_wildcard(self) -> bool:
        return self.pattern.endswith(".*")

    def allows(self, module: str, name: str) -> bool:
        """An allow entry: exact dotted path, or a name the wildcard's module itself defines."""
        if self.pattern.endswith(".*"):
            return module == self.pattern[:-2] and "." not in name and not name.startswith("_")
        return f"{module}.{name}" == self.pattern

    def denies(self, qualified: str) -> bool:
        """A deny entry: exact, or (wildcard) anything at or under the package."""
        if self.pattern.endswith(".*"):
            return qualified.startswith(self.pattern[:-1])
        return qualified == self.pattern


def parse_entry(text: str, reason: str) -> Entry:
    name = text.strip()
    base = name[:-2] if name.endswith(".*") else name
    if not _valid(base) or (not name.endswith(".*") and "." not in name):
        raise PolicyError(
            f"invalid global name {text!r}: expected 'module.Name' (e.g. mypkg.utils.MyEnum) "
            "or 'package.*'"
        )
    return Entry(name, reason)


class Policy(Record):
    """Which globals are safe, allowed, unknown or dangerous. Immutable; cheap to query.

    Equal and hashed by its four fields; ``_safe`` (the enabled profiles' entries) and
    ``_cache`` (verdicts computed so far) are derived.
    """

    __slots__ = (  # noqa: RUF023 - field order
        "profiles", "allowed", "denied", "source", "sources", "ignored", "_safe", "_cache",
    )  # fmt: skip
    profiles: tuple[str, ...]
    allowed: tuple[Entry, ...]
    denied: tuple[Entry, ...]
    source: str  # where the user part came from (for messages)
    sources: tuple[str, ...]  # every source that shaped this policy, for reports
    ignored: tuple[str, ...]  # policy files found but not applied, and why (for reports)
    _safe: Mapping[str, str]
    _cache: dict[tuple[str, str], tuple[Verdict, str]]

    def __init__(  # noqa: PLR0917 - mirrors the fields
        self,
        profiles: tuple[str, ...] = ALL_PROFILES,
        allowed: tuple[Entry, ...] = (),
        denied: tuple[Entry, ...] = (),
        source: str = "defaults",
        sources: tuple[str, ...] | None = None,
        ignored: tuple[str, ...] = (),
    ) -> None:
        data = shipped()
        unknown = [p for p in profiles if p not in data.profiles]
        if unknown:
            raise PolicyError(
                f"unknown profile(s) {', '.join(unknown)}: choose from "
                f"{', '.join(sorted(data.profiles))}"
            )
        safe: dict[str, str] = {}
        for p in profiles:
            safe.update({k: f"{v} [profile {p}]" for k, v in data.profiles[p].items()})
        set_field(self, "profiles", tuple(profiles))
        set_field(self, "allowed", tuple(allowed))
        set_field(self, "denied", tuple(denied))
        set_field(self, "source", source)
        if sources is None:
            sources = (f"shipped profiles: {', '.join(profiles)}",)
            if source != "defaults":
                sources += (source,)
        set_field(self, "sources", tuple(sources))
        set_field(self, "ignored", tuple(ignored))
        set_field(self, "_safe", safe)
        set_field(self, "_cache", {})
        for entry in self.allowed:
            self._check_allow(entry)

    def _check_allow(self, entry: Entry) -> None:
        base = entry.pattern.removesuffix(".*")
        last = None if entry.is_wildcard else base.rpartition(".")[2]
        verdict, reason = self._dangerous(base, last)
        if verdict is not None:
            raise PolicyError(
                f"{entry.pattern} cannot be allowed: {reason}. ckptguard never allows "
                "dangerous globals; if the file needs it, do not load it"
            )
        if entry.is_wildcard:
            from ckptguard._policy._namespace import foreign_namespace  # noqa: PLC0415

            why = foreign_namespace(base)
            if why is not None:
                raise PolicyError(
                    f"allow entry {entry.pattern!r} ({entry.reason}) is refused: {why}, and a "
                    "wildcard may only cover your own package's modules. List the exact names "
                    "the file needs instead (ckptguard scan FILE prints them, e.g. "
                    f"--allow {base}.SomeClass), or convert the file once: "
                    "ckptguard convert FILE OUT.pt"
                )

    def _fields(self) -> tuple[object, ...]:
        return (
            self.profiles, self.allowed, self.denied, self.source, self.sources, self.ignored
        )  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"Policy(profiles={self.profiles!r}, allowed={self.allowed!r}, "
            f"denied={self.denied!r}, source={self.source!r}, sources={self.sources!r}, "
            f"ignored={self.ignored!r})"
        )

    def __reduce__(self) -> tuple[object, ...]:  # rebuilt (and re-validated) in a worker
        return (Policy, self._fields())

    # ------------------------------------------------------------------ queries
    def classify(self, module: str, name: str) -> tuple[Verdict, str]:
        """The verdict on the global ``module.name`` and a one-line reason."""
        key = (module, name)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._classify(module, name)
            if len(self._cache) < 100_000:
                self._cache[key] = hit
        return hit

    def _classify(self, module: str, name: str) -> tuple[Verdict, str]:
        qualified = f"{module}.{name}"
        if not (_valid(module) and _valid(name)):
            return Verdict.DANGEROUS, (
                f"malformed global name {qualified!r}: not what a pickler writes (odd "
                "characters, whitespace or empty parts)"
            )
        data = shipped()
        reason = data.dangerous_globals.get(qualified)
        if reason is not None:
            return Verdict.DANGEROUS, reason
        for entry in self.denied:
            if entry.denies(qualified):
                return Verdict.DANGEROUS, f"denied by policy ({entry.reason})"
        reason = self._safe.get(qualified)
        if reason is not None:
            return Verdict.SAFE, reason
        verdict, reason2 = self._dangerous(qualified, name)
        if verdict is not None:
            return verdict, reason2
        parts = name.split(".")
        owner = module
        # Vetted names have a few dotted parts at most: looking further is wasted (and would
        # be quadratic in a name of a million parts).
        for i in range(1, min(len(parts), _VETTED_DEPTH)):
            owner = f"{owner}.{parts[i - 1]}"
            if owner in self._safe:
                return Verdict.DANGEROUS, (
                    f"attribute {'.'.join(parts[i:])!r} of the vetted global {owner}: only the "
                    "global itself is vetted, not what can be reached through it"
                )
        for entry in self.allowed:
            if entry.allows(module, name):
                return Verdict.ALLOWED, entry.reason
        return Verdict.UNKNOWN, (
            "not in ckptguard's vetted profiles: importing and rebuilding it runs its code"
        )

    def _dangerous(self, qualified: str, name: str | None = None) -> tuple[Verdict | None, str]:
        hit = _chain(qualified)
        if hit is None and not qualified.isascii():
            import unicodedata  # noqa: PLC0415 - only for non-ASCII names

            folded = unicodedata.normalize("NFKC", qualified)
            if folded != qualified and _chain(folded) is not None:
                return Verdict.DANGEROUS, (
                    f"{qualified!r} spells the dangerous name {folded!r} under Unicode "
                    "normalization"
                )
        if hit is not None:
            return Verdict.DANGEROUS, hit
        if name is None:
            return None, ""
        data = shipped()
        parts = name.split(".")
        for i, part in enumerate(parts):
            if part.startswith("__") and part.endswith("__") and len(part) > 4:
                return Verdict.DANGEROUS, (
                    f"dunder name {part!r}: reaches interpreter internals (import hooks, "
                    "namespaces, class machinery)"
                )
            reason = data.dangerous_attributes.get(part)
            if reason is not None:
                where = "attribute traversal through" if i < len(parts) - 1 else "a global named"
                return Verdict.DANGEROUS, f"{where} {part!r}: {reason}"
        return None, ""

    # ------------------------------------------------------------------ building
    def with_allowed(
        self, names: Iterable[str], *, reason: str = "allowed by the user", origin: str = ""
    ) -> Policy:
        return self._with_entries(names, reason, origin, deny=False)

    def with_denied(
        self, names: Iterable[str], *, reason: str = "denied by the user", origin: str = ""
    ) -> Policy:
        return self._with_entries(names, reason, origin, deny=True)

    def _with_entries(
        self, names: Iterable[str], reason: str, origin: str, *, deny: bool
    ) -> Policy:
        extra = tuple(parse_entry(n, reason) for n in names)
        if not extra:
            return self
        label = f"{origin or reason}: {', '.join(e.pattern for e in extra)}"
        allowed, denied = (
            (self.allowed, self.denied + extra) if deny else (self.allowed + extra, self.denied)
        )
        return Policy(
            self.profiles, allowed, denied, self.source, (*self.sources, label), self.ignored
        )

    def with_ignored(self, notes: Iterable[str]) -> Policy:
        """The same policy, recording policy files that were found but not applied."""
        notes = tuple(notes)
        if not notes:
            return self
        return Policy(
            self.profiles, self.allowed, self.denied, self.source, self.sources,
            self.ignored + notes,
        )  # fmt: skip


# What every public function takes as ``policy=`` (scan, load, convert, inspect, patched,
# install): a policy file or a pyproject.toml, a Policy, or None for the default policy
# (see resolve_policy).
PolicyArg = str | os.PathLike[str] | Policy | None


_DEFAULT: Policy | None = None


def default_policy() -> Policy:
    """The shipped policy: every profile, nothing allowed beyond it."""
    global _DEFAULT  # noqa: PLW0603 - a process-wide cache of an immutable value
    if _DEFAULT is None:
        _DEFAULT = Policy()
    return _DEFAULT
