"""Safe loading: ``load`` (a drop-in ``torch.load``) and the process-wide ``torch.load`` patch."""

from ckptguard._errors import LoadWarning, RefusedLoadWarning
from ckptguard._load._patch import install, is_installed, patched, uninstall
from ckptguard._load._safe_load import load

__all__ = [
    "LoadWarning",
    "RefusedLoadWarning",
    "install",
    "is_installed",
    "load",
    "patched",
    "uninstall",
]
