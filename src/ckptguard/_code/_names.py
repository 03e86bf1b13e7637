"""Which qualified names the rules look for (resolved through imports by libcst)."""

from __future__ import annotations

# torch.load under every public name it has.
TORCH_LOAD = frozenset({"torch.load", "torch.serialization.load"})

# Objects whose `load` attribute *is* torch.load (for setattr(obj, "load", ...)).
TORCH_LOAD_OWNERS = frozenset({"torch", "torch.serialization"})

# Calls that unpickle their input.
PICKLE_LOADERS = frozenset(
    {
        "pickle.load",
        "pickle.loads",
        "pickle.Unpickler",
        "_pickle.load",
        "_pickle.loads",
        "_pickle.Unpickler",
        "cPickle.load",
        "cPickle.loads",
        "cPickle.Unpickler",
        "dill.load",
        "dill.loads",
        "dill.Unpickler",
        "cloudpickle.load",
        "cloudpickle.loads",
        "joblib.load",
        "pandas.read_pickle",
    }
)

# torch's own trust list: what is registered there, ckptguard.load honours too.
SAFE_GLOBALS_REGISTRARS = frozenset(
    {"torch.serialization.add_safe_globals", "torch.serialization.safe_globals"}
)

SETATTR = "builtins.setattr"

# Last components of the names above: only nodes ending in one of them are resolved.
LEAF_NAMES = frozenset(
    n.rsplit(".", 1)[-1] for n in TORCH_LOAD | PICKLE_LOADERS | SAFE_GLOBALS_REGISTRARS
)
BARE_NAMES = frozenset({"setattr"})

# torch.load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None, **kw)
PICKLE_MODULE_POSITION = 2  # 0-based index of pickle_module among the positional parameters

# Modules a finding needs imported (first component of every name above).
ROOT_MODULES = frozenset(n.split(".", 1)[0] for n in TORCH_LOAD | PICKLE_LOADERS)

# Every watched dotted name, and every proper prefix of one (`torch`, `torch.serialization`):
# what an import must bind for a name in the module to resolve to a watched one.
WATCHED = TORCH_LOAD | PICKLE_LOADERS | SAFE_GLOBALS_REGISTRARS
PREFIXES = frozenset(
    ".".join(parts[:i]) for parts in (n.split(".") for n in WATCHED) for i in range(1, len(parts))
)
