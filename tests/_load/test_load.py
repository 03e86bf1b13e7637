"""ckptguard.load: every legitimate checkpoint loads identically, nothing unsafe runs."""

from __future__ import annotations

import argparse
import collections
import io
import pickle
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ckptguard
from ckptguard._load import LoadWarning
from tests import factories
from tests._load import hostile
from tests._load.equality import assert_same, shares_storage
from tests.pickleasm import EMPTY_DICT, glob, long_binput, program, put0


def unsafe(path: Path | io.BytesIO, **kw: Any) -> Any:
    return torch.load(path, weights_only=False, **kw)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_training_checkpoint_loads_with_no_allow_list(tmp_path: Path, protocol: int) -> None:
    path = factories.training_checkpoint(tmp_path / "train.pt", protocol=protocol)
    loaded = ckptguard.load(path)
    assert_same(loaded, unsafe(path))
    assert isinstance(loaded["step"], np.int64) and loaded["step"] == 120
    assert loaded["numpy_rng"][0] == "MT19937"


def test_numpy_1x_names_load_under_numpy_2(tmp_path: Path) -> None:
    path = factories.numpy1_training_checkpoint(tmp_path)
    assert b"numpy.core.multiarray" in _data_pkl(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # no numpy.core deprecation noise
        loaded = ckptguard.load(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert_same(loaded, unsafe(path))


def _data_pkl(path: Path) -> bytes:
    import zipfile

    with zipfile.ZipFile(path) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))


@pytest.mark.parametrize(
    "factory",
    [factories.state_dict, factories.namespace_checkpoint, factories.omegaconf_checkpoint,
     factories.legacy_checkpoint],
    ids=["state_dict", "namespace", "omegaconf", "legacy"],
)  # fmt: skip
def test_benign_kinds_load_identically(tmp_path: Path, factory: Any) -> None:
    path = factory(tmp_path / "ckpt.pt")
    assert_same(ckptguard.load(path), unsafe(path))


class ConfigDict(dict):  # type: ignore[type-arg]
    """A dict subclass, as config systems pickle them."""


class History(list):  # type: ignore[type-arg]
    """A list subclass."""


HERE = __name__


@pytest.mark.parametrize(
    ("value", "torch_allow", "allow", "protocol"),
    [
        (ConfigDict(lr=0.1), [ConfigDict], [f"{HERE}.ConfigDict"], 2),
        (History([1.0, 0.5]), [History], [f"{HERE}.History"], 2),
        (collections.defaultdict(list, {"a": [1, 2]}), [collections.defaultdict, list], [], 2),
        (b"\x00\x01 raw bytes", [], [], 4),
    ],
    ids=["dict-subclass", "list-subclass", "defaultdict", "protocol-4-bytes"],
)
def test_loads_what_torch_weights_only_cannot(
    tmp_path: Path, value: Any, torch_allow: list[Any], allow: list[str], protocol: int
) -> None:
    """torch's weights-only unpickler refuses these whatever is allowlisted; ckptguard's
    engine loads them identically once their globals are allowed."""
    path = tmp_path / "c.pt"
    torch.save({"x": value, "w": torch.ones(2)}, path, pickle_protocol=protocol)
    with (
        pytest.raises(pickle.UnpicklingError),
        torch.serialization.safe_globals(torch_allow),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        torch.load(path, weights_only=True)
    loaded = ckptguard.load(path, allow=allow)
    assert_same(loaded, unsafe(path))
    assert type(loaded["x"]) is type(value) and loaded["x"] == value


def test_shared_storage_is_kept(tmp_path: Path) -> None:
    base = torch.arange(12, dtype=torch.float32)
    path = tmp_path / "views.pt"
    torch.save({"base": base, "view": base[2:8].view(2, 3), "t": base.view(3, 4).t()}, path)
    loaded = ckptguard.load(path)
    assert_same(loaded, unsafe(path))
    assert shares_storage(loaded["base"], loaded["view"])
    assert shares_storage(loaded["base"], loaded["t"])


def test_exotic_tensors_load_bit_identical(tmp_path: Path) -> None:
    obj = {
        "bf16": torch.randn(3, dtype=torch.bfloat16),
        "f8": torch.randn(4).to(torch.float8_e4m3fn),
        "c64": torch.randn(2, dtype=torch.complex64),
        "sparse": torch.eye(3).to_sparse(),
        "q": torch.quantize_per_tensor(torch.randn(4), 0.1, 0, torch.qint8),
        "param": torch.nn.Parameter(torch.ones(2)),
        "nan": torch.tensor([float("nan"), -0.0]),
    }
    path = tmp_path / "exotic.pt"
    torch.save(obj, path)
    loaded = ckptguard.load(path)
    ref = unsafe(path)
    for key in ("bf16", "f8", "c64", "param", "nan"):
        assert_same(loaded[key], ref[key], key)
    assert torch.equal(loaded["sparse"].to_dense(), ref["sparse"].to_dense())
    assert torch.equal(loaded["q"].int_repr(), ref["q"].int_repr())
    assert loaded["q"].q_scale() == ref["q"].q_scale()


@pytest.mark.parametrize("mmap", [False, True])
def test_mmap_and_map_location(tmp_path: Path, mmap: bool) -> None:
    path = factories.training_checkpoint(tmp_path / "t.pt")
    for loc in (None, "cpu", torch.device("cpu"), {"cpu": "cpu"}, lambda s, _loc: s):
        assert_same(ckptguard.load(path, map_location=loc, mmap=mmap), unsafe(path))


def test_file_objects_load(tmp_path: Path) -> None:
    path = factories.training_checkpoint(tmp_path / "t.pt")
    with open(path, "rb") as fh:
        assert_same(ckptguard.load(fh), unsafe(path))
    assert_same(ckptguard.load(io.BytesIO(path.read_bytes())), unsafe(path))
    legacy = factories.legacy_checkpoint(tmp_path / "legacy.pt")
    with open(legacy, "rb") as fh:
        assert_same(ckptguard.load(fh), unsafe(legacy))


def test_user_enum_is_refused_then_loads_when_allowed(tmp_path: Path) -> None:
    path = factories.user_enum_checkpoint(tmp_path / "enum.pt")
    with pytest.raises(ckptguard.UnsafeCheckpointError) as info:
        ckptguard.load(path)
    err = info.value
    assert isinstance(err, ckptguard.CheckpointError)
    text = str(err)
    assert factories.USER_ENUM in text and "unknown" in text
    assert f"allow=[{factories.USER_ENUM!r}]" in text
    assert str(path) in text
    assert [g.qualified_name for g in err.globals] == [factories.USER_ENUM]  # type: ignore[attr-defined]
    loaded = ckptguard.load(path, allow=[factories.USER_ENUM])
    assert loaded["hparams"]["mode"] is factories.DSPMode.INFER
    assert_same(loaded, unsafe(path))


def test_policy_file_and_package_wildcard_allow(tmp_path: Path) -> None:
    path = factories.user_dataclass_checkpoint(tmp_path / "dc.pt")
    policy = tmp_path / "policy.toml"
    policy.write_text('allow = ["tests.factories.*"]\n')  # the names that module defines
    assert_same(ckptguard.load(path, policy=policy), unsafe(path))


def test_env_policy_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = factories.user_enum_checkpoint(tmp_path / "enum.pt")
    policy = tmp_path / "p.toml"
    policy.write_text(f'allow = ["{factories.USER_ENUM}"]\n')
    monkeypatch.setenv("CKPTGUARD_POLICY", str(policy))
    assert ckptguard.load(path)["hparams"]["mode"] is factories.DSPMode.INFER


@pytest.mark.parametrize("name", sorted(hostile.PAYLOADS))
@pytest.mark.parametrize("container", ["zip", "legacy"])
def test_hostile_files_are_refused_and_never_run(tmp_path: Path, name: str, container: str) -> None:
    marker = tmp_path / "PWNED"
    payload = hostile.PAYLOADS[name](marker)
    path = tmp_path / "evil.pt"
    if container == "zip":
        hostile.torch_zip_with_pickle(path, payload)
    else:
        hostile.legacy_with_pickle(path, payload)
    with pytest.raises(ckptguard.CheckpointError):
        ckptguard.load(path)
    with pytest.raises(ckptguard.CheckpointError), pytest.warns(LoadWarning):
        ckptguard.load(path, weights_only=False)
    with pytest.raises(ckptguard.CheckpointError), open(path, "rb") as fh:
        ckptguard.load(fh)
    assert not marker.exists()


def test_dangerous_global_cannot_be_allowed(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = hostile.torch_zip_with_pickle(tmp_path / "evil.pt", hostile.os_system(marker))
    for allow in (["os.system"], ["os.*"], ["posix.system"]):
        with pytest.raises(ckptguard.PolicyError, match="cannot be allowed"):
            ckptguard.load(path, allow=allow)
    with pytest.raises(ckptguard.UnsafeCheckpointError) as info:
        ckptguard.load(path)
    assert "tries to run code" in str(info.value) and "no way to allow" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("big", [False, True], ids=["in-memory", "mapped"])
def test_file_swapped_after_the_scan_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big: bool
) -> None:
    """What is loaded is what was scanned (time-of-check/use): a file replaced after the scan
    is refused, or (small files, read into memory once) the scanned bytes are what loads."""
    from ckptguard._load import _safe_load as load_module

    if big:  # over 1 MiB: scanned through a mapping, the pickle and storages read again later
        good = tmp_path / "good.pt"
        torch.save({"w": torch.arange(400_000, dtype=torch.float32)}, good)
    else:
        good = factories.state_dict(tmp_path / "good.pt")
    expected = unsafe(good)
    other = factories.training_checkpoint(tmp_path / "other.pt")
    marker = tmp_path / "PWNED"
    evil = hostile.torch_zip_with_pickle(tmp_path / "evil.pt", hostile.os_system(marker))
    real = load_module.report_for

    for replacement in (other, evil):
        target = tmp_path / "victim.pt"
        target.write_bytes(good.read_bytes())

        def swap(*args: Any, _r: Path = replacement, _t: Path = target) -> Any:
            report = real(*args)
            _t.write_bytes(_r.read_bytes())  # a concurrent writer replaces the file
            return report

        monkeypatch.setattr(load_module, "report_for", swap)
        if big:
            with pytest.raises(ckptguard.CorruptCheckpointError, match=r"not the one|truncated"):
                ckptguard.load(target)
        else:
            assert_same(ckptguard.load(target), expected)
    assert not marker.exists()


def test_no_process_wide_safe_globals_are_left_or_wiped(tmp_path: Path) -> None:
    path = factories.user_enum_checkpoint(tmp_path / "enum.pt")
    torch.serialization.add_safe_globals([argparse.Namespace])
    try:
        before = list(torch.serialization.get_safe_globals())
        ckptguard.load(path, allow=[factories.USER_ENUM])
        assert list(torch.serialization.get_safe_globals()) == before
    finally:
        torch.serialization.clear_safe_globals()


def test_concurrent_loads_keep_their_own_allow_lists(tmp_path: Path) -> None:
    path = factories.user_enum_checkpoint(tmp_path / "enum.pt")
    outcomes: dict[str, list[str]] = {"allowed": [], "default": []}
    errors: list[BaseException] = []

    def worker(kind: str) -> None:
        for _ in range(15):
            try:
                if kind == "allowed":
                    ckptguard.load(path, allow=[factories.USER_ENUM])
                    outcomes[kind].append("ok")
                else:
                    try:
                        ckptguard.load(path)
                        outcomes[kind].append("ok")
                    except ckptguard.UnsafeCheckpointError:
                        outcomes[kind].append("refused")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in ("allowed", "default") * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert outcomes["allowed"] == ["ok"] * 30
    assert outcomes["default"] == ["refused"] * 30


def test_missing_file_is_file_not_found_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        ckptguard.load(missing)


def test_lfs_pointer_is_diagnosed(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 123\n"
    )
    with pytest.raises(ckptguard.CorruptCheckpointError) as info:
        ckptguard.load(path)
    assert "git lfs pull" in str(info.value) and str(path) in str(info.value)


def test_truncated_checkpoint_is_corrupt_not_a_traceback(tmp_path: Path) -> None:
    src = factories.training_checkpoint(tmp_path / "t.pt")
    data = src.read_bytes()
    for cut in (len(data) // 3, len(data) - 30, 100):
        path = tmp_path / f"cut{cut}.pt"
        path.write_bytes(data[:cut])
        with pytest.raises(ckptguard.CorruptCheckpointError) as info:
            ckptguard.load(path)
        assert str(path) in str(info.value)


def test_torchscript_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "script.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)
    # verdict error (torch.load would hand it to torch.jit.load): refused as not loadable
    with pytest.raises(ckptguard.CheckpointError, match="TorchScript"):
        ckptguard.load(path)


def test_plain_pickle_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = factories.plain_pickle(tmp_path / "x.pkl", {"a": 1}, 2)
    with pytest.raises(ckptguard.CheckpointError, match="not a PyTorch checkpoint"):
        ckptguard.load(path)


def test_safetensors_file_loads(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    tensors = {"w": torch.randn(2, 3), "b": torch.arange(3)}
    save_file(tensors, str(path))
    loaded = ckptguard.load(path)
    assert sorted(loaded) == ["b", "w"] and all(torch.equal(loaded[k], tensors[k]) for k in tensors)


def test_weights_only_false_is_ignored_with_a_warning(tmp_path: Path) -> None:
    path = factories.state_dict(tmp_path / "s.pt")
    with pytest.warns(LoadWarning, match="weights_only=False"):
        ckptguard.load(path, weights_only=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ckptguard.load(path, weights_only=True)


def test_torch_force_weights_only_env_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = factories.state_dict(tmp_path / "s.pt")
    monkeypatch.setenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(ckptguard.UsageError, match=r"TORCH_FORCE_WEIGHTS_ONLY_LOAD"):
        ckptguard.load(path)


def test_uninstalled_module_of_an_allowed_class_is_a_clear_error(tmp_path: Path) -> None:
    path = factories.user_enum_checkpoint(tmp_path / "enum.pt")
    moved = factories.rewrite_data_pkl(
        path, tmp_path / "moved.pt", glob("tests.factories", "DSPMode"),
        glob("tests.no_such_module_xyz", "DSPMode"),
    )  # fmt: skip
    with pytest.raises(ckptguard.CheckpointError, match="not installed") as info:
        ckptguard.load(moved, allow=["tests.no_such_module_xyz.DSPMode"])
    assert "ckptguard convert" in str(info.value)


@pytest.mark.parametrize("put", [long_binput(0x7FFFFFFF), put0(4294967295)])
def test_memo_index_bomb_is_refused_before_unpickling(tmp_path: Path, put: bytes) -> None:
    """CPython's unpickler sizes its memo table by the largest PUT index: a huge index would
    make the loader allocate gigabytes, so the scan refuses it first."""
    bomb = program(EMPTY_DICT, put)
    path = hostile.torch_zip_with_pickle(tmp_path / "bomb.pt", bomb)
    with pytest.raises(ckptguard.CorruptCheckpointError, match="memo index"):
        ckptguard.load(path)


def test_whole_model_pickle_loads_when_its_classes_are_allowed(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    path = tmp_path / "model.pt"
    torch.save(model, path)
    with pytest.raises(ckptguard.UnsafeCheckpointError, match=r"torch\.nn\.modules\.conv\.Conv2d"):
        ckptguard.load(path)
    with pytest.raises(ckptguard.PolicyError, match="torch is a third-party namespace"):
        ckptguard.load(path, allow=["torch.nn.modules.*"])  # wildcards are for your own code
    loaded = ckptguard.load(
        path,
        allow=[
            "torch.nn.modules.container.Sequential",
            "torch.nn.modules.conv.Conv2d",
            "torch.nn.modules.batchnorm.BatchNorm2d",
        ],
    )
    assert type(loaded) is torch.nn.Sequential
    assert_same(loaded.state_dict(), unsafe(path).state_dict())


def test_html_page_saved_as_checkpoint_is_diagnosed(tmp_path: Path) -> None:
    path = tmp_path / "pytorch_model.bin"
    path.write_text("<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body></html>")
    with pytest.raises(ckptguard.CorruptCheckpointError, match="HTML") as info:
        ckptguard.load(path)
    assert str(path) in str(info.value)


_FUZZ_SOURCE: dict[str, bytes] = {}


def _fuzz_source() -> bytes:
    if "zip" not in _FUZZ_SOURCE:
        buf = io.BytesIO()
        torch.save({"w": torch.arange(6.0), "step": np.int64(3), "ns": argparse.Namespace(a=1)},
                   buf)  # fmt: skip
        _FUZZ_SOURCE["zip"] = buf.getvalue()
    return _FUZZ_SOURCE["zip"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), min_size=1, max_size=3))
def test_bit_flipped_checkpoints_load_or_raise_checkpoint_errors(
    flips: list[tuple[int, int]],
) -> None:
    """Damaged files either load or raise a CheckpointError naming the file: no other
    exception, no traceback from deep inside torch."""
    data = bytearray(_fuzz_source())
    for offset, mask in flips:
        data[offset % len(data)] ^= mask
    try:
        ckptguard.load(io.BytesIO(bytes(data)))
    except ckptguard.CheckpointError as exc:
        assert exc.path == "<file object>"
