"""Issue 11.5: ckptguard's errors keep torch.load's handlers working, and a valid file that
fails for a reason of this machine raises torch's own error, never "corrupt"."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

import ckptguard
from ckptguard import CorruptCheckpointError, UnsafeCheckpointError
from ckptguard._errors import CheckpointError, Error, PickleError

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a CPU-only machine")


def test_unsafe_is_an_unpickling_error_and_corrupt_a_runtime_error() -> None:
    assert issubclass(UnsafeCheckpointError, pickle.UnpicklingError)
    assert issubclass(CorruptCheckpointError, RuntimeError)
    assert issubclass(PickleError, RuntimeError)
    for cls in (UnsafeCheckpointError, CorruptCheckpointError, PickleError):
        assert issubclass(cls, CheckpointError)
        assert issubclass(cls, Error)
    assert not issubclass(UnsafeCheckpointError, RuntimeError)


def test_torch_load_handlers_catch_a_refusal(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    # a pickle of os.system: refused before anything runs
    path.write_bytes(b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueq\x00\x85R.")
    with pytest.raises(pickle.UnpicklingError) as info:
        ckptguard.load(path)
    assert isinstance(info.value, UnsafeCheckpointError)
    assert "os.system" in str(info.value)
    broken = tmp_path / "broken.pt"
    torch.save({"w": torch.zeros(2)}, broken)
    broken.write_bytes(broken.read_bytes()[:-40])
    with pytest.raises(RuntimeError) as rinfo:
        ckptguard.load(broken)
    assert isinstance(rinfo.value, CorruptCheckpointError)


@pytest.mark.parametrize(
    "err",
    [
        CorruptCheckpointError("bad bytes", path="/x/m.pt", hint="ckptguard scan /x/m.pt"),
        UnsafeCheckpointError("needs os.system", path="m.pt", hint="do not", format="pickle"),
        PickleError("truncated", offset=7),
    ],
)
def test_errors_pickle_and_keep_their_diagnostics(err: CheckpointError) -> None:
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is type(err)
    assert (again.problem, again.path, again.hint, again.format) == (
        err.problem, err.path, err.hint, err.format,
    )  # fmt: skip
    assert str(again) == str(err) == err.diagnostics()
    if isinstance(err, PickleError):
        assert isinstance(again, PickleError)
        assert again.offset == 7


def _on_cuda(path: Path, legacy: bool) -> Path:
    """A valid checkpoint whose storage was saved on 'cuda:0' (crafted without CUDA: the
    location string is the only difference torch.save makes)."""
    src = path.with_suffix(".cpu")
    torch.save({"w": torch.arange(3.0)}, src, _use_new_zipfile_serialization=not legacy)
    old, new = b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"
    if legacy:
        data = src.read_bytes()
        assert data.count(old) == 1
        path.write_bytes(data.replace(old, new))
        return path
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w") as zout:
        for info in zin.infolist():
            member = zin.read(info)
            if info.filename.endswith("/data.pkl"):
                assert member.count(old) == 1
                member = member.replace(old, new)
            zout.writestr(info, member)
    return path


def _raised(fn: Any, *args: Any, **kwargs: Any) -> BaseException:
    with pytest.raises(Exception) as info:
        fn(*args, **kwargs)
    return info.value


@needs_no_cuda
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("how", ["path", "file", "mmap"])
def test_cuda_storages_on_a_cpu_machine_raise_torchs_error(
    tmp_path: Path, legacy: bool, how: str
) -> None:
    path = _on_cuda(tmp_path / "cuda.pt", legacy)
    report = ckptguard.scan(path)
    assert report.files[0].verdict.value == "safe"  # a valid file
    kwargs = {"mmap": True} if how == "mmap" else {}
    if how == "file":
        with path.open("rb") as f:
            ours = _raised(ckptguard.load, f)
        with path.open("rb") as f:
            theirs = _raised(torch.load, f, weights_only=False)
    else:
        ours = _raised(ckptguard.load, path, **kwargs)
        theirs = _raised(torch.load, path, weights_only=False, **kwargs)
    assert not isinstance(ours, CheckpointError)
    assert type(ours) is type(theirs)
    assert str(ours) == str(theirs)
    # and with map_location it loads, as under torch.load
    got = ckptguard.load(path, map_location="cpu")
    assert torch.equal(got["w"], torch.arange(3.0))


@needs_no_cuda
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_map_location_to_a_missing_device_raises_torchs_error(tmp_path: Path, legacy: bool) -> None:
    path = tmp_path / "cpu.pt"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=not legacy)
    ours = _raised(ckptguard.load, path, map_location="cuda:0")
    theirs = _raised(torch.load, path, weights_only=False, map_location="cuda:0")
    assert type(ours) is type(theirs)
    assert str(ours) == str(theirs)


def test_a_map_location_callable_raising_propagates_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "cpu.pt"
    torch.save({"w": torch.ones(2)}, path)

    class Mine(Exception):
        pass

    def where(storage: Any, location: str) -> Any:
        raise Mine(location)

    assert type(_raised(torch.load, path, weights_only=False, map_location=where)) is Mine
    err = _raised(ckptguard.load, path, map_location=where)
    assert type(err) is Mine
    assert str(err) == "cpu"


@pytest.mark.parametrize("as_str", [True, False])
def test_mmap_on_a_legacy_file_raises_torchs_error(tmp_path: Path, as_str: bool) -> None:
    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    target: Any = str(path) if as_str else path
    ours = _raised(ckptguard.load, target, mmap=True)
    theirs = _raised(torch.load, target, weights_only=False, mmap=True)
    assert type(ours) is type(theirs) is RuntimeError
    assert str(ours) == str(theirs)


@pytest.mark.parametrize("kind", ["plain.npy", "object.npy", "mixed.npz"])
def test_the_numpy_hint_is_advice_that_works(tmp_path: Path, kind: str) -> None:
    """ckptguard.load refuses numpy files (torch.load cannot read them either); the hint names
    the numpy.load call that reads this file, which is allow_pickle=True for object arrays."""
    import numpy as np

    path = tmp_path / kind
    objects = np.array([1, "a", None], dtype=object)
    if kind == "plain.npy":
        np.save(path, np.arange(3))
    elif kind == "object.npy":
        np.save(path, objects, allow_pickle=True)
    else:
        np.savez(path, a=np.arange(3), b=objects)
    with pytest.raises(CheckpointError) as info:
        ckptguard.load(path)
    hint = info.value.hint or ""
    allow = kind == "plain.npy"
    assert f"allow_pickle={not allow}" in hint
    data = np.load(path, allow_pickle=not allow)
    arrays = [data[k] for k in data.files] if kind.endswith(".npz") else [data]
    assert arrays
    if not allow:  # what the old hint said fails on these files
        with pytest.raises(ValueError, match="allow_pickle"):
            loaded = np.load(path, allow_pickle=False)
            _ = [loaded[k] for k in loaded.files] if kind.endswith(".npz") else loaded


def test_a_global_the_scan_did_not_approve_stays_an_unsafe_refusal() -> None:
    """find_class refuses with UnsafeCheckpointError, which is now also an UnpicklingError:
    the loader's handler for the unpickler's own errors must not turn it into 'corrupt'."""
    from ckptguard._load._container import Request, _unpickle
    from ckptguard._load._engine import build_unpickler

    req = Request(
        name="f.pt", source=None, extracted=None, approved={},  # type: ignore[arg-type]
        map_location=None, mmap_path=None, load_args={},
    )  # fmt: skip
    cls = build_unpickler({}, path="f.pt", overrides=())
    data = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueq\x00\x85R."
    with pytest.raises(UnsafeCheckpointError, match="did not approve"):
        _unpickle(req, data, "object pickle", cls)
