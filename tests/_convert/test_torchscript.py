"""Issue 11.4: TorchScript archives get one verdict and honest advice, and ``ckptguard convert``
extracts their parameters and buffers without compiling or running any of their code."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import ckptguard
from ckptguard import CheckpointError, UnsafeCheckpointError
from ckptguard._cli import main
from ckptguard._verdict import FileVerdict, Severity
from tests import pickleasm as A
from tests._convert import ts_models as M
from tests.subproc import REPO, run_python

_HINT = "to get the weights without running code: ckptguard convert"


def _scripted(path: Path) -> Path:
    torch.jit.script(M.make()).save(str(path))
    return path


def _traced(path: Path) -> Path:
    torch.jit.trace(M.make(), M.example()).save(str(path))
    return path


def _linear(path: Path) -> Path:
    torch.jit.script(torch.nn.Linear(3, 2)).save(str(path))
    return path


class _Lists(torch.nn.Module):
    """Typed lists in its attributes: torch.jit.save writes torch.jit._pickle helpers."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = [1, 2, 3]
        self.w = torch.nn.Parameter(torch.ones(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.w * len(self.sizes)


def _lists(path: Path) -> Path:
    torch.jit.script(_Lists()).save(str(path))
    return path


MAKERS: dict[str, Callable[[Path], Path]] = {
    "scripted": _scripted, "traced": _traced, "linear": _linear, "typed-lists": _lists,
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_every_torchscript_archive_gets_one_verdict_and_advice(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = MAKERS[kind](tmp_path / f"{kind}.jit")
    report = ckptguard.scan(path)
    f = report.files[0]
    assert f.format == "torchscript"
    assert f.verdict is FileVerdict.DANGEROUS
    (ts,) = [x for x in f.findings if x.rule == "torch-torchscript"]
    assert ts.severity is Severity.DANGEROUS
    assert "it is code" in (f.hint or "")
    assert f"{_HINT} {path} weights.pt" in (f.hint or "")
    # no global is dangerous: the torch.jit._pickle helpers are identity functions
    assert not [g for g in f.globals if g.verdict.value == "dangerous"], f.globals
    assert main(["scan", str(path)]) == 1
    text = capsys.readouterr().out
    assert "--allow" not in text and "allow=" not in text
    assert _HINT in text
    sarif = tmp_path / "out.sarif"
    assert main(["scan", str(path), "--sarif", str(sarif), "-q"]) == 1
    capsys.readouterr()
    messages = [r["message"]["text"] for r in json.loads(sarif.read_text())["runs"][0]["results"]]
    assert messages and not any("--allow" in m for m in messages)
    # allowing every class changes nothing: no step suggests it
    names = [g.qualified_name for g in f.globals if g.verdict.value == "unknown"]
    again = ckptguard.scan(path, allow=names).files[0]
    assert again.verdict is FileVerdict.DANGEROUS
    assert again.hint == f.hint
    with pytest.raises(UnsafeCheckpointError) as info:
        ckptguard.load(path, allow=names)
    assert _HINT in (info.value.hint or "")
    assert "allow=" not in (info.value.hint or "")


def test_the_reason_is_the_same_for_every_archive(tmp_path: Path) -> None:
    messages = {
        x.message
        for kind, make in MAKERS.items()
        for x in ckptguard.scan(make(tmp_path / f"{kind}.jit")).files[0].findings
        if x.severity is not Severity.INFO
    }
    assert len(messages) == 1, messages


@pytest.mark.parametrize("kind", sorted(MAKERS))
@pytest.mark.parametrize("to", ["pt", "safetensors"])
def test_convert_extracts_the_state_dict_torch_jit_load_returns(
    tmp_path: Path, kind: str, to: str
) -> None:
    src = MAKERS[kind](tmp_path / f"{kind}.jit")
    before = src.read_bytes()
    dst = tmp_path / f"weights.{to}"
    ckptguard.convert(src, dst, to=to)
    assert src.read_bytes() == before
    want = torch.jit.load(str(src)).state_dict()
    # safetensors: read back into the state dict by ckptguard.load (its metadata keeps order)
    got = torch.load(dst, weights_only=True) if to == "pt" else ckptguard.load(dst)
    assert list(got) == list(want)
    for k, v in want.items():
        g = got[k]
        assert (g.dtype, g.shape, g.stride()) == (v.dtype, v.shape, v.stride()), k
        raw = g.contiguous().reshape(-1).view(torch.uint8)
        assert raw.equal(v.contiguous().reshape(-1).view(torch.uint8)), k  # bit-identical
        assert not g.requires_grad
    if kind in ("scripted", "traced") and to == "pt":  # tied weights stay one tensor
        assert got["emb.weight"].data_ptr() == got["out.weight"].data_ptr()


def test_convert_runs_no_torchscript_and_no_torch_reader(tmp_path: Path) -> None:
    """The whole conversion in a child where torch.jit.load, torch.load and every torch reader
    fail: nothing of the archive is compiled or run."""
    src = _scripted(tmp_path / "m.jit")
    code = (
        "import sys, torch, torch.jit, torch.serialization\n"
        "def boom(*a, **k):\n    raise SystemExit('a torch reader ran')\n"
        "torch.jit.load = torch.load = torch.serialization.load = boom\n"
        "torch._C.PyTorchFileReader = boom\n"
        "torch._C.import_ir_module = torch._C.import_ir_module_from_buffer = boom\n"
        "import ckptguard\n"
        "ckptguard.convert(sys.argv[1], sys.argv[2])\n"
    )
    proc = run_python("-c", code, str(src), str(tmp_path / "w.pt"), cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    got = torch.load(tmp_path / "w.pt", weights_only=True)
    assert list(got) == list(torch.jit.load(str(src)).state_dict())


def test_convert_cli_on_torchscript(tmp_path: Path) -> None:
    src = _traced(tmp_path / "model.jit")
    proc = run_python("-m", "ckptguard", "convert", str(src), str(tmp_path / "w.pt"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "torchscript -> pt" in proc.stdout


# ---------------------------------------------------------------------- hostile archives


def _rewrite(src: Path, dst: Path, change: Callable[[str, bytes], bytes | None]) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)
    return dst


def _system(marker: Path) -> bytes:
    return A.proto(2) + A.glob("os", "system") + A.ustr(f"touch {marker}") + A.TUPLE1 + A.REDUCE


def test_code_without_constants_pkl_runs_data_pkl_under_torch_load(tmp_path: Path) -> None:
    """torch.load dispatches to torch.jit.load only for constants.pkl: an archive with code/
    and no constants.pkl is unpickled by Python. ckptguard scans it as TorchScript and as the
    pickle it is: dangerous, and neither load nor convert runs it."""
    marker = tmp_path / "PWNED"
    src = _linear(tmp_path / "m.jit")

    def change(name: str, data: bytes) -> bytes | None:
        if name.endswith("/constants.pkl"):
            return None
        if name.endswith("/data.pkl"):
            return _system(marker) + A.STOP
        return data

    evil = _rewrite(src, tmp_path / "evil.jit", change)
    code = "import sys, torch\ntorch.load(sys.argv[1], weights_only=False)\n"
    run_python("-c", code, str(evil), cwd=tmp_path)
    assert marker.exists(), "the payload did not run under stock torch.load"
    marker.unlink()
    f = ckptguard.scan(evil).files[0]
    assert f.verdict is FileVerdict.DANGEROUS
    assert any(g.qualified_name == "os.system" for g in f.globals)
    assert _HINT not in (f.hint or "")  # convert is not offered: it refuses
    with pytest.raises(UnsafeCheckpointError):
        ckptguard.convert(evil, tmp_path / "w.pt")
    with pytest.raises(UnsafeCheckpointError):
        ckptguard.load(evil)
    assert not marker.exists()
    assert not (tmp_path / "w.pt").exists()


def _module_pickle(cls: str, state: bytes) -> bytes:
    module, name = cls.rsplit(".", 1)
    return A.proto(2) + A.glob(module, name) + A.EMPTY_TUPLE + A.NEWOBJ + state + A.BUILD + A.STOP


_LINEAR = "__torch__.torch.nn.modules.linear.Linear"


def _tensor(key: str, numel: int, size: int | None = None) -> bytes:
    size = numel if size is None else size
    pid = (
        A.MARK + A.ustr("storage") + A.glob("torch", "FloatStorage") + A.ustr(key)
        + A.ustr("cpu") + A.binint1(numel) + A.TUPLE
    )  # fmt: skip
    return (
        A.glob("torch._utils", "_rebuild_tensor_v2") + A.MARK + pid + A.BINPERSID
        + A.binint1(0) + A.binint1(size) + A.TUPLE1 + A.binint1(1) + A.TUPLE1 + A.NEWTRUE
        + A.glob("collections", "OrderedDict") + A.EMPTY_TUPLE + A.REDUCE + A.TUPLE + A.REDUCE
    )  # fmt: skip


_WEIRD: dict[str, bytes] = {
    # the parameter 'weight' is a string, 'bias' a call of a vetted global
    "parameter-not-a-tensor": _module_pickle(
        _LINEAR,
        A.EMPTY_DICT
        + A.MARK
        + A.ustr("weight")
        + A.ustr("x")
        + A.ustr("bias")
        + A.glob("collections", "OrderedDict")
        + A.EMPTY_TUPLE
        + A.REDUCE
        + A.ustr("training")
        + A.NEWTRUE
        + A.SETITEMS,
    ),
    # a module that is its own submodule (memo cycle)
    "module-inside-itself": (
        A.proto(2)
        + A.glob("__torch__.torch.nn.modules.linear", "Linear")
        + A.EMPTY_TUPLE
        + A.NEWOBJ
        + A.binput(0)
        + A.EMPTY_DICT
        + A.MARK
        + A.ustr("weight")
        + _tensor("0", 6)
        + A.ustr("bias")
        + A.NONE
        + A.ustr("me")
        + A.binget(0)
        + A.SETITEMS
        + A.BUILD
        + A.STOP
    ),
    # a class the code does not declare
    "undeclared-class": _module_pickle("__torch__.evil.Thing", A.EMPTY_DICT),
    # built with REDUCE and arguments instead of NEWOBJ()
    "not-newobj": (
        A.proto(2)
        + A.glob("__torch__.torch.nn.modules.linear", "Linear")
        + A.ustr("x")
        + A.TUPLE1
        + A.REDUCE
        + A.EMPTY_DICT
        + A.BUILD
        + A.STOP
    ),
    # a declared parameter is missing
    "missing-parameter": _module_pickle(_LINEAR, A.EMPTY_DICT),
    # a storage the archive does not hold
    "missing-storage": _module_pickle(
        _LINEAR,
        A.EMPTY_DICT
        + A.MARK
        + A.ustr("weight")
        + _tensor("99", 6)
        + A.ustr("bias")
        + A.NONE
        + A.SETITEMS,
    ),
    # a view past the end of its storage (the pickle's element count is the record's)
    "view-past-storage": _module_pickle(
        _LINEAR,
        A.EMPTY_DICT
        + A.MARK
        + A.ustr("weight")
        + _tensor("0", 6, size=60)
        + A.ustr("bias")
        + A.NONE
        + A.SETITEMS,
    ),
    # the top level is a plain dict of tensors, not a module
    "not-a-module": A.proto(2) + A.EMPTY_DICT + A.ustr("w") + _tensor("0", 6) + A.SETITEM + A.STOP,
}


@pytest.mark.parametrize("name", sorted(_WEIRD))
def test_weird_data_pkl_is_refused_by_convert(tmp_path: Path, name: str) -> None:
    src = _linear(tmp_path / "m.jit")

    def change(member: str, data: bytes) -> bytes:
        return _WEIRD[name] if member.endswith("/data.pkl") else data

    weird = _rewrite(src, tmp_path / "weird.jit", change)
    with pytest.raises(CheckpointError) as info:
        ckptguard.convert(weird, tmp_path / "w.pt")
    assert "internal" not in str(info.value)  # refused for what it is, before writing
    assert not (tmp_path / "w.pt").exists()
    with pytest.raises(CheckpointError):
        ckptguard.load(weird)


def _code_change(src: Path, dst: Path, edit: Callable[[str], str]) -> Path:
    def change(member: str, data: bytes) -> bytes:
        if "/code/" in member and member.endswith(".py"):
            return edit(data.decode()).encode()
        return data

    return _rewrite(src, dst, change)


def test_a_module_with_its_own_setstate_is_refused(tmp_path: Path) -> None:
    """A scripted __setstate__ runs when torch.jit.load rebuilds the module: its weights are
    what that code makes of the state, which only running it can tell."""
    src = _linear(tmp_path / "m.jit")

    def edit(text: str) -> str:
        return text + "  def __setstate__(self: __torch__.X, state: Tuple[Tensor]) -> None:\n"

    bad = _code_change(src, tmp_path / "s.jit", edit)
    with pytest.raises(CheckpointError, match="__setstate__"):
        ckptguard.convert(bad, tmp_path / "w.pt")


def test_quantized_module_is_refused_not_guessed(tmp_path: Path) -> None:
    q = torch.ao.nn.quantized.Linear(3, 2)
    path = tmp_path / "q.jit"
    torch.jit.script(q).save(str(path))
    assert ckptguard.scan(path).files[0].verdict is FileVerdict.DANGEROUS
    with pytest.raises(CheckpointError):
        ckptguard.convert(path, tmp_path / "w.pt")
    assert not (tmp_path / "w.pt").exists()


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: t.replace(
            '__parameters__ = ["weight", "bias", ]', '__parameters__ = ["weight", ]'
        ),
        lambda t: t.replace('__parameters__ = ["weight", "bias", ]', "__parameters__ = []").replace(
            "__buffers__ = []", '__buffers__ = ["weight", "bias", ]'
        ),
    ],
    ids=["bias-undeclared", "parameters-as-buffers"],
)
def test_code_only_says_which_attributes_are_state(
    tmp_path: Path, edit: Callable[[str], str]
) -> None:
    """Whatever the code claims, only tensors of the archive come out, by name."""
    src = _linear(tmp_path / "m.jit")
    bad = _code_change(src, tmp_path / "e.jit", edit)
    ckptguard.convert(bad, tmp_path / "w.pt")
    got = torch.load(tmp_path / "w.pt", weights_only=True)
    want = torch.jit.load(str(src)).state_dict()
    assert set(got) <= set(want)
    for k, v in got.items():
        assert torch.equal(v, want[k])


def test_code_that_is_not_text_or_declares_a_class_twice_is_refused(tmp_path: Path) -> None:
    src = _linear(tmp_path / "m.jit")
    for i, edit in enumerate([lambda t: t + "\udcff", lambda t: t + "\n" + t]):

        def change(member: str, data: bytes, edit: Callable[[str], str] = edit) -> bytes:
            if "/code/" in member and member.endswith(".py"):
                return edit(data.decode()).encode("utf-8", "surrogateescape")
            return data

        bad = _rewrite(src, tmp_path / f"b{i}.jit", change)
        with pytest.raises(CheckpointError):
            ckptguard.convert(bad, tmp_path / "w.pt")


def test_torchscript_in_a_buffer_is_scanned_alike(tmp_path: Path) -> None:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), buf)
    path = tmp_path / "b.pt"
    path.write_bytes(buf.getvalue())
    assert ckptguard.scan(path).files[0].verdict is FileVerdict.DANGEROUS


def test_python_in_the_code_files_is_never_run(tmp_path: Path) -> None:
    """The code members are read for two kinds of lines only: a payload in them stays text."""
    src = _linear(tmp_path / "m.jit")
    marker = tmp_path / "PWNED"
    payload = f"import os\nos.system('touch {marker}')\nexec('open({str(marker)!r}, \"w\")')\n"

    def edit(text: str) -> str:
        return payload + text + payload

    evil = _code_change(src, tmp_path / "p.jit", edit)
    ckptguard.convert(evil, tmp_path / "w.pt")
    got = torch.load(tmp_path / "w.pt", weights_only=True)
    want = torch.jit.load(str(src)).state_dict()
    assert list(got) == list(want)
    assert not marker.exists()


def test_in_place_leaves_torchscript_as_it_is_and_says_why(tmp_path: Path) -> None:
    src = _linear(tmp_path / "m.jit")
    before = src.read_bytes()
    from ckptguard._convert._inplace import convert_in_place
    from ckptguard._policy import default_policy

    (outcome,) = convert_in_place(str(tmp_path), policy=default_policy())
    assert outcome.status == "unchanged"
    assert "already loads" not in outcome.message
    assert f"ckptguard convert {src} weights.pt" in outcome.message
    assert src.read_bytes() == before
    assert not (tmp_path / "m.jit.bak").exists()
