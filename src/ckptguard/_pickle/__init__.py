"""Static analysis of pickle streams: a symbolic unpickler that never executes anything."""

from ckptguard._errors import PickleError
from ckptguard._pickle._analysis import (
    DEFAULT_LIMITS,
    OPAQUE,
    GlobalConst,
    GlobalUsage,
    PersistentRef,
    PickleAnalysis,
    PickleLimits,
)
from ckptguard._pickle._vm import analyze_pickle

__all__ = [
    "DEFAULT_LIMITS",
    "OPAQUE",
    "GlobalConst",
    "GlobalUsage",
    "PersistentRef",
    "PickleAnalysis",
    "PickleError",
    "PickleLimits",
    "analyze_pickle",
]
