"""``ckptguard code`` over a realistic application (tests/_code/fixture_project, read only):
every finding is real, and after ``--fix`` (on a copy) everything compiles and no fixable
finding remains."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from ckptguard._cli import main
from ckptguard._code._runner import check_paths

PROJECT = Path(__file__).parent / "fixture_project"

# Reviewed by hand, line by line: (file, line, rule, fixable).
EXPECTED = {
    ("imgcls/checkpoint.py", 11, "CKG104", False),  # functools.partial(torch.load, ...)
    ("imgcls/checkpoint.py", 31, "CKG102", True),  # wrapper: weights_only=False, **kwargs
    ("imgcls/checkpoint.py", 35, "CKG102", True),  # resume: multi-line call with a comment
    ("imgcls/cli.py", 9, "CKG105", False),  # torch.load = partial(...) in the entry point
    ("imgcls/cli.py", 9, "CKG104", False),  # ... wrapping torch.load itself
    ("imgcls/data.py", 11, "CKG201", False),  # pickle.load of a cache
    ("imgcls/data.py", 19, "CKG201", False),  # joblib.load
    ("imgcls/ema.py", 13, "CKG101", True),  # nested in load_state_dict, map_location lambda
    ("imgcls/evaluate.py", 12, "CKG101", True),  # from torch import load as torch_load
    ("imgcls/hub.py", 11, "CKG101", True),  # torch.load(io.BytesIO(...))
    ("imgcls/hub.py", 20, "CKG103", False),  # pickle_module=dill
    ("imgcls/hub.py", 24, "CKG101", True),  # torch.serialization alias in a comprehension
    ("imgcls/train.py", 23, "CKG101", True),  # model.load_state_dict(torch.load(p, map_location))
    ("scripts/convert_legacy.py", 12, "CKG101", True),  # encoding="latin1"
    ("scripts/inspect_ckpt.py", 10, "CKG104", False),  # original = torch.load
    ("scripts/inspect_ckpt.py", 16, "CKG105", False),  # setattr(torch, "load", patched)
    ("scripts/inspect_ckpt.py", 20, "CKG105", False),  # setattr(torch, "load", original)
    ("scripts/inspect_ckpt.py", 25, "CKG101", True),  # inside the patching context manager
    ("scripts/inspect_ckpt.py", 26, "CKG201", False),  # pandas.read_pickle
}


def _rel(path: str, root: Path) -> str:
    return Path(path).relative_to(root).as_posix()


def test_every_finding_is_real_and_expected() -> None:
    report = check_paths([str(PROJECT)])
    assert report.all_errors == ()
    got = {(_rel(x.path, PROJECT), x.line, x.rule.id, x.fixable) for x in report.findings}
    assert got == EXPECTED
    assert len(report.findings) == len(EXPECTED)  # no duplicates


def test_fix_on_a_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "app"
    shutil.copytree(PROJECT, copy)
    code = main(["code", str(copy), "--fix"])
    out, err = capsys.readouterr()
    assert code == 1, out + err  # the unfixable findings remain
    fixable = sum(1 for e in EXPECTED if e[3])
    assert f"Fixed {fixable} findings in 7 files" in out

    for path in sorted(copy.rglob("*.py")):
        source = path.read_bytes()
        compile(source, str(path), "exec", dont_inherit=True)
        if b"ckptguard.load(" in source:
            assert source.count(b"\nimport ckptguard\n") == 1, path

    after = check_paths([str(copy)])
    assert after.all_errors == ()
    assert not any(x.fixable for x in after.findings)
    remaining = Counter((_rel(x.path, copy), x.rule.id) for x in after.findings)
    assert remaining == Counter((f, r) for f, _, r, fixable in EXPECTED if not fixable)
    # nothing else changed: the untouched file is byte-identical
    rel = "imgcls/data.py"
    assert (copy / rel).read_bytes() == (PROJECT / rel).read_bytes()
    # a second --fix finds nothing more to do
    assert main(["code", str(copy), "--fix"]) == 1
    assert "Fixed 0 findings" in capsys.readouterr().out


def test_fixed_calls_keep_their_arguments(tmp_path: Path) -> None:
    copy = tmp_path / "app"
    shutil.copytree(PROJECT, copy)
    assert main(["code", str(copy), "--fix"]) == 1
    checkpoint = (copy / "imgcls/checkpoint.py").read_text()
    assert "return ckptguard.load(path, map_location=device, **kwargs)" in checkpoint
    assert 'map_location="cpu",  # load on CPU first, the model moves itself later\n' in (
        checkpoint
    )
    legacy = (copy / "scripts/convert_legacy.py").read_text()
    assert 'ckptguard.load(src, encoding="latin1")  # Python 2 pickles need latin1' in legacy
    assert legacy.index("from __future__") < legacy.index("import ckptguard")
    cli = (copy / "imgcls/cli.py").read_text()
    assert "return torch.load(path)  # ckptguard: ignore[CKG101]" in cli
