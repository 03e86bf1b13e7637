"""Findings of ``ckptguard code``: one test per rule and import style, one per non-finding."""

from __future__ import annotations

import textwrap

import pytest

from ckptguard._code._runner import check_source


def found(source: str) -> list[tuple[int, str, bool]]:
    """(line, rule id, fixable) of every finding in ``source`` (dedented)."""
    result = check_source(textwrap.dedent(source))
    return [(x.line, x.rule.id, x.fixable) for x in result.findings]


# -- CKG101: torch.load without weights_only, every import style -------------------------


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.load(p)\n",
        "import torch as th\nth.load(p)\n",
        "from torch import load\nload(p)\n",
        "from torch import load as f\nf(p)\n",
        "import torch\ntorch.serialization.load(p)\n",
        "import torch.serialization\ntorch.serialization.load(p)\n",
        "from torch.serialization import load\nload(p)\n",
        "from torch import serialization as s\ns.load(p)\n",
        "import torch.serialization as ts\nts.load(p)\n",
    ],
)
def test_no_weights_only_every_import_style(source: str) -> None:
    assert found(source) == [(2, "CKG101", True)]


def test_import_inside_function_and_map_location() -> None:
    source = """
    def restore(path, device):
        import torch
        state = torch.load(path, map_location=device)
        return state
    """
    assert found(source) == [(4, "CKG101", True)]


def test_multiline_call_reported_at_its_start() -> None:
    source = """
    import torch
    ckpt = torch.load(
        path,
        map_location="cpu",
    )
    """
    result = check_source(textwrap.dedent(source))
    (x,) = result.findings
    assert (x.line, x.column, x.end_line, x.end_column) == (3, 8, 6, 2)


def test_star_args_not_fixable() -> None:
    (x,) = check_source("import torch\ntorch.load(*args)\n").findings
    assert (x.rule.id, x.fixable) == ("CKG101", False)
    assert "pickle_module" in x.message


def test_kwargs_is_fixable() -> None:
    assert found("import torch\ntorch.load(p, **kw)\n") == [(2, "CKG101", True)]


# -- CKG102: weights_only=False ------------------------------------------------------------


def test_weights_only_false() -> None:
    assert found("import torch\ntorch.load(p, weights_only=False)\n") == [(2, "CKG102", True)]


def test_weights_only_variable_is_not_known_true() -> None:
    (x,) = check_source("import torch\ntorch.load(p, weights_only=flag)\n").findings
    assert (x.rule.id, x.fixable) == ("CKG102", True)
    assert "not a literal True" in x.message


def test_weights_only_with_a_call_is_not_fixable() -> None:
    (x,) = check_source("import torch\ntorch.load(p, weights_only=ask())\n").findings
    assert (x.rule.id, x.fixable) == ("CKG102", False)


def test_weights_only_true_is_clean() -> None:
    assert found("import torch\ntorch.load(p, weights_only=True)\n") == []
    assert found("import torch\ntorch.load(p, 'cpu', weights_only=True, mmap=True)\n") == []


# -- CKG103: pickle_module -----------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        "torch.load(p, pickle_module=pickle)",
        "torch.load(p, 'cpu', pickle)",
        "torch.load(p, None, pickle, weights_only=False)",
        "torch.load(p, **{'pickle_module': pickle})",
        "torch.load(p, **dict(pickle_module=pickle))",
    ],
)
def test_pickle_module_is_a_finding_not_fixable(call: str) -> None:
    (x,) = check_source(f"import pickle\nimport torch\n{call}\n").findings
    assert (x.line, x.rule.id, x.fixable) == (3, "CKG103", False)
    assert "ckptguard.load takes no pickle_module" in x.message


# -- CKG104: torch.load as a value ---------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "import torch\nloader = torch.load\n",
        "import functools\nimport torch\nfunctools.partial(torch.load, map_location='cpu')\n",
        "from functools import partial\nfrom torch import load\npartial(load, map_location=d)\n",
        "import torch\nrun(torch.load, path)\n",
        "import torch\ndef get():\n    return torch.serialization.load\n",
        "import torch\nhooks = {'load': torch.load}\n",
    ],
)
def test_torch_load_as_value(source: str) -> None:
    findings = found(source)
    assert [r for _, r, _ in findings] == ["CKG104"]
    assert findings[0][2] is False


# -- CKG105: monkey-patch ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("import torch\ntorch.load = my_load\n", 2),
        ("import torch as th\nth.serialization.load = my_load\n", 2),
        ("import torch\nsetattr(torch, 'load', my_load)\n", 2),
        ("import torch as th\nsetattr(th, 'load', my_load)\n", 2),
        ("from torch import serialization as s\nsetattr(s, 'load', my_load)\n", 2),
        ("import torch.serialization\nsetattr(torch.serialization, 'load', my_load)\n", 2),
        ("import torch\na = torch.load = my_load\n", 2),
    ],
)
def test_monkeypatch(source: str, line: int) -> None:
    assert found(source) == [(line, "CKG105", False)]


def test_classic_monkeypatch_reports_patch_and_value() -> None:
    source = """
    import functools
    import torch
    torch.load = functools.partial(torch.load, weights_only=False)
    """
    assert found(source) == [(4, "CKG105", False), (4, "CKG104", False)]


# -- CKG201: pickle family -----------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "import pickle\npickle.load(fh)\n",
        "import pickle\npickle.loads(data)\n",
        "import pickle\npickle.Unpickler(fh).load()\n",
        "from pickle import loads as unpack\nunpack(data)\n",
        "import _pickle\n_pickle.loads(data)\n",
        "import dill\ndill.load(fh)\n",
        "import cloudpickle\ncloudpickle.loads(data)\n",
        "import joblib\njoblib.load('model.joblib')\n",
        "import pandas as pd\npd.read_pickle('frame.pkl')\n",
    ],
)
def test_pickle_family(source: str) -> None:
    assert found(source) == [(2, "CKG201", False)]


# -- no false findings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.jit.load('m.pt')\n",
        "import numpy as np\nnp.load('a.npy')\n",
        "class M:\n    def load(self, p):\n        return self.load(p)\n",
        "model.load('x')\n",
        "import torch\nmodel = torch.nn.Linear(1, 1)\nmodel.load(p)\n",
        "def load(p):\n    return p\nload('x')\n",
        "import torch\ns = 'torch.load(p)'\n",
        "import torch\n# torch.load(p)\n",
        'def f():\n    """Call torch.load(p, weights_only=False)."""\n',
        "import torch\ndef f(torch):\n    return torch.load(p)\n",
        "import torch\ndef f():\n    torch = get()\n    return torch.load(p)\n",
        "from .torch import load\nload(p)\n",
        "from . import torch\ntorch.load(p)\n",
        "torch.load(p)\n",  # never imported: not torch as far as the module says
        "import pickle\npickle.dump(obj, fh)\n",
        "import pickle\nclass Safe(pickle.Unpickler):\n    pass\n",
        "import torch\ntorch.save(obj, p)\n",
        "import torch\nhasattr(torch, 'load')\nsetattr(torch, 'save', f)\n",
        # rebinding a name imported as torch.load is not a use of it
        "from torch import load\nload = my_load\n",
        "from torch import load\nfor load in loaders:\n    pass\n",
        "from torch import load\nwith opener() as load:\n    pass\n",
        "from torch import load\nclass load:\n    pass\n",
    ],
)
def test_no_false_findings(source: str) -> None:
    assert found(source) == []


# -- ignore comments -----------------------------------------------------------------------


def test_ignore_comment_with_rule() -> None:
    source = "import torch\ntorch.load(p)  # ckptguard: ignore[CKG101]\n"
    assert found(source) == []


def test_ignore_comment_by_name_and_bare() -> None:
    by_name = "# ckptguard: ignore[torch-load-no-weights-only]"
    assert found(f"import torch\ntorch.load(p)  {by_name}\n") == []
    assert found("import torch\ntorch.load(p)  # ckptguard: ignore\n") == []
    assert found("import torch\ntorch.load(p)  # noqa: S614  # ckptguard: ignore\n") == []


def test_ignore_comment_for_other_rule_does_not_suppress() -> None:
    source = "import torch\ntorch.load(p)  # ckptguard: ignore[CKG102]\n"
    assert found(source) == [(2, "CKG101", True)]


def test_ignore_comment_only_on_its_line() -> None:
    source = "import torch\n# ckptguard: ignore\ntorch.load(p)\n"
    assert found(source) == [(3, "CKG101", True)]


def test_ignore_on_first_or_last_line_of_multiline_call() -> None:
    first = "import torch\nx = torch.load(  # ckptguard: ignore[CKG101]\n    p,\n    m,\n)\n"
    last = "import torch\nx = torch.load(\n    p,\n    m,\n)  # ckptguard: ignore[CKG101]\n"
    middle = "import torch\nx = torch.load(\n    p,  # ckptguard: ignore\n    m,\n)\n"
    assert found(first) == []
    assert found(last) == []
    assert found(middle) == [(2, "CKG101", True)]


def test_ignore_text_in_string_is_not_a_comment() -> None:
    source = "import torch\ntorch.load('# ckptguard: ignore')\n"
    assert found(source) == [(2, "CKG101", True)]


# -- ckptguard name -------------------------------------------------------------------------


def test_shadowed_ckptguard_is_not_fixable() -> None:
    source = """
    import torch
    def f(ckptguard):
        return torch.load(p)
    """
    (x,) = check_source(textwrap.dedent(source)).findings
    assert (x.rule.id, x.fixable) == ("CKG101", False)
    assert "'ckptguard' means something else" in x.message


def test_ckptguard_bound_to_something_else_at_module_level() -> None:
    source = "import torch\nimport other as ckptguard\ntorch.load(p)\n"
    assert found(source) == [(3, "CKG101", False)]


def test_name_also_bound_locally_is_reported_not_fixed() -> None:
    source = """
    from torch.serialization import load

    def load(path):
        return path

    state = load("model.pt")
    """
    (x,) = check_source(textwrap.dedent(source)).findings
    assert (x.line, x.rule.id, x.fixable) == (7, "CKG101", False)
    assert "'load' is also bound to something else" in x.message


def test_conditional_torch_import_still_fixable() -> None:
    source = """
    try:
        import torch
    except ImportError:
        torch = None
    state = torch.load("model.pt")
    """
    assert found(source) == [(6, "CKG101", True)]
