"""The version of ckptguard, written once (pyproject.toml reads it statically)."""

__version__ = "0.1.0"
