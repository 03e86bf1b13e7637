"""TorchScript archives: one verdict and one piece of advice for all of them.

A TorchScript archive (``torch.jit.save``) is a program, not only weights: ``torch.load`` hands
it to ``torch.jit.load``, which compiles its code and runs it (a scripted ``__setstate__`` runs
while loading). ckptguard never loads one, whatever its pickles hold: every TorchScript archive
carries the ``torch-torchscript`` finding (severity ``dangerous``, the same message), and the
next step offered is the one that works: ``ckptguard convert`` extracts the parameters and
buffers as a plain state dict without compiling or running anything.
"""

from __future__ import annotations

from ckptguard._scan_rules import TORCH_TORCHSCRIPT
from ckptguard._verdict import Severity, Verdict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from ckptguard._results import FindingRecord, GlobalRecord

RULE = TORCH_TORCHSCRIPT

MESSAGE = (
    "TorchScript archive: this file is code (a compiled TorchScript program), not only weights: "
    "torch.load hands it to torch.jit.load, which compiles and runs it, so ckptguard never "
    "loads it, whatever it holds (allowing its classes does not change that)"
)


def hint(path: str) -> str:
    """The next step for a TorchScript archive (every one gets the same)."""
    return (
        "it is code: only torch.jit.load runs it, and only from a trusted source; to get the "
        f"weights without running code: ckptguard convert {path} weights.pt"
    )


def only_torchscript(globals_: Iterable[GlobalRecord], findings: Iterable[FindingRecord]) -> bool:
    """Whether being TorchScript is all that stops the file (no dangerous global, no other
    dangerous or error finding): then convert can extract its weights."""
    found = False
    for f in findings:
        if f.rule == RULE:
            found = True
        elif f.severity in (Severity.DANGEROUS, Severity.ERROR):
            return False
    return found and not any(g.verdict is Verdict.DANGEROUS for g in globals_)
