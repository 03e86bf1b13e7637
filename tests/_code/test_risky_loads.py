"""Issue 11.7: torch.hub / model_zoo loaders and numpy.load(allow_pickle=True) are found under
every import spelling; hub calls are fixed with weights_only=True, numpy.load never rewritten."""

from __future__ import annotations

import inspect

import pytest
import torch.hub
import torch.utils.model_zoo

from ckptguard._code._runner import check_source


def _findings(source: str) -> list[tuple[int, str, bool]]:
    result = check_source(source.encode(), fix=False)
    return [(f.line, f.rule.id, f.fixable) for f in result.findings]


def test_hub_loaders_default_to_running_code_on_this_torch() -> None:
    """The claim behind CKG106: weights_only defaults to False, seventh parameter."""
    assert torch.utils.model_zoo.load_url is torch.hub.load_state_dict_from_url
    params = list(inspect.signature(torch.hub.load_state_dict_from_url).parameters.values())
    assert params[6].name == "weights_only"
    assert params[6].default is False


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.hub.load_state_dict_from_url(u)\n",
        "import torch.hub\ntorch.hub.load_state_dict_from_url(u, weights_only=False)\n",
        "from torch.hub import load_state_dict_from_url as f\nf(u)\n",
        "from torch.utils import model_zoo\nmodel_zoo.load_url(u)\n",
        "import torch.utils.model_zoo as mz\nmz.load_url(u, progress=False)\n",
        "from torch.utils.model_zoo import load_url\nload_url(u, d, None, True, False, None, 0)\n",
        "import torch as t\nt.utils.model_zoo.load_url(u, weights_only=w)\n",
    ],
)
def test_hub_loaders_are_found_and_fixed(source: str) -> None:
    assert _findings(source) == [(2, "CKG106", True)]
    fixed = check_source(source.encode(), fix=True).fixed_source
    assert fixed is not None
    assert b"weights_only=True" in fixed or b", True)" in fixed
    assert b"import ckptguard" not in fixed  # nothing new to import
    assert _findings(fixed.decode()) == []
    compile(fixed, "<fixed>", "exec")


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.hub.load_state_dict_from_url(u, weights_only=True)\n",
        "import torch\ntorch.hub.load(repo, 'resnet18')\n",  # another rule's business
        "def load_url(u):\n    pass\nload_url(u)\n",  # not torch's
        "from mypkg import model_zoo\nmodel_zoo.load_url(u)\n",
    ],
)
def test_not_reported(source: str) -> None:
    assert _findings(source) == []


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.hub.load_state_dict_from_url(u, **kw)\n",
        "import torch\ntorch.hub.load_state_dict_from_url(*a)\n",
        "import torch\ntorch.hub.load_state_dict_from_url(u, weights_only=pick(u))\n",
    ],
)
def test_hub_calls_that_cannot_be_fixed_safely(source: str) -> None:
    assert _findings(source) == [(2, "CKG106", False)]
    assert check_source(source.encode(), fix=True).fixed_source is None


@pytest.mark.parametrize(
    "source",
    [
        "import numpy\nnumpy.load(p, allow_pickle=True)\n",
        "import numpy as np\nnp.load(p, allow_pickle=True)\n",
        "from numpy import load\nload(p, allow_pickle=True)\n",
        "from numpy import load as npl\nnpl(p, None, True)\n",
        "import numpy as np\nnp.load(p, allow_pickle=flag)\n",
        "import numpy as np\nnp.load(p, **{'allow_pickle': True})\n",
        "import numpy as np\nnp.load(p, **dict(allow_pickle=True))\n",
    ],
)
def test_numpy_allow_pickle_is_reported_never_fixed(source: str) -> None:
    assert _findings(source) == [(2, "CKG202", False)]
    assert check_source(source.encode(), fix=True).fixed_source is None


@pytest.mark.parametrize(
    "source",
    [
        "import numpy as np\nnp.load(p)\n",
        "import numpy as np\nnp.load(p, allow_pickle=False)\n",
        "import numpy as np\nnp.load(p, None, False)\n",
        "import numpy as np\nnp.load(p, mmap_mode='r')\n",
        "def f(np):\n    np.load(p, allow_pickle=True)\n",  # a parameter, not numpy
    ],
)
def test_numpy_load_without_pickles_is_fine(source: str) -> None:
    assert _findings(source) == []
