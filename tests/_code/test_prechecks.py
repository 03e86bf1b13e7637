"""The cheap pre-checks (byte filter, import-aware candidate test, per-node filter) only skip
work: with all of them switched off, every input gives exactly the same findings."""

from __future__ import annotations

from pathlib import Path

import pytest

from ckptguard._code import _runner, _visitor
from ckptguard._code._runner import check_source

HERE = Path(__file__).parent
SOURCES = sorted((HERE / "golden").glob("*.in.py")) + sorted(
    (HERE / "fixture_project").rglob("*.py")
)

EXTRA = [
    "import torch as th\nsetattr(th, 'load', f)\n",
    "from torch import serialization as s\nx = s.load(p)\n",
    "import torch.serialization as ts\nx = ts.load(p)\n",
    "from pandas import read_pickle as rp\nrp('x.pkl')\n",
    "import torch.nn as nn\nnn.load(p)\n",
    "from torch._inductor.virtualized import ops\nops.load(buf, idx)\n",
    "def f():\n    import pickle as pk\n    return pk.loads(b)\n",
]


def _findings(source: bytes) -> list[tuple[int, int, str, bool]]:
    return [(x.line, x.column, x.rule.id, x.fixable) for x in check_source(source).findings]


@pytest.mark.parametrize(
    "source",
    [p.read_bytes() for p in SOURCES] + [s.encode() for s in EXTRA],
    ids=[p.name for p in SOURCES] + [f"extra{i}" for i in range(len(EXTRA))],
)
def test_prechecks_change_nothing(source: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    with_prechecks = _findings(source)
    monkeypatch.setattr(_runner, "_may_have_findings", lambda data: True)
    monkeypatch.setattr(_visitor._BindingCollector, "candidates", property(lambda self: True))
    monkeypatch.setattr(_visitor.Bindings, "may_matter", lambda self, node: True)
    assert _findings(source) == with_prechecks


def test_prechecks_do_skip_work() -> None:
    """The filter is not vacuous: a module that mentions neither loads nor modules is skipped,
    one with an unrelated `ops.load` gets no scope analysis."""
    assert not _runner._may_have_findings(b"import os\nprint(os.getcwd())\n")
    assert _runner._may_have_findings(b"import torch\ntorch.load(p)\n")
    import libcst as cst

    collector = _visitor._BindingCollector()
    cst.parse_module("from torch._inductor.virtualized import ops\nops.load(b)\n").visit(collector)
    assert not collector.candidates
