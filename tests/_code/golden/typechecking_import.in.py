"""The only `import ckptguard` is for type checkers: the fix must add a real one."""

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import ckptguard

state = torch.load("model.pt")
