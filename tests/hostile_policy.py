"""Hostile pickles for the policy rules of issue 10 (tests only; nothing here loads them).

Each builder takes the path of a marker file and returns pickle bytes that create it when
``pickle.loads`` runs them (tests/_policy/test_hostile_policy.py proves that in a subprocess, then
checks that ckptguard refuses every one and the marker never appears):

- ``typing.ForwardRef._evaluate``: ``eval`` of a string held by a ForwardRef;
- ``numpy.matlib.savetxt``, ``numpy.lib._format_impl.open_memmap``: numpy's file writers under
  their re-export / implementation-module names;
- ``numpy.matlib`` + ``testing._private.utils.runstring``: an ``exec`` reached through a
  re-exported module attribute;
- ``userpkg.mod`` + ``sp.check_call``: a wildcard-allowed user module's import of
  ``subprocess`` under another name (the wildcard must not traverse into it);
- ``repopkg.hooks.touch``: code in a downloaded repository that its own ``pyproject.toml``
  tries to allow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.pickleasm import (
    APPENDS,
    EMPTY_DICT,
    EMPTY_LIST,
    MARK,
    binint1,
    call,
    glob,
    program,
    sglobal,
    ustr,
)


@dataclass(frozen=True)
class PolicyCase:
    name: str
    build: Callable[[str], bytes]
    allow: tuple[str, ...] = ()  # what a user (or the repo) would allow
    files: dict[str, str] = field(default_factory=dict)  # a package the payload imports
    pyproject: str | None = None  # a pyproject.toml shipped next to the checkpoint


def _py(marker: str) -> str:
    return f"open({marker!r}, 'w').close()"


def forward_ref_evaluate(m: str) -> bytes:
    ref = call(glob("typing", "ForwardRef"), ustr(_py(m)))
    return program(
        call(sglobal("typing", "ForwardRef._evaluate"), ref, EMPTY_DICT, EMPTY_DICT, EMPTY_LIST),
        protocol=4,
    )


def matlib_savetxt(m: str) -> bytes:
    return program(call(glob("numpy.matlib", "savetxt"), ustr(m), EMPTY_LIST + binint1(1) + b"a"))


def format_impl_open_memmap(m: str) -> bytes:
    shape = MARK + binint1(1) + b"t"  # (1,)
    return program(
        call(
            glob("numpy.lib._format_impl", "open_memmap"),
            ustr(m),
            ustr("w+"),
            ustr("uint8"),
            shape,
        )
    )


def matlib_testing_runstring(m: str) -> bytes:
    return program(
        call(sglobal("numpy.matlib", "testing._private.utils.runstring"), ustr(_py(m)), EMPTY_DICT),
        protocol=4,
    )


def wildcard_module_alias(m: str) -> bytes:
    argv = EMPTY_LIST + MARK + ustr("touch") + ustr(m) + APPENDS
    return program(call(sglobal("userpkg.mod", "sp.check_call"), argv), protocol=4)


def repo_hook(m: str) -> bytes:
    return program(call(glob("repopkg.hooks", "touch"), ustr(m)))


USERPKG = {
    "userpkg/__init__.py": "",
    "userpkg/mod.py": "import subprocess as sp\n\n\nclass Config:\n    pass\n",
}
REPOPKG = {
    "repopkg/__init__.py": "",
    "repopkg/hooks.py": "def touch(path):\n    open(path, 'w').close()\n",
}

CASES = [
    PolicyCase("typing.ForwardRef._evaluate", forward_ref_evaluate),
    PolicyCase("numpy.matlib.savetxt", matlib_savetxt),
    PolicyCase("numpy.lib._format_impl.open_memmap", format_impl_open_memmap),
    PolicyCase("numpy.matlib testing runstring", matlib_testing_runstring),
    PolicyCase(
        "userpkg.mod.* reaching subprocess", wildcard_module_alias, ("userpkg.mod.*",), USERPKG
    ),
    PolicyCase(
        "repo pyproject allows its own hook",
        repo_hook,
        files=REPOPKG,
        pyproject='[tool.ckptguard]\nallow = ["repopkg.hooks.touch"]\n',
    ),
]


def materialise(case: PolicyCase, root: Path) -> None:
    """Write the case's package files and pyproject.toml under ``root``."""
    for rel, text in case.files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    if case.pyproject is not None:
        (root / "pyproject.toml").write_text(case.pyproject)
