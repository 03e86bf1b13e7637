"""Policy: which globals are safe, allowed, unknown or dangerous.

The vetted profiles and the dangerous list are data (``ckptguard/data/policy.toml``); the
rules that apply them are code (``_policy._policy``).
"""

from ckptguard._policy._discovery import resolve_policy
from ckptguard._policy._judge import Policy, default_policy

__all__ = ["Policy", "default_policy", "resolve_policy"]
