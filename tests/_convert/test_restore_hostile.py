"""restore_types reads a ``__ckptguard__`` entry from the file it loads: whatever it holds
(non-string paths, huge or deeply nested key reprs), restoring never crashes and never
evaluates more than a bounded literal."""

from __future__ import annotations

from typing import Any

import pytest

from ckptguard._convert._restore import restore
from ckptguard._policy import resolve_policy

_REC = {"type": "collections.OrderedDict", "module": "collections", "as": "dict"}


@pytest.mark.parametrize(
    "path",
    [
        7,
        ("a",),
        "/" + "(" * 100_000,
        "/" + "1" * 100_000,
        "/" + repr(tuple(range(50_000))),
        "/[" * 50 + "]" * 50,
    ],
    ids=["int", "tuple", "deep-parens", "huge-int", "huge-tuple", "nested-lists"],
)
def test_hostile_recorded_paths_are_skipped(path: Any) -> None:
    obj = {"x": {"a": 1}, "__ckptguard__": {"version": 1, "types": {path: _REC}}}
    out: Any = restore(obj, policy=resolve_policy(allow=["collections.OrderedDict"]))
    assert out["x"] == {"a": 1}
    assert path in out["__ckptguard__"]["types"]  # not applied: stays recorded


def test_a_well_formed_path_is_still_restored() -> None:
    obj = {"x": {"a": 1}, "__ckptguard__": {"version": 1, "types": {"/x": _REC}}}
    out: Any = restore(obj, policy=resolve_policy(allow=["collections.OrderedDict"]))
    assert type(out["x"]).__name__ == "OrderedDict" and "__ckptguard__" not in out
