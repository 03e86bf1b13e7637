"""The rules of ``ckptguard code``, as data: a stable ID, a kebab-case name and one doc line each.

IDs never change meaning once released; a retired rule keeps its ID unused. The doc line is what
``docs/code.md``, ``--help`` and the SARIF rule descriptions show.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    id: str  # "CKG101"
    name: str  # "torch-load-no-weights-only"
    doc: str  # one line: what the rule reports and why it matters
    level: str  # SARIF level: "error", "warning" or "note" (informational: exit status 0)


TORCH_LOAD_NO_WEIGHTS_ONLY = Rule(
    "CKG101",
    "torch-load-no-weights-only",
    "torch.load call without weights_only: on PyTorch < 2.6 it unpickles anything (runs code), "
    "on >= 2.6 it fails on checkpoints that hold more than tensors; use ckptguard.load",
    "warning",
)
TORCH_LOAD_WEIGHTS_ONLY_FALSE = Rule(
    "CKG102",
    "torch-load-weights-only-false",
    "torch.load call with weights_only=False (or not a literal True): a malicious checkpoint "
    "runs code when loaded; use ckptguard.load",
    "error",
)
TORCH_LOAD_PICKLE_MODULE = Rule(
    "CKG103",
    "torch-load-pickle-module",
    "torch.load call with a pickle_module (keyword or third positional argument): PyTorch then "
    "defaults to weights_only=False and the module's unpickler runs code from the file",
    "error",
)
TORCH_LOAD_AS_VALUE = Rule(
    "CKG104",
    "torch-load-as-value",
    "torch.load used as a value (aliased, wrapped in functools.partial, passed as an argument): "
    "the calls it ends up in cannot be checked; refer to ckptguard.load instead",
    "warning",
)
TORCH_LOAD_MONKEYPATCH = Rule(
    "CKG105",
    "torch-load-monkeypatch",
    "torch.load assigned over (torch.load = ..., setattr(torch, 'load', ...)): a global "
    "monkey-patch usually switches weights_only off for every caller, libraries included",
    "error",
)
TORCH_HUB_LOAD_URL = Rule(
    "CKG106",
    "torch-hub-load-url",
    "torch.hub.load_state_dict_from_url / torch.utils.model_zoo.load_url without "
    "weights_only=True: their weights_only defaults to False (torch 2.13), so a malicious "
    "checkpoint at the URL or in the cache runs code; fixed by passing weights_only=True",
    "error",
)
PICKLE_LOAD = Rule(
    "CKG201",
    "pickle-load",
    "pickle.load/loads/Unpickler (or dill, cloudpickle, joblib.load, pandas.read_pickle) on data: "
    "unpickling untrusted bytes runs code; use a data format (JSON, safetensors, npz)",
    "warning",
)
NUMPY_LOAD_ALLOW_PICKLE = Rule(
    "CKG202",
    "numpy-load-allow-pickle",
    "numpy.load with allow_pickle=True (or not a literal False): object arrays in the file are "
    "unpickled, which runs code from a malicious .npy/.npz; no automatic fix (allow_pickle=False "
    "fails on object arrays)",
    "warning",
)
SAFE_GLOBALS_NOT_NEEDED = Rule(
    "CKG301",
    "safe-globals-not-needed",
    "torch.serialization.add_safe_globals / safe_globals registers a global ckptguard already "
    "vets (numpy.dtype, numpy.core.multiarray.scalar, ...): not needed with ckptguard.load "
    "(information only; keeping it changes nothing)",
    "note",
)

RULES: tuple[Rule, ...] = (
    TORCH_LOAD_NO_WEIGHTS_ONLY,
    TORCH_LOAD_WEIGHTS_ONLY_FALSE,
    TORCH_LOAD_PICKLE_MODULE,
    TORCH_LOAD_AS_VALUE,
    TORCH_LOAD_MONKEYPATCH,
    TORCH_HUB_LOAD_URL,
    PICKLE_LOAD,
    NUMPY_LOAD_ALLOW_PICKLE,
    SAFE_GLOBALS_NOT_NEEDED,
)

BY_ID: dict[str, Rule] = {r.id: r for r in RULES}
BY_NAME: dict[str, Rule] = {r.name: r for r in RULES}


def lookup(code: str) -> Rule | None:
    """The rule named by its ID (case-insensitive) or kebab-case name, or None."""
    return BY_ID.get(code.strip().upper()) or BY_NAME.get(code.strip().lower())


def select(codes: str) -> tuple[Rule, ...]:
    """Rules matching one code: an exact ID or name, or an ID prefix (``CKG1``). May be empty."""
    rule = lookup(codes)
    if rule is not None:
        return (rule,)
    prefix = codes.strip().upper()
    if len(prefix) < 3:  # "C" or "CK" selecting everything is surely a typo
        return ()
    return tuple(r for r in RULES if r.id.startswith(prefix))
