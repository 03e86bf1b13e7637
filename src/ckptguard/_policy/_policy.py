"""The rules that judge a global: dangerous, safe, allowed or unknown.

Precedence, first match wins:

1. malformed names (a dot-separated part that is not an identifier) -> dangerous;
2. ``[dangerous.globals]`` exact entries and the user's ``deny`` entries -> dangerous;
3. a vetted entry of an enabled profile (exact ``module.name``) -> safe; an exact vetted
   entry is a deliberate exception to a module-wide dangerous entry
   (``copyreg._reconstructor`` in ``copyreg``);
4. ``[dangerous.modules]`` (the module or any package above it, also when reached through a
   dotted attribute path such as ``torch`` + ``serialization.os.system``), dunder names and
   dunder parts of a dotted name, ``[dangerous.attributes]`` anywhere in the name
   (``torch.utils.collect_env`` + ``run``), a dotted path through a module alias
   (``argparse`` + ``_os.remove``) and a dotted path through a vetted global
   (``pathlib`` + ``PurePath.__new__``, ``torch.storage`` + ``UntypedStorage.from_file``: the
   vetted class is safe, its methods are not vetted) -> dangerous;
5. the user's allow entries (exact, or ``package.*``) -> allowed;
6. everything else -> unknown.

A user allow entry that is dangerous by rules 1, 2 or 4 is refused when the policy is built.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ckptguard._errors import PolicyError
from ckptguard._policy._data import shipped
from ckptguard._record import Record, set_field
from ckptguard._verdict import Verdict

ALL_PROFILES = ("torch", "numpy", "python", "omegaconf", "lightning")


def _valid(dotted: str) -> bool:
    return bool(dotted) and all(part.isidentifier() for part in dotted.split("."))


def _prefixes(dotted: str) -> Iterable[str]:
    parts = dotted.split(".")
    for i in range(1, len(parts) + 1):
        yield ".".join(parts[:i])


class Entry(Record):
    """A user allow/deny entry: ``module.Name`` or ``package.*``."""

    __slots__ = ("pattern", "reason")
    pattern: str
    reason: str

    def __init__(self, pattern: str, reason: str) -> None:
        set_field(self, "pattern", pattern)
        set_field(self, "reason", reason)

    def matches(self, qualified: str) -> bool:
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

    __slots__ = ("profiles", "allowed", "denied", "source", "_safe", "_cache")  # noqa: RUF023
    profiles: tuple[str, ...]
    allowed: tuple[Entry, ...]
    denied: tuple[Entry, ...]
    source: str  # where the user part came from (for messages)
    _safe: Mapping[str, str]
    _cache: dict[tuple[str, str], tuple[Verdict, str]]

    def __init__(
        self,
        profiles: tuple[str, ...] = ALL_PROFILES,
        allowed: tuple[Entry, ...] = (),
        denied: tuple[Entry, ...] = (),
        source: str = "defaults",
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
        set_field(self, "_safe", safe)
        set_field(self, "_cache", {})
        for entry in self.allowed:
            base = entry.pattern.removesuffix(".*")
            last = None if entry.pattern.endswith(".*") else base.rpartition(".")[2]
            verdict, reason = self._dangerous(base, last)
            if verdict is not None:
                raise PolicyError(
                    f"{entry.pattern} cannot be allowed: {reason}. ckptguard never allows "
                    "dangerous globals; if the file needs it, do not load it"
                )

    def _fields(self) -> tuple[object, ...]:
        return (self.profiles, self.allowed, self.denied, self.source)

    def __repr__(self) -> str:
        return (
            f"Policy(profiles={self.profiles!r}, allowed={self.allowed!r}, "
            f"denied={self.denied!r}, source={self.source!r})"
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
            if entry.matches(qualified):
                return Verdict.DANGEROUS, f"denied by policy ({entry.reason})"
        reason = self._safe.get(qualified)
        if reason is not None:
            return Verdict.SAFE, reason
        verdict, reason2 = self._dangerous(qualified, name)
        if verdict is not None:
            return verdict, reason2
        parts = name.split(".")
        for i in range(1, len(parts)):
            owner = f"{module}.{'.'.join(parts[:i])}"
            if owner in self._safe:
                return Verdict.DANGEROUS, (
                    f"attribute {'.'.join(parts[i:])!r} of the vetted global {owner}: only the "
                    "global itself is vetted, not what can be reached through it"
                )
        for entry in self.allowed:
            if entry.matches(qualified):
                return Verdict.ALLOWED, entry.reason
        return Verdict.UNKNOWN, (
            "not in ckptguard's vetted profiles: importing and rebuilding it runs its code"
        )

    def _dangerous(self, qualified: str, name: str | None = None) -> tuple[Verdict | None, str]:
        data = shipped()
        for prefix in _prefixes(qualified):
            reason = data.dangerous_modules.get(prefix) or data.dangerous_globals.get(prefix)
            if reason is not None:
                return Verdict.DANGEROUS, f"{prefix}: {reason}"
        if name is None:
            return None, ""
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
            if i < len(parts) - 1:  # an attribute that is itself a module, e.g. argparse._os
                alias = part.lstrip("_")
                reason = data.dangerous_modules.get(alias)
                if reason is not None:
                    return Verdict.DANGEROUS, (
                        f"attribute traversal through {part!r} (the {alias} module): {reason}"
                    )
        return None, ""

    # ------------------------------------------------------------------ building
    def with_allowed(self, names: Iterable[str], *, reason: str = "allowed by the user") -> Policy:
        extra = tuple(parse_entry(n, reason) for n in names)
        if not extra:
            return self
        return Policy(self.profiles, self.allowed + extra, self.denied, self.source)

    def with_denied(self, names: Iterable[str], *, reason: str = "denied by the user") -> Policy:
        extra = tuple(parse_entry(n, reason) for n in names)
        if not extra:
            return self
        return Policy(self.profiles, self.allowed, self.denied + extra, self.source)


_DEFAULT: Policy | None = None


def default_policy() -> Policy:
    """The shipped policy: every profile, nothing allowed beyond it."""
    global _DEFAULT  # noqa: PLW0603 - a process-wide cache of an immutable value
    if _DEFAULT is None:
        _DEFAULT = Policy()
    return _DEFAULT
