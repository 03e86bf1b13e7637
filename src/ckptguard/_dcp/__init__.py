"""torch.distributed.checkpoint (DCP) directories: scan, load, convert, describe.

Importing this package imports neither torch nor numpy (scan path); the loader
(:mod:`._reader`, :mod:`._load`) and the converter (:mod:`._convert`) import torch.
"""

from ckptguard._dcp._layout import Item, Layout, Storage
from ckptguard._dcp._scan import METADATA, Scanned, dcp_root, is_dcp_dir, scan_dcp
from ckptguard._errors import DcpError

__all__ = [
    "METADATA",
    "DcpError",
    "Item",
    "Layout",
    "Scanned",
    "Storage",
    "dcp_root",
    "is_dcp_dir",
    "scan_dcp",
]
