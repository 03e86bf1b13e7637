"""Globals that change how the whole process behaves later are dangerous, not merely unknown."""

from __future__ import annotations

import pytest

from ckptguard._errors import PolicyError
from ckptguard._policy import resolve_policy
from ckptguard._verdict import Verdict


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("omegaconf", "OmegaConf.register_new_resolver"),
        ("omegaconf.omegaconf", "OmegaConf.register_new_resolver"),
        ("omegaconf.omegaconf.OmegaConf", "register_new_resolver"),
        ("omegaconf.omegaconf", "register_default_resolvers"),
    ],
)
def test_registering_an_omegaconf_resolver_is_dangerous(module: str, name: str) -> None:
    verdict, reason = resolve_policy().classify(module, name)
    assert verdict is Verdict.DANGEROUS, reason
    with pytest.raises(PolicyError, match="cannot be allowed"):
        resolve_policy(allow=[f"{module}.{name}"])
