"""data/weights_only.toml may only name globals the installed torch loads with weights_only."""

from __future__ import annotations

from torch._weights_only_unpickler import _get_allowed_globals

from ckptguard._convert._values import weights_only_globals


def test_every_listed_global_is_allowed_by_stock_torch() -> None:
    listed = weights_only_globals()
    allowed = set(_get_allowed_globals())
    assert "torch._utils._rebuild_tensor_v2" in listed
    assert listed <= allowed, sorted(listed - allowed)


def test_the_writer_needs_only_listed_globals() -> None:
    needed = {
        "torch._utils._rebuild_tensor_v3", "torch.storage.UntypedStorage",
        "collections.OrderedDict", "_codecs.encode", "builtins.set", "builtins.complex",
    }  # fmt: skip
    assert needed <= weights_only_globals()


def test_the_fast_reader_agrees_with_tomllib_on_the_shipped_file() -> None:
    import tomllib

    from ckptguard._convert._values import WEIGHTS_ONLY_FILE
    from ckptguard._policy._toml import parse_simple_toml

    with open(WEIGHTS_ONLY_FILE, "rb") as f:
        text = f.read().decode("utf-8")
    assert parse_simple_toml(text) == tomllib.loads(text)  # the file stays inside the subset
