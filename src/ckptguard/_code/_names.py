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

# torch.load with weights_only defaulting to False (torch 2.13): model_zoo.load_url *is*
# torch.hub.load_state_dict_from_url(url, model_dir, map_location, progress, check_hash,
# file_name, weights_only=False)
TORCH_HUB_LOADERS = frozenset(
    {"torch.hub.load_state_dict_from_url", "torch.utils.model_zoo.load_url"}
)
HUB_WEIGHTS_ONLY_POSITION = 6  # 0-based index of weights_only among the positional parameters

# numpy.load(file, mmap_mode=None, allow_pickle=False, ...)
NUMPY_LOAD = frozenset({"numpy.load"})
ALLOW_PICKLE_POSITION = 2
# torch's own trust list: what is registered there, ckptguard.load honours too.
SAFE_GLOBALS_REGISTRARS = frozenset(
    {"torch.serialization.add_safe_globals", "torch.serialization.safe_globals"}
)

SETATTR = "builtins.setattr"

# Last components of the names above: only nodes ending in one of them are resolved.
_ALL_CALLS = TORCH_LOAD | PICKLE_LOADERS | TORCH_HUB_LOADERS | NUMPY_LOAD | SAFE_GLOBALS_REGISTRARS
LEAF_NAMES = frozenset(n.rsplit(".", 1)[-1] for n in _ALL_CALLS)
BARE_NAMES = frozenset({"setattr"})

# torch.load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None, **kw)
PICKLE_MODULE_POSITION = 2  # 0-based index of pickle_module among the positional parameters

# Modules a finding needs imported (first component of every name above).
ROOT_MODULES = frozenset(n.split(".", 1)[0] for n in _ALL_CALLS)

# Every watched dotted name, and every proper prefix of one (`torch`, `torch.serialization`):
# what an import must bind for a name in the module to resolve to a watched one.
WATCHED = _ALL_CALLS
PREFIXES = frozenset(
    ".".join(parts[:i]) for parts in (n.split(".") for n in WATCHED) for i in range(1, len(parts))
)
