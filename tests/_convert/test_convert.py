"""convert: every benign kind loads with stock torch.load in a fresh process; hostile is refused."""

from __future__ import annotations

import argparse
import enum
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ckptguard import UnsafeCheckpointError, convert
from ckptguard._errors import ConvertError
from tests import factories as F
from tests.pickleasm import REDUCE, TUPLE1, TUPLE2, binunicode, glob, program, sglobal, system, ustr

CHILD = Path(__file__).with_name("child_load.py")


def flatten(o: Any, path: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Tensors and numpy arrays of the original object, by the child's path scheme."""
    out = {} if out is None else out
    if isinstance(o, (torch.Tensor, np.ndarray)):
        out[path] = o
    elif isinstance(o, dict):
        for k, v in o.items():
            flatten(v, f"{path}/{k}", out)
    elif isinstance(o, (list, tuple)):
        for i, v in enumerate(o):
            flatten(v, f"{path}/{i}", out)
    elif isinstance(o, argparse.Namespace):
        flatten(vars(o), path, out)
    return out


def load_fresh(tmp: Path, files: list[Path]) -> tuple[list[dict[str, torch.Tensor]], list[Any]]:
    out_dir = tmp / "child"
    out_dir.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-I", str(CHILD), str(out_dir), *map(str, files)],
        cwd=out_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    plains = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith(("{", "["))]
    flats = [torch.load(out_dir / f"{i}.flat.pt") for i in range(len(files))]
    return flats, plains


def same_tensor(orig: Any, new: torch.Tensor) -> None:
    if isinstance(orig, np.ndarray):
        orig = torch.from_numpy(orig)
    assert new.dtype == orig.dtype
    assert new.shape == orig.shape
    if orig.is_sparse:
        assert new.is_sparse
        assert torch.equal(new.to_dense(), orig.to_dense())
        return
    assert new.stride() == orig.stride()
    if orig.is_quantized:
        assert torch.equal(new.int_repr(), orig.int_repr())
        assert new.q_scale() == orig.q_scale() and new.q_zero_point() == orig.q_zero_point()
        return
    if orig.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        assert torch.equal(new.view(torch.uint8), orig.view(torch.uint8))
        return
    assert torch.equal(new, orig)


class Mode(enum.Enum):
    A = "a"


@pytest.fixture(scope="module")
def fairseq_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A fairseq-style file pickled with a stand-in fairseq.data.dictionary.Dictionary."""
    root = tmp_path_factory.mktemp("fairseq")
    pkg = root / "pkgs" / "fairseq" / "data"
    pkg.mkdir(parents=True)
    (root / "pkgs" / "fairseq" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "dictionary.py").write_text(
        textwrap.dedent("""
        class Dictionary:
            def __init__(self):
                self.symbols = ["<s>", "<pad>", "hello"]
                self.count = [1, 1, 5]
                self.indices = {s: i for i, s in enumerate(self.symbols)}
    """)
    )
    sys.path.insert(0, str(root / "pkgs"))
    try:
        from fairseq.data.dictionary import Dictionary  # type: ignore[import-not-found]

        obj = {
            "args": argparse.Namespace(arch="hubert", lr=[0.0005], mode=Mode.A),
            "model": F._model().state_dict(),
            "task_state": {"dictionaries": [Dictionary()]},
            "extra_state": {"num_updates": 400, "val_loss": np.float64(1.5)},
        }
        path = root / "fairseq.pt"
        torch.save(obj, path)
    finally:
        sys.path.remove(str(root / "pkgs"))
        for name in [m for m in sys.modules if m.startswith("fairseq")]:
            del sys.modules[name]
    return path, obj


def exotic(path: Path) -> tuple[Path, dict[str, Any]]:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.quantize_per_tensor(torch.randn(5), 0.1, 3, torch.quint8)
    obj = {
        "bf16": torch.randn(3, 2).to(torch.bfloat16),
        "f8": torch.randn(7).to(torch.float8_e4m3fn),
        "c64": torch.randn(3, dtype=torch.complex64),
        "sparse": torch.randn(4, 4).relu().to_sparse(),
        "q": q,
        "base": base,
        "view": base[1:, ::2],
        "t": base.t(),
        "param": torch.nn.Parameter(torch.randn(3)),
        "u32": torch.arange(5).to(torch.uint32),
    }
    torch.save(obj, path)
    return path, obj


def test_benign_kinds_load_with_stock_torch_in_a_fresh_process(
    tmp_path: Path, fairseq_file: tuple[Path, Any]
) -> None:
    sources: list[tuple[Path, Any]] = []
    p = F.training_checkpoint(tmp_path / "training.pt")
    sources.append((p, torch.load(p, weights_only=False)))
    p = F.omegaconf_checkpoint(tmp_path / "omega.pt")
    sources.append((p, torch.load(p, weights_only=False)))
    p = F.user_enum_checkpoint(tmp_path / "enum.pt")
    sources.append((p, torch.load(p, weights_only=False)))
    p = F.user_dataclass_checkpoint(tmp_path / "dc.pt")
    sources.append((p, torch.load(p, weights_only=False)))
    p = F.legacy_checkpoint(tmp_path / "legacy.pt")
    sources.append((p, torch.load(p, weights_only=False)))
    p = F.lightning_checkpoint(tmp_path, with_enum=True)
    sources.append((p, torch.load(p, weights_only=False)))
    sources.append(exotic(tmp_path / "exotic.pt"))
    sources.append(fairseq_file)

    outs = []
    for src, _ in sources:
        before = src.read_bytes()
        dst = tmp_path / f"{src.stem}.converted.pt"
        convert(src, dst)
        assert src.read_bytes() == before  # SRC untouched
        outs.append(dst)
    flats, plains = load_fresh(tmp_path, outs)
    for (src, orig), flat, plain in zip(sources, flats, plains, strict=True):
        expected = flatten(orig)
        assert expected, src
        for path, tensor in expected.items():
            assert path in flat, f"{src.name}: {path} missing"
            same_tensor(tensor, flat[path])
        if src.name == "enum.pt":
            assert plain["hparams"]["mode"] == F.DSPMode.INFER.value
            assert plain["__ckptguard__"]["types"]["/hparams/mode"]["type"] == F.USER_ENUM
        if src.name == "training.pt":
            assert plain["step"] == 120 and plain["val_loss"] == 0.25
            assert plain["numpy_rng"][0] == "MT19937"
        if src.name == "omega.pt":
            assert plain["cfg"] == {
                "model": {"hidden": 32, "act": "relu", "dropout": 0.1},
                "data": {"paths": ["a", "b"]},
            }
        if src.name == "fairseq.pt":
            assert plain["args"]["arch"] == "hubert" and plain["args"]["mode"] == "a"
            d = plain["task_state"]["dictionaries"][0]
            assert d["symbols"] == ["<s>", "<pad>", "hello"]
            types = plain["__ckptguard__"]["types"]
            assert types["/task_state/dictionaries/0"]["type"] == (
                "fairseq.data.dictionary.Dictionary"
            )
        if src.suffix == ".ckpt":  # Lightning with a user Enum in hyper-parameters
            assert plain["hyper_parameters"]["mode"] == F.DSPMode.TRAIN_INFER.value
    exotic_flat = flats[6]
    # views keep sharing their storage
    shared = {exotic_flat[k].untyped_storage().data_ptr() for k in ("/base", "/view", "/t")}
    assert len(shared) == 1


def test_numpy_arrays_become_tensors_of_the_same_dtype(tmp_path: Path) -> None:
    arrays = {
        n: np.arange(6, dtype=n).reshape(2, 3)
        for n in ("int8", "uint16", "int32", "int64", "float16", "float32", "float64", "complex64")
    }
    arrays["bool"] = np.array([True, False])
    arrays["fortran"] = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    src = tmp_path / "np.pt"
    torch.save(arrays, src)
    convert(src, tmp_path / "out.pt")
    out = torch.load(tmp_path / "out.pt")
    for k, a in arrays.items():
        assert out[k].dtype == torch.from_numpy(a).dtype
        assert np.array_equal(out[k].numpy(), a)


_TOUCH = "touch MARKER"
HOSTILE = {
    "os_system": system(_TOUCH),
    "eval": program(glob("builtins", "eval"), binunicode("open('MARKER','w')"), TUPLE1, REDUCE),
    "stack_global": program(sglobal("os", "system"), ustr(_TOUCH), TUPLE1, REDUCE, protocol=4),
    # getattr(builtins.__dict__, "eval")(...): a callable computed by a call
    "stack_global_computed": program(
        sglobal("builtins", "getattr")
        + sglobal("builtins", "__dict__")
        + ustr("eval")
        + TUPLE2
        + REDUCE
        + ustr(_TOUCH)
        + TUPLE1
        + REDUCE,
        protocol=4,
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("in_zip", [False, True])
def test_hostile_files_are_refused_and_nothing_is_written(
    tmp_path: Path, name: str, in_zip: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    payload = HOSTILE[name]
    src = tmp_path / "evil.pt"
    if in_zip:
        F.rewrite_data_pkl(F.state_dict(tmp_path / "ok.pt"), src, b"", b"")
        import zipfile

        with zipfile.ZipFile(src) as z:
            members = {i.filename: z.read(i) for i in z.infolist()}
        with zipfile.ZipFile(src, "w") as z:
            for n, data in members.items():
                z.writestr(n, payload if n.endswith("data.pkl") else data)
    else:
        src.write_bytes(payload)
    dst = tmp_path / "out.pt"
    with pytest.raises(UnsafeCheckpointError) as info:
        convert(src, dst)
    assert not dst.exists()
    assert not (tmp_path / "MARKER").exists()
    # the refusal carries the scan behind it, as load's does
    assert info.value.report is not None and info.value.report.verdict.value == "dangerous"
    assert info.value.globals or info.value.findings
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ckptguard")] == []


def test_existing_destination_needs_force(tmp_path: Path) -> None:
    src = F.user_enum_checkpoint(tmp_path / "a.pt")
    dst = tmp_path / "b.pt"
    dst.write_bytes(b"keep me")
    from ckptguard import UsageError

    with pytest.raises(UsageError, match="exists"):
        convert(src, dst)
    assert dst.read_bytes() == b"keep me"
    convert(src, dst, force=True)
    assert torch.load(dst)["hparams"]["mode"] == "infer"
    with pytest.raises(UsageError, match="source"):
        convert(src, src, force=True)


def test_unexpressible_values_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "obj.pt"
    torch.save({"a": np.array(["x", "y"])}, src)  # a unicode array has no tensor form
    with pytest.raises(ConvertError, match="no tensor form"):
        convert(src, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_truncated_source_is_an_error_and_nothing_is_written(tmp_path: Path) -> None:
    from ckptguard import CorruptCheckpointError

    good = F.state_dict(tmp_path / "good.pt").read_bytes()
    src = tmp_path / "cut.pt"
    src.write_bytes(good[: len(good) // 2])
    with pytest.raises(CorruptCheckpointError):
        convert(src, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


@pytest.mark.parametrize("prefix", ["a", "a_much_longer_archive_name_than_torch_writes"])
@pytest.mark.parametrize("compress", [False, True])
def test_other_archive_layouts_copy_correctly(tmp_path: Path, prefix: str, compress: bool) -> None:
    """Short/long member names (record gaps too small/large for one copy) and deflated records."""
    import zipfile

    orig = {f"t{i}": torch.randn(50 + i) for i in range(6)}
    orig["unused_view"] = orig["t0"][3:]
    torch.save(orig, tmp_path / "src0.pt")
    src = tmp_path / "src.pt"
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(tmp_path / "src0.pt") as zin, zipfile.ZipFile(src, "w", mode) as zout:
        for info in zin.infolist():
            zout.writestr(prefix + "/" + info.filename.split("/", 1)[1], zin.read(info))
    convert(src, tmp_path / "out.pt")
    out = torch.load(tmp_path / "out.pt")
    for k, t in orig.items():
        same_tensor(t, out[k])
    assert out["unused_view"].untyped_storage().data_ptr() == out["t0"].untyped_storage().data_ptr()
