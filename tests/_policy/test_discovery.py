"""Finding [tool.ckptguard] in pyproject.toml without parsing files that cannot define it."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ckptguard import Verdict
from ckptguard._policy import resolve_policy
from ckptguard._policy._discovery import may_define_tool_table


def _has_table(text: str) -> bool:
    try:
        tool = tomllib.loads(text).get("tool")
    except tomllib.TOMLDecodeError:  # a combination TOML does not allow (a table twice, ...)
        assume(False)
    return isinstance(tool, dict) and "ckptguard" in tool


# Every way TOML can spell a [tool.ckptguard] table (blanks, quotes, dotted keys, inline tables,
# escapes, arrays of tables), each followed by other content.
SPELLINGS = [
    '[tool.ckptguard]\nallow = ["a.B"]\n',
    '[ tool . ckptguard ]\nallow = ["a.B"]\n',
    '\t["tool"."ckptguard"]  # ours\nallow = ["a.B"]\n',
    "['tool'.'ckptguard'.extra]\nx = 1\n",
    '[tool]\nckptguard = { allow = ["a.B"] }\n',
    '[tool]\nckptguard.allow = ["a.B"]\n',
    'tool.ckptguard.allow = ["a.B"]\n',
    'tool = { ckptguard = { allow = ["a.B"] } }\n',
    '"tool" . "ckptguard" . allow = ["a.B"]\n',
    '["t\\u006Fol".ckptguard]\nallow = ["a.B"]\n',
    '[tool."ckpt\\u0067uard"]\nallow = ["a.B"]\n',
    "[[tool.ckptguard]]\nx = 1\n",
    '\ufeff[tool.ckptguard]\nallow = ["a.B"]\n',
]

OTHER = [
    '[project]\nname = "ckptguard-plugin"\ndependencies = ["ckptguard"]\n',
    "[tool.ruff]\nline-length = 100\n",
    "[tool.ruff.lint]\nselect = ['E']\n",
    "# uses ckptguard in CI\n",
    '[tool.mypy]\nplugins = ["ckptguard.mypy"]\n',
    "[tool.ckptguardx]\ny = 2\n",
    "[tool.other]\nckptguard = 1\n",
    "",
]


@pytest.mark.parametrize("text", SPELLINGS)
def test_every_spelling_of_the_table_is_parsed(text: str) -> None:
    assert _has_table(text.lstrip("\ufeff"))
    assert may_define_tool_table(text.encode())


@given(
    spelling=st.sampled_from(SPELLINGS),
    before=st.lists(st.sampled_from(OTHER[1:]), max_size=3, unique=True),
)
@settings(max_examples=200, deadline=None)
def test_the_table_is_found_among_other_tables(spelling: str, before: list[str]) -> None:
    if spelling.startswith(("tool", '"tool"')):  # root keys must come before any table
        text = spelling.lstrip("\ufeff") + "".join(before)
    else:
        text = "".join(before) + spelling.lstrip("\ufeff")
    assert _has_table(text)
    assert may_define_tool_table(text.encode())


@given(st.lists(st.sampled_from(OTHER), max_size=4, unique=True))
def test_files_without_the_table_need_no_parse(parts: list[str]) -> None:
    text = "".join(parts)
    assert not _has_table(text)
    assert not may_define_tool_table(text.encode())


def test_a_broken_pyproject_that_cannot_define_the_table_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "ckptguard-user"\n[tool.ruff\n')
    assert resolve_policy(start_dir=tmp_path, environ={}).source == "defaults"


def test_a_table_written_with_escapes_is_honoured(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool."ckpt\\u0067uard"]\nallow = ["mine.X"]\n')
    policy = resolve_policy(start_dir=tmp_path, environ={})
    assert policy.classify("mine", "X")[0] is Verdict.ALLOWED
