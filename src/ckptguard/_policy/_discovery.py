"""Where a policy comes from, and in which order; files being judged never widen trust.

The policy *source* is the first of:

1. ``policy=`` / ``--policy FILE`` (a policy file, a ``pyproject.toml`` whose
   ``[tool.ckptguard]`` table is read, or a :class:`Policy`);
2. the file named by ``$CKPTGUARD_POLICY``;
3. ``[tool.ckptguard]`` in the *current project's* ``pyproject.toml``: the nearest one that has
   the table, searching from the current directory (or ``start_dir``) upwards, and only when
   it is unrelated to everything being judged. When the files being scanned or loaded
   (``targets``) lie in that ``pyproject.toml``'s directory tree, or that directory lies in
   theirs, it is ignored (and the report says so): a repository you downloaded must not be
   able to widen its own trust, and ckptguard cannot tell your project from a downloaded one
   by looking. Pass it explicitly (``--policy pyproject.toml``) when the checkpoints live in
   your own project;
4. none: the shipped defaults.

Then ``allow=`` / ``--allow`` entries are added on top. A policy file uses the keys ``allow``,
``deny`` and ``profiles`` at top level (in pyproject.toml: under ``[tool.ckptguard]``)::

    profiles = ["torch", "numpy", "python"]          # optional; default: all shipped profiles
    allow = ["mypkg.utils.DSPMode", "mypkg.configs.*",
             { name = "fairseq.data.dictionary.Dictionary", reason = "our HuBERT models" }]
    deny = ["mypkg.legacy.Unpickler"]

Every policy records the sources it was built from (``Policy.sources``) and the policy files
it found but did not apply (``Policy.ignored``); every report lists them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping

from ckptguard._errors import PolicyError
from ckptguard._policy._judge import (
    ALL_PROFILES,
    Entry,
    Policy,
    PolicyArg,
    default_policy,
    parse_entry,
)

# typing is only needed by type checkers; importing it costs start-up time (mypy honours a
# module-level TYPE_CHECKING constant).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ENV_VAR = "CKPTGUARD_POLICY"
_KEYS = {"allow", "deny", "profiles"}

# What a pyproject.toml must contain to define [tool.ckptguard], in any TOML spelling: a
# [tool] or [tool.ckptguard...] header (also [[...]], quoted or spaced parts), or a key "tool"
# (tool.ckptguard.allow = ..., tool = {ckptguard = ...}). Lines are compared without blanks,
# quotes and byte order marks, so a match is conservative (a look-alike line only costs a
# parse); an escape (\u0074ool) could spell either name, so one anywhere also counts.
_HEADERS = (b"[tool]", b"[[tool]]", b"[tool.ckptguard]", b"[tool.ckptguard.", b"[[tool.ckptguard")
_ROOT_KEYS = (b"tool=", b"tool.")
_BLANKS_AND_QUOTES = b" \t\"'\xef\xbb\xbf"  # and a UTF-8 byte order mark


def may_define_tool_table(raw: bytes) -> bool:
    """False only when the TOML text ``raw`` certainly has no [tool.ckptguard] table."""
    if b"\\u" in raw or b"\\U" in raw:
        return True
    if b"ckptguard" not in raw or b"tool" not in raw:
        return False
    for line in raw.splitlines():
        key = line.translate(None, _BLANKS_AND_QUOTES)
        if key.startswith(_HEADERS) or key.startswith(_ROOT_KEYS):
            return True
    return False


def _entries(value: Any, key: str, where: str) -> tuple[Entry, ...]:
    if not isinstance(value, list):
        raise PolicyError(f"{where}: '{key}' must be a list")
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(parse_entry(item, f"{key}ed by {where}"))
        elif (
            isinstance(item, dict)
            and isinstance(item.get("name"), str)
            and set(item)
            <= {
                "name",
                "reason",
            }
        ):
            reason = item.get("reason") or f"{key}ed by {where}"
            if not isinstance(reason, str):
                raise PolicyError(f"{where}: 'reason' of {item['name']!r} must be a string")
            out.append(parse_entry(item["name"], reason))
        else:
            raise PolicyError(
                f"{where}: each '{key}' entry is a 'module.Name' string or "
                "{ name = ..., reason = ... }"
            )
    return tuple(out)


def policy_from_mapping(doc: Mapping[str, Any], where: str) -> Policy:
    unknown = set(doc) - _KEYS
    if unknown:
        raise PolicyError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))} (allowed: allow, deny, profiles)"
        )
    profiles = doc.get("profiles", list(ALL_PROFILES))
    if not isinstance(profiles, list) or not all(isinstance(p, str) for p in profiles):
        raise PolicyError(f"{where}: 'profiles' must be a list of profile names")
    try:
        return Policy(
            profiles=tuple(profiles),
            allowed=_entries(doc.get("allow", []), "allow", where),
            denied=_entries(doc.get("deny", []), "deny", where),
            source=where,
        )
    except PolicyError as exc:
        if where in exc.problem:
            raise
        raise PolicyError(f"{where}: {exc.problem}") from None


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} does not exist") from None
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from None


def _read_toml(path: str) -> dict[str, Any]:
    from ckptguard._policy._toml import parse_toml  # noqa: PLC0415 - only when a file is read

    return parse_toml(_read_bytes(path), path)


def load_policy_file(path: str | os.PathLike[str], *, label: str | None = None) -> Policy:
    """A policy file; a ``pyproject.toml`` given explicitly is read for its [tool.ckptguard]."""
    p = os.fspath(path)
    doc = _read_toml(p)
    if os.path.basename(p) == "pyproject.toml":
        tool = doc.get("tool", {})
        table = tool.get("ckptguard") if isinstance(tool, dict) else None
        if not isinstance(table, dict):
            raise PolicyError(f"{p} has no [tool.ckptguard] table")
        doc, p = table, f"{p} [tool.ckptguard]"
    policy = policy_from_mapping(doc, p)
    if label is None:
        return policy
    return Policy(
        policy.profiles, policy.allowed, policy.denied, policy.source,
        (*policy.sources[:-1], f"{label} {p}"),
    )  # fmt: skip


def find_pyproject(
    start: str | os.PathLike[str], *, refuse: Callable[[str], bool] | None = None
) -> tuple[str, dict[str, Any]] | None:
    """The nearest pyproject.toml at or above ``start`` with a [tool.ckptguard] table.

    When ``refuse(directory)`` is true for the nearest file that may define the table, it is
    returned unparsed (table ``{}``) with ``"!"`` prefixed to its path, so that a file which is
    not applied cannot fail the run either.
    """
    d = os.path.abspath(start)
    while True:
        candidate = os.path.join(d, "pyproject.toml")
        # Files that cannot define the table are not parsed at all.
        if os.path.isfile(candidate) and may_define_tool_table(raw := _read_bytes(candidate)):
            if refuse is not None and refuse(d):
                return "!" + candidate, {}
            from ckptguard._policy._toml import parse_toml  # noqa: PLC0415 - start-up time

            doc = parse_toml(raw, candidate)
            tool = doc.get("tool", {})
            table = tool.get("ckptguard") if isinstance(tool, dict) else None
            if table is not None:
                if not isinstance(table, dict):
                    raise PolicyError(f"{candidate}: [tool.ckptguard] must be a table")
                return candidate, table
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def _real_forms(path: str) -> set[str]:
    return {os.path.abspath(path), os.path.realpath(path)}


def _related(directory: str, target: str) -> bool:
    """Whether ``target`` lies in ``directory``'s tree or ``directory`` lies in ``target``'s."""
    for d in _real_forms(directory):
        for t in _real_forms(target):
            try:
                common = os.path.commonpath([d, t])
            except ValueError:  # different drives (Windows)
                continue
            if common in (d, t):
                return True
    return False


def _target_paths(targets: Iterable[object]) -> list[str]:
    out = []
    for t in targets:
        if isinstance(t, (str, os.PathLike)):
            out.append(os.fspath(t))
        else:  # an open file: judge the path it was opened from, when it has one
            name = getattr(t, "name", None)
            if isinstance(name, (str, os.PathLike)):
                out.append(os.fspath(name))
    return [p for p in out if isinstance(p, str)]


def resolve_policy(
    *,
    allow: Iterable[str] = (),
    policy: PolicyArg = None,
    start_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    targets: Iterable[object] | None = None,
) -> Policy:
    """The policy in force: its source by the precedence above, plus ``allow`` on top.

    ``targets`` are the files or directories about to be judged (paths or open files); a
    ``pyproject.toml`` related to any of them is not applied (see the module documentation).
    None means they are not known yet (``patched()``, ``ckptguard run``).
    """
    env = os.environ if environ is None else environ
    ignored: list[str] = []
    if isinstance(policy, Policy):
        base = policy
    elif policy is not None:
        base = load_policy_file(policy, label="policy file (--policy / policy=)")
    elif env.get(ENV_VAR):
        base = load_policy_file(env[ENV_VAR], label=f"${ENV_VAR}")
    else:
        base = default_policy()
        paths = _target_paths(targets) if targets is not None else []

        def related(directory: str) -> bool:
            return any(_related(directory, t) for t in paths)

        found = find_pyproject(start_dir if start_dir else os.getcwd(), refuse=related)
        if found is not None:
            path, table = found
            if path.startswith("!"):
                ignored.append(
                    f"{path[1:]} [tool.ckptguard]: not applied, the files being judged lie in "
                    "its project tree (they never widen their own trust; pass it with "
                    "--policy if it is your own project's)"
                )
            else:
                where = f"{path} [tool.ckptguard]"
                found_policy = policy_from_mapping(table, where)
                base = Policy(
                    found_policy.profiles, found_policy.allowed, found_policy.denied, where,
                    (*found_policy.sources[:-1], f"current project's {where}"),
                )  # fmt: skip
    if isinstance(allow, str):
        allow = [allow]
    return base.with_allowed(
        allow, reason="allowed by --allow / allow=", origin="--allow / allow="
    ).with_ignored(ignored)
