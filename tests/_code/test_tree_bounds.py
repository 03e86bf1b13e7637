"""`ckptguard code` stays inside the tree it was given and reads only bounded regular files.

Hostile trees: a symlink to a file outside the tree (--fix must not write through it), a
symlinked directory loop, /dev/zero linked as x.py, a FIFO and a socket named x.py, a sparse
file over the size limit, and directories or files swapped for links between the walk and the
read (or between the read and the write).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ckptguard._cli import main
from ckptguard._code import _files
from ckptguard._code._runner import MAX_SOURCE_BYTES, check_file, check_paths

FIXABLE = "import torch\nstate = torch.load(p)\n"
FIXED = "ckptguard.load(p)"
REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess: a hang fails the test (TimeoutExpired) instead of the suite."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run(
        [sys.executable, "-m", "ckptguard", "code", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the tree, with a fixable call: it must never change."""
    (tmp_path / "outside").mkdir()
    victim = tmp_path / "outside" / "victim.py"
    victim.write_text(FIXABLE)
    return victim


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "real.py").write_text(FIXABLE)
    return root


# --------------------------------------------------------------------------- symlinks


def test_fix_never_writes_through_a_link_to_a_file_outside_the_tree(
    tree: Path, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tree / "pkg" / "evil.py"
    link.symlink_to(outside)
    assert main(["code", "--fix", str(tree)]) == 0
    out, err = capsys.readouterr()
    assert outside.read_text() == FIXABLE  # untouched
    assert link.is_symlink() and os.readlink(link) == str(outside)
    assert FIXED in (tree / "pkg" / "real.py").read_text()  # the tree itself is fixed
    assert f"{link}: skipped: symbolic link" in err and "not followed" in err
    assert "evil.py" not in out  # not read: no findings from outside the tree


def test_relative_link_escaping_the_tree_is_skipped(tree: Path, outside: Path) -> None:
    link = tree / "pkg" / "rel.py"
    link.symlink_to(os.path.relpath(outside, link.parent))
    report = check_paths([str(tree)], fix=True)
    assert [s.path for s in report.skipped] == [str(link)]
    assert outside.read_text() == FIXABLE


def test_symlinked_directory_pointing_outside_is_not_walked(tree: Path, outside: Path) -> None:
    (tree / "vendored").symlink_to(outside.parent, target_is_directory=True)
    report = check_paths([str(tree)], fix=True)
    assert [s.path for s in report.skipped] == [str(tree / "vendored")]
    assert [f.path for f in report.files] == [str(tree / "pkg" / "real.py")]
    assert outside.read_text() == FIXABLE


def test_symlinked_directory_loop_terminates(tree: Path) -> None:
    (tree / "pkg" / "loop").symlink_to(tree, target_is_directory=True)
    (tree / "pkg" / "self").symlink_to(".", target_is_directory=True)
    proc = _cli(str(tree), "--json", cwd=tree.parent)
    doc = json.loads(proc.stdout)
    assert sorted(s["path"] for s in doc["skipped"]) == [
        str(tree / "pkg" / "loop"),
        str(tree / "pkg" / "self"),
    ]
    assert [f["path"] for f in doc["findings"]] == [str(tree / "pkg" / "real.py")]
    assert proc.returncode == 1


def test_dev_zero_linked_as_a_python_file(tree: Path) -> None:
    (tree / "x.py").symlink_to("/dev/zero")
    proc = _cli(str(tree), cwd=tree.parent)  # walked: a link, skipped, never opened
    assert proc.returncode == 1, proc.stderr  # the real finding; no error
    assert "x.py: skipped: symbolic link (to '/dev/zero')" in proc.stderr
    named = _cli(str(tree / "x.py"), cwd=tree.parent)  # named: a device, refused from stat
    assert named.returncode == 2
    assert "not read: a character device" in named.stderr


# --------------------------------------------------------------------------- not regular


def test_a_fifo_blocks_a_naive_reader(tmp_path: Path) -> None:
    """Liveness: what `ckptguard code` did (open + read) blocks on a FIFO with no writer."""
    fifo = tmp_path / "x.py"
    os.mkfifo(fifo)
    reader = threading.Thread(target=fifo.read_bytes, daemon=True)
    reader.start()
    reader.join(1.0)
    blocked = reader.is_alive()
    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # lets the reader's open return ...
    os.close(writer)  # ... and its read end at EOF
    reader.join(10)
    assert blocked and not reader.is_alive()


def test_a_named_fifo_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "x.py"
    os.mkfifo(fifo)
    (tmp_path / "ok.py").write_text(FIXABLE)
    proc = _cli(str(fifo), str(tmp_path / "ok.py"), cwd=tmp_path, timeout=30)
    assert proc.returncode == 2
    assert f"{fifo}: error: not read: a FIFO (named pipe)" in proc.stderr
    assert "ok.py:2:9: CKG101" in proc.stdout  # the other file is still checked


def test_a_fifo_in_the_tree_does_not_hang(tree: Path) -> None:
    os.mkfifo(tree / "pkg" / "pipe.py")
    proc = _cli("--fix", str(tree), cwd=tree.parent, timeout=30)
    assert proc.returncode == 2
    assert "pipe.py: error: not read: a FIFO" in proc.stderr
    assert FIXED in (tree / "pkg" / "real.py").read_text()
    assert stat.S_ISFIFO(os.lstat(tree / "pkg" / "pipe.py").st_mode)


def test_a_socket_named_like_a_python_file(tree: Path) -> None:
    path = tree / "s.py"
    if len(str(path)) > 100:
        pytest.skip("path too long for a unix socket")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        report = check_paths([str(tree)])
        named = check_file(str(path))
    assert [(e.path, e.message) for e in report.all_errors] == [(str(path), "not read: a socket")]
    assert named.error is not None and "socket" in named.error.message


def test_a_file_over_the_size_limit_is_not_read(tree: Path) -> None:
    big = tree / "pkg" / "generated.py"
    with big.open("wb") as fh:  # sparse: costs no disk
        fh.truncate(MAX_SOURCE_BYTES + 1)
    report = check_paths([str(tree)], fix=True)
    errors = {e.path: e.message for e in report.all_errors}
    assert "over the 10 MiB source limit" in errors[str(big)]
    assert big.stat().st_size == MAX_SOURCE_BYTES + 1
    at_limit = tree / "pkg" / "limit.py"
    at_limit.write_bytes(b"#" * (MAX_SOURCE_BYTES - 1) + b"\n")
    assert check_file(str(at_limit)).error is None


def test_a_file_growing_after_fstat_is_not_read_past_the_limit(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tree / "pkg" / "real.py"
    monkeypatch.setattr(_files, "MAX_SOURCE_BYTES", 10)  # smaller than the file; fstat said ok
    real_fstat = os.fstat

    def small_fstat(fd: int) -> os.stat_result:
        st = real_fstat(fd)
        return os.stat_result((st.st_mode, *st[1:6], 5, *st[7:10]))

    monkeypatch.setattr(os, "fstat", small_fstat)
    result = check_file(str(path))
    assert result.error is not None and "source limit" in result.error.message


# --------------------------------------------------------------------------- races


def test_directory_swapped_for_a_link_after_the_walk(tree: Path, outside: Path) -> None:
    (found,) = [x for x in _files.discover([str(tree)]) if isinstance(x, _files.Found)]
    (tree / "pkg").rename(tree / "moved")
    (tree / "pkg").symlink_to(outside.parent, target_is_directory=True)
    (outside.parent / "real.py").write_text(FIXABLE)
    result = check_file(found.path, fix=True, tree=found.tree)
    assert result.error is not None and "not followed" in result.error.message
    assert (outside.parent / "real.py").read_text() == FIXABLE


def test_file_swapped_for_a_link_after_the_walk(tree: Path, outside: Path) -> None:
    (found,) = [x for x in _files.discover([str(tree)]) if isinstance(x, _files.Found)]
    Path(found.path).unlink()
    Path(found.path).symlink_to(outside)
    result = check_file(found.path, fix=True, tree=found.tree)
    assert result.error is not None and "symbolic link" in result.error.message
    assert outside.read_text() == FIXABLE


def test_file_swapped_for_a_link_between_read_and_write(tree: Path, outside: Path) -> None:
    path = tree / "pkg" / "real.py"
    source = _files.read_source(_files.Found(str(path), str(tree)))
    try:
        path.unlink()
        path.symlink_to(outside)
        with pytest.raises(_files.Unreadable, match="replaced while being checked"):
            _files.replace_source(source, b"x = 1\n")
    finally:
        source.close()
    assert outside.read_text() == FIXABLE and path.is_symlink()


def test_fix_keeps_mode_and_leaves_no_temporary_file(tree: Path) -> None:
    path = tree / "pkg" / "real.py"
    path.chmod(0o640)
    report = check_paths([str(tree)], fix=True)
    assert report.fixed and not report.all_errors
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in (tree / "pkg").iterdir()) == ["real.py"]


def test_unlistable_directory_is_an_error_not_clean(tree: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root lists every directory")
    locked = tree / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        report = check_paths([str(tree)])
    finally:
        locked.chmod(0o755)
    assert report.exit_code == 2
    assert any(e.path == str(locked) for e in report.all_errors)


def test_skipped_notes_escape_control_characters(
    tree: Path, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Link names and targets come from the tree: escape sequences must not reach a terminal."""
    evil = tree / "\x1b[2J\x1b[32mclean.py"
    evil.symlink_to(f"{outside}\x1b[0m")
    assert main(["code", str(tree)]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err
    assert "skipped: symbolic link" in err and "\\x1b[2J" in err
