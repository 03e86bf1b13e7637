"""Result types of the format readers (no logic here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ckptguard._model import Finding
from ckptguard._pickle import PickleAnalysis


@dataclass(frozen=True)
class PickleStream:
    """One pickle found inside a file, already analysed."""

    name: str  # where it is: "archive/data.pkl", "pickle 3 of 5", "arr_0.npy", ...
    analysis: PickleAnalysis
    digest: bytes = b""  # BLAKE2b of the whole member, for streams that are a whole zip
    #                      member (lets the loader check it unpickles exactly these bytes)


@dataclass(frozen=True)
class Extracted:
    """Everything the scanner needs to know about a file's content."""

    format: str  # see FORMATS in ckptguard._formats
    pickles: tuple[PickleStream, ...] = ()
    findings: tuple[Finding, ...] = ()
    details: Mapping[str, str] = field(default_factory=dict)  # e.g. {"archive": "model",
    #                                                            "torch_version": "..."}
