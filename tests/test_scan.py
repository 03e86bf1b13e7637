"""End-to-end scans of real checkpoints generated at test time (ckptguard._scan + public API)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ckptguard
from ckptguard import FileVerdict, Verdict
from tests import factories as F


@pytest.fixture(scope="module")
def ckdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ckpts")


@pytest.fixture(scope="module")
def lightning_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("lightning")
    return {
        "plain": F.lightning_checkpoint(tmp, with_enum=False),
        "enum": F.lightning_checkpoint(tmp, with_enum=True),
    }


def _one(path: Path, **kw: object) -> ckptguard.FileReport:
    report = ckptguard.scan(path, **kw)  # type: ignore[arg-type]
    assert len(report.files) == 1
    return report.files[0]


def _explain(rep: ckptguard.FileReport) -> str:
    lines = [f"{rep.path}: {rep.format} {rep.verdict}"]
    lines += [f"  {g.qualified_name}: {g.verdict} ({g.reason})" for g in rep.globals]
    lines += [f"  {f.rule} {f.severity}: {f.message}" for f in rep.findings]
    return "\n".join(lines)


BENIGN = {
    "state_dict": lambda d: F.state_dict(d / "sd.pt"),
    "training_p2": lambda d: F.training_checkpoint(d / "train2.pt", protocol=2),
    "training_p4": lambda d: F.training_checkpoint(d / "train4.pt", protocol=4),
    "training_numpy1_names": F.numpy1_training_checkpoint,
    "omegaconf": lambda d: F.omegaconf_checkpoint(d / "omega.pt"),
    "namespace": lambda d: F.namespace_checkpoint(d / "ns.pt"),
    "legacy": lambda d: F.legacy_checkpoint(d / "legacy.pt"),
    "plain_pickle_p0": lambda d: F.plain_pickle(d / "p0.pkl", {"a": [1, 2.5, "x"]}, 0),
    "plain_pickle_p5": lambda d: F.plain_pickle(d / "p5.pkl", {"a": {1, 2}, "b": b"xy"}, 5),
    "numpy_scalars_pickle": lambda d: F.plain_pickle(
        d / "np.pkl", {"v": np.float64(1.5), "a": np.arange(3)}, 4
    ),
}


@pytest.mark.parametrize("kind", sorted(BENIGN))
def test_benign_checkpoints_scan_safe(kind: str, ckdir: Path) -> None:
    path = BENIGN[kind](ckdir)
    rep = _one(path)
    assert rep.verdict is FileVerdict.SAFE, _explain(rep)
    if rep.format != "pickle":
        assert rep.globals, "a real torch checkpoint references at least one global"
    assert all(g.verdict is Verdict.SAFE for g in rep.globals)


def test_numpy_names_differ_between_the_two_training_files(ckdir: Path) -> None:
    """Guards the numpy 1.x fixture: it really uses numpy.core names, numpy 2 numpy._core."""
    names1 = {g.module for g in _one(F.numpy1_training_checkpoint(ckdir)).globals}
    names2 = {g.module for g in _one(F.training_checkpoint(ckdir / "t.pt")).globals}
    assert "numpy.core.multiarray" in names1
    assert "numpy._core.multiarray" in names2


def test_lightning_checkpoint_is_safe(lightning_files: dict[str, Path]) -> None:
    rep = _one(lightning_files["plain"])
    assert rep.verdict is FileVerdict.SAFE, _explain(rep)


def test_lightning_checkpoint_with_user_enum_needs_review_then_allow(
    lightning_files: dict[str, Path],
) -> None:
    rep = _one(lightning_files["enum"])
    assert rep.verdict is FileVerdict.REVIEW, _explain(rep)
    assert rep.needs_allow == (F.USER_ENUM,)
    assert F.USER_ENUM in (rep.hint or "")
    allowed = _one(lightning_files["enum"], allow=[F.USER_ENUM])
    assert allowed.verdict is FileVerdict.SAFE, _explain(allowed)
    enum_ref = next(g for g in allowed.globals if g.qualified_name == F.USER_ENUM)
    assert enum_ref.verdict is Verdict.ALLOWED


@pytest.mark.parametrize(
    ("factory", "needed"),
    [
        (F.user_enum_checkpoint, F.USER_ENUM),
        (F.user_dataclass_checkpoint, F.USER_DATACLASS),
    ],
)
def test_user_class_is_review_until_allowed(factory, needed: str, ckdir: Path) -> None:  # type: ignore[no-untyped-def]
    path = factory(ckdir / f"{needed}.pt")
    rep = _one(path)
    assert rep.verdict is FileVerdict.REVIEW, _explain(rep)
    assert needed in rep.needs_allow
    assert _one(path, allow=rep.needs_allow).verdict is FileVerdict.SAFE


def test_policy_file_allows_like_the_flag(ckdir: Path, tmp_path: Path) -> None:
    path = F.user_enum_checkpoint(ckdir / "enum-policy.pt")
    policy = tmp_path / "policy.toml"
    policy.write_text(f'allow = ["{F.USER_ENUM}"]\n')
    assert _one(path, policy=str(policy)).verdict is FileVerdict.SAFE


def test_scan_counts_globals_across_pickles(ckdir: Path) -> None:
    rep = _one(F.training_checkpoint(ckdir / "count.pt"))
    rebuild = next(g for g in rep.globals if g.name == "_rebuild_tensor_v2")
    # every tensor in the file is rebuilt through it: far more than one occurrence
    assert rebuild.count >= 10
    assert ckptguard.Use.CALL in rebuild.uses


def test_directory_scan_recurses_and_skips_non_checkpoints(ckdir: Path, tmp_path: Path) -> None:
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    F.state_dict(sub / "weights.bin")
    F.user_enum_checkpoint(tmp_path / "a" / "enum.ckpt")
    (tmp_path / "README.md").write_text("# my models\n")
    report = ckptguard.scan(tmp_path)
    by_name = {Path(f.path).name: f for f in report.files}
    assert set(by_name) == {"weights.bin", "enum.ckpt"}
    assert by_name["weights.bin"].verdict is FileVerdict.SAFE
    assert by_name["enum.ckpt"].verdict is FileVerdict.REVIEW
    assert [(Path(s.path).name, s.reason, s.model_format) for s in report.skipped] == [
        ("README.md", "not a checkpoint (text)", None)
    ]
    assert report.exit_code == 1


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    rep = _one(tmp_path / "nope.pt")
    assert rep.verdict is FileVerdict.ERROR
    assert rep.findings and "no such file" in rep.findings[0].message


def test_parallel_scan_matches_serial(ckdir: Path, tmp_path: Path) -> None:
    for i in range(10):
        F.state_dict(tmp_path / f"m{i}.pt")
    F.user_enum_checkpoint(tmp_path / "enum.pt")
    serial = ckptguard.scan(tmp_path, jobs=1)
    parallel = ckptguard.scan(tmp_path, jobs=2)
    assert [(f.path, f.verdict, f.globals) for f in serial.files] == [
        (f.path, f.verdict, f.globals) for f in parallel.files
    ]


def test_scan_path_imports_neither_torch_nor_numpy(ckdir: Path) -> None:
    path = F.training_checkpoint(ckdir / "noimport.pt")
    code = (
        "import sys, ckptguard\n"
        f"r = ckptguard.scan({str(path)!r})\n"
        "assert r.verdict.value == 'safe', r\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_pyproject_table_allows_like_the_flag(
    ckdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = F.user_enum_checkpoint(ckdir / "enum-pyproject.pt")
    project = tmp_path / "proj"
    (project / "sub").mkdir(parents=True)
    (project / "pyproject.toml").write_text(f'[tool.ckptguard]\nallow = ["{F.USER_ENUM}"]\n')
    monkeypatch.delenv("CKPTGUARD_POLICY", raising=False)
    monkeypatch.chdir(project / "sub")
    assert _one(path).verdict is FileVerdict.SAFE
    from ckptguard._cli import main

    assert main(["scan", str(path), "--json"]) == 0
    monkeypatch.chdir(tmp_path)  # outside the project: back to review
    assert _one(path).verdict is FileVerdict.REVIEW


def test_unrelated_or_broken_pyproject_files_are_ignored(
    ckdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a pyproject.toml with a [tool.ckptguard] table is a policy source."""
    path = F.state_dict(ckdir / "sd-pyproject.pt")
    (tmp_path / "pyproject.toml").write_text("[project\nname = broken")
    monkeypatch.delenv("CKPTGUARD_POLICY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert _one(path).verdict is FileVerdict.SAFE
