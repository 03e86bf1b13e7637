"""Golden-file tests of ``--fix`` (TorchFix style): ``golden/X.in.py`` fixed is ``X.out.py``.

To add a case, write ``X.in.py``, generate ``X.out.py`` with
``ckptguard code --diff golden/X.in.py`` applied by hand, and review every line of it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ckptguard._code._runner import check_source

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name.removesuffix(".in.py") for p in GOLDEN.glob("*.in.py"))


def fixed(source: bytes) -> bytes:
    result = check_source(source, fix=True)
    return source if result.fixed_source is None else result.fixed_source


def test_there_are_cases() -> None:
    assert len(CASES) >= 10
    for name in CASES:
        assert (GOLDEN / f"{name}.out.py").is_file(), name


@pytest.mark.parametrize("name", CASES)
def test_fix_matches_golden(name: str) -> None:
    source = (GOLDEN / f"{name}.in.py").read_bytes()
    expected = (GOLDEN / f"{name}.out.py").read_bytes()
    assert fixed(source).decode() == expected.decode()


@pytest.mark.parametrize("name", CASES)
def test_fixed_compiles_and_only_unfixable_findings_remain(name: str) -> None:
    source = (GOLDEN / f"{name}.in.py").read_bytes()
    out = (GOLDEN / f"{name}.out.py").read_bytes()
    compile(source, f"{name}.in.py", "exec", dont_inherit=True)
    compile(out, f"{name}.out.py", "exec", dont_inherit=True)
    before = check_source(source).findings
    after = check_source(out).findings
    assert not any(x.fixable for x in after)
    # the fix removes exactly the fixable findings and nothing else
    assert Counter(x.rule.id for x in after) == Counter(x.rule.id for x in before if not x.fixable)
    assert fixed(out) == out  # idempotent


def test_import_added_once_and_after_future() -> None:
    out = (GOLDEN / "future_docstring.out.py").read_text()
    assert out.count("import ckptguard\n") == 1
    assert out.index("from __future__") < out.index("import ckptguard")
    assert out.startswith("#!/usr/bin/env python\n")


def test_existing_import_not_duplicated() -> None:
    out = (GOLDEN / "existing_import.out.py").read_text()
    assert out.count("import ckptguard") == 1


def test_crlf_line_endings_kept() -> None:
    source = b"import torch\r\n\r\nx = torch.load(p, weights_only=False)\r\n"
    out = fixed(source)
    assert b"\n" not in out.replace(b"\r\n", b"")
    assert b"x = ckptguard.load(p)\r\n" in out


def test_declared_encoding_kept() -> None:
    source = "# -*- coding: latin-1 -*-\nimport torch\nx = torch.load('caf\xe9.pt')\n"
    out = fixed(source.encode("latin-1"))
    assert out.decode("latin-1").endswith("x = ckptguard.load('caf\xe9.pt')\n")


def test_kwargs_fix_cannot_duplicate_a_keyword() -> None:
    """The fix never adds an argument: the call's keywords are a subset of the original's."""
    source = b"import torch\ndef f(p, **kw):\n    return torch.load(p, weights_only=False, **kw)\n"
    out = fixed(source).decode()
    assert "ckptguard.load(p, **kw)" in out
    assert "weights_only" not in out
