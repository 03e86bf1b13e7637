"""The only `import ckptguard` is for type checkers: the fix must add a real one."""

from typing import TYPE_CHECKING

import torch
import ckptguard

if TYPE_CHECKING:
    import ckptguard

state = ckptguard.load("model.pt")
