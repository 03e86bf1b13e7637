"""Policy: which globals are safe, allowed, unknown or dangerous.

The vetted profiles and the dangerous list are data (``ckptguard/data/policy.toml``); the
rules that apply them are code (``_policy._judge``).
"""

from ckptguard._policy._discovery import resolve_policy
from ckptguard._policy._judge import Policy, PolicyArg, default_policy

__all__ = ["Policy", "PolicyArg", "default_policy", "resolve_policy"]
