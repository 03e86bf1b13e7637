"""Issue 10, policy sources: files being judged can never widen trust, and every report says
which policy judged them."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

import ckptguard
from ckptguard import Verdict
from ckptguard._cli import main
from ckptguard._policy import resolve_policy
from ckptguard._policy._discovery import ENV_VAR
from tests.pickleasm import call, glob, program, ustr

ALLOW = '[tool.ckptguard]\nallow = ["repopkg.hooks.Thing"]\n'


def _unknown_global_pickle(path: Path) -> Path:
    path.write_bytes(program(call(glob("repopkg.hooks", "Thing"), ustr("x"))))
    return path


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A downloaded model repository that ships a pyproject.toml trusting its own code."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    root = tmp_path / "downloaded-repo"
    (root / "weights").mkdir(parents=True)
    (root / "pyproject.toml").write_text(ALLOW)
    _unknown_global_pickle(root / "model.pt")
    _unknown_global_pickle(root / "weights" / "model.pt")
    return root


@pytest.mark.parametrize("cwd", [".", "weights"])
@pytest.mark.parametrize("target", ["model.pt", "weights/model.pt", ".", "weights"])
def test_a_pyproject_in_the_scanned_tree_is_not_applied(
    repo: Path, monkeypatch: pytest.MonkeyPatch, cwd: str, target: str
) -> None:
    monkeypatch.chdir(repo / cwd)
    path = repo / target
    report = ckptguard.scan(path)
    verdicts = {g.verdict for f in report.files for g in f.globals}
    assert verdicts == {Verdict.UNKNOWN}
    assert report.exit_code == 1
    assert not any("pyproject" in s for s in report.policy_sources)
    assert any(str(repo / "pyproject.toml") in s for s in report.policy_ignored)
    with pytest.raises(ckptguard.UnsafeCheckpointError, match=r"repopkg\.hooks\.Thing"):
        ckptguard.load(repo / "model.pt")


def test_a_scan_of_a_directory_above_the_project_ignores_it(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo)
    report = ckptguard.scan(repo.parent)
    assert report.policy_ignored and report.exit_code == 1


def test_a_repo_pyproject_that_is_not_applied_cannot_fail_the_run(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "pyproject.toml").write_text('[tool.ckptguard]\nallow = ["typing.*"]\nbad = [\n')
    monkeypatch.chdir(repo)
    assert ckptguard.scan(repo / "model.pt").exit_code == 1  # not a PolicyError


def test_the_current_projects_pyproject_applies_to_files_outside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(ALLOW)
    ckpt = _unknown_global_pickle(tmp_path / "elsewhere.pt")
    monkeypatch.chdir(project)
    report = ckptguard.scan(ckpt)
    assert [g.verdict for g in report.files[0].globals] == [Verdict.ALLOWED]
    assert any(
        s.startswith("current project's") and str(project / "pyproject.toml") in s
        for s in report.policy_sources
    )


def test_an_explicit_pyproject_applies_even_inside_the_tree(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo)
    report = ckptguard.scan(repo / "model.pt", policy=repo / "pyproject.toml")
    assert [g.verdict for g in report.files[0].globals] == [Verdict.ALLOWED]
    assert any("policy file (--policy / policy=)" in s for s in report.policy_sources)


def test_targets_given_as_open_files_are_judged_by_their_path(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo)
    with open(repo / "model.pt", "rb") as f:
        policy = resolve_policy(targets=[f])
    assert policy.ignored and policy.classify("repopkg.hooks", "Thing")[0] is Verdict.UNKNOWN


def test_a_symlink_into_the_project_counts_as_inside(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = tmp_path / "link.pt"
    link.symlink_to(repo / "model.pt")
    monkeypatch.chdir(repo)
    assert resolve_policy(targets=[link]).ignored


def test_reports_name_every_policy_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.pkl").write_bytes(pickle.dumps({"a": 1}, protocol=2))
    policy = tmp_path / "p.toml"
    policy.write_text('allow = ["mypkg.Thing"]\n')
    assert main(["scan", "m.pkl", "--policy", str(policy), "--allow", "mine.X", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    sources = doc["policy_sources"]
    assert sources[0].startswith("shipped profiles: torch")
    assert any(str(policy) in s for s in sources)
    assert any("--allow" in s and "mine.X" in s for s in sources)
    assert doc["policy_ignored"] == []

    assert main(["scan", "m.pkl", "--sarif", str(tmp_path / "out.sarif"), "--quiet"]) == 0
    sarif = json.loads((tmp_path / "out.sarif").read_text())
    assert sarif["runs"][0]["properties"]["policySources"][0].startswith("shipped profiles")

    capsys.readouterr()
    assert main(["scan", "m.pkl", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "policy: shipped profiles: torch, numpy" in out
    assert out.splitlines()[-1].startswith("1 file scanned")


def test_the_human_report_warns_about_an_ignored_pyproject(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(repo)
    assert main(["scan", "model.pt", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert f"policy ignored: {repo / 'pyproject.toml'}" in out
