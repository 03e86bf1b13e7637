"""No temporary file is left behind, and SRC is untouched, whatever fails during a conversion:
an exception while writing, a full disk, a failed verification, the safetensors step, Ctrl-C,
or the final rename of an in-place conversion."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ckptguard._convert import _pipeline as C
from ckptguard._convert import _safetensors as S
from ckptguard._convert import _zipwrite as Z
from ckptguard._convert._inplace import convert_in_place
from ckptguard._convert._pipeline import convert_file
from ckptguard._errors import CheckpointError, CorruptCheckpointError
from ckptguard._policy import default_policy
from tests._convert.sources import source


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _listing(d: Path) -> list[str]:
    return sorted(os.listdir(d))


def _disk_full(*_a: Any, **_k: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _interrupt(*_a: Any, **_k: Any) -> None:
    raise KeyboardInterrupt


def _bad_verify(*_a: Any, **_k: Any) -> None:
    raise CorruptCheckpointError(  # as C._verify raises it
        "internal: the converted file did not verify (test)",
        hint="please report this as a ckptguard bug; the source loads with ckptguard.load(SRC)",
    )


def _half_then_full(original: Callable[..., Any]) -> Callable[..., Any]:
    """A copy that writes part of the bytes, then finds the disk full."""

    def copy(src: int, dst: int, src_off: int, dst_off: int, n: int) -> None:
        original(src, dst, src_off, dst_off, n // 2)
        raise OSError(errno.ENOSPC, "No space left on device")

    return copy


FAILURES: dict[str, tuple[str, Callable[[Any], Any], type[BaseException]]] = {
    # name: (attribute to patch, replacement from the original, what convert raises)
    "disk-full-in-a-copy": ("Z._copy", _half_then_full, CheckpointError),
    "disk-full-writing-data.pkl": ("Z.ZipWriter.add_bytes", lambda _o: _disk_full, CheckpointError),
    "ctrl-c-while-writing": ("Z.ZipWriter.close", lambda _o: _interrupt, KeyboardInterrupt),
    "verification-fails": ("C._verify", lambda _o: _bad_verify, CorruptCheckpointError),
    "ctrl-c-while-verifying": ("C._verify", lambda _o: _interrupt, KeyboardInterrupt),
}
SAFETENSORS_FAILURES: dict[str, tuple[str, Callable[[Any], Any], type[BaseException]]] = {
    "save-file-fails": ("S.save_file", lambda _o: _disk_full, CheckpointError),
    "ctrl-c-in-save-file": ("S.save_file", lambda _o: _interrupt, KeyboardInterrupt),
    "read-back-differs": ("S._shape_of", lambda _o: lambda _v: object(), CorruptCheckpointError),
    "ctrl-c-reading-back": ("S.read_checkpoint", lambda _o: _interrupt, KeyboardInterrupt),
}
_MODULES = {"Z": Z, "C": C, "S": S}


def _patch(monkeypatch: pytest.MonkeyPatch, where: str, make: Callable[[Any], Any]) -> None:
    mod_name, _, attr = where.partition(".")
    target: Any = _MODULES[mod_name]
    owner, _, name = attr.rpartition(".")
    if owner:
        target = getattr(target, owner)
    if mod_name == "S" and name == "save_file":  # imported inside the function
        import safetensors.torch  # imported where pt_to_safetensors imports it

        monkeypatch.setattr(safetensors.torch, "save_file", make(safetensors.torch.save_file))
        return
    monkeypatch.setattr(target, name, make(getattr(target, name)))


def _cases() -> list[Any]:
    out = [pytest.param("pt", *v, id=f"pt-{k}") for k, v in FAILURES.items()]
    out += [pytest.param("safetensors", *v, id=f"st-{k}") for k, v in FAILURES.items()]
    out += [pytest.param("safetensors", *v, id=f"st-{k}") for k, v in SAFETENSORS_FAILURES.items()]
    return out


@pytest.mark.parametrize(("to", "where", "make", "raised"), _cases())
def test_a_failed_conversion_leaves_no_file_behind(  # noqa: PLR0917
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    to: str,
    where: str,
    make: Callable[[Any], Any],
    raised: type[BaseException],
) -> None:
    src, _obj = source(tmp_path / "src.pt")
    digest, before = _digest(src), _listing(tmp_path)
    _patch(monkeypatch, where, make)
    with pytest.raises(raised) as info:
        convert_file(str(src), str(tmp_path / f"out.{to}"), to=to, policy=default_policy())
    assert _listing(tmp_path) == before, "a temporary or partial file was left behind"
    assert _digest(src) == digest
    if isinstance(info.value, CheckpointError):  # a clear error: the file and the next step
        assert info.value.path is not None and info.value.hint


def test_disk_full_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, _obj = source(tmp_path / "src.pt")
    _patch(monkeypatch, "Z._copy", _half_then_full)
    with pytest.raises(CheckpointError) as info:
        convert_file(str(src), str(tmp_path / "out.pt"), policy=default_policy())
    text = info.value.diagnostics()
    assert "No space left on device" in text and "out.pt" in text
    assert "ckptguard convert" in text  # the next command


def test_an_existing_destination_survives_a_failed_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, _obj = source(tmp_path / "src.pt")
    dst = tmp_path / "out.pt"
    dst.write_bytes(b"the old output")
    before = _listing(tmp_path)
    _patch(monkeypatch, "C._verify", lambda _o: _bad_verify)
    with pytest.raises(CorruptCheckpointError):
        convert_file(str(src), str(dst), force=True, policy=default_policy())
    assert dst.read_bytes() == b"the old output"
    assert _listing(tmp_path) == before


@pytest.mark.parametrize("failure", ["rename-fails", "ctrl-c-at-rename", "verify-fails"])
def test_in_place_puts_the_source_back_when_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    src, _obj = source(tmp_path / "model.pt")
    digest, before = _digest(src), _listing(tmp_path)
    real_replace = os.replace
    calls: list[tuple[str, str]] = []

    def replace(a: Any, b: Any) -> None:
        calls.append((str(a), str(b)))
        new = ".ckptguard-" in str(a) and ".ckptguard-backup" not in str(a)
        if str(b) == str(src) and new:  # the new file (not the backup) over SRC
            if failure == "rename-fails":
                raise OSError(errno.EIO, "Input/output error")
            raise KeyboardInterrupt
        real_replace(a, b)

    if failure == "verify-fails":
        _patch(monkeypatch, "C._verify", lambda _o: _bad_verify)
    else:
        monkeypatch.setattr(os, "replace", replace)  # what _convert calls (os.replace)
    if failure == "ctrl-c-at-rename":
        with pytest.raises(KeyboardInterrupt):
            convert_in_place(str(tmp_path), policy=default_policy())
    else:
        outcomes = convert_in_place(str(tmp_path), policy=default_policy())
        assert [o.status for o in outcomes] == ["error"]
        assert "ckptguard" in outcomes[0].message  # names the next command
    assert _listing(tmp_path) == before  # no backup directory, no temp file
    assert _digest(src) == digest
    if failure != "verify-fails":
        assert any(b.endswith(".ckptguard-backup/model.pt") for _a, b in calls)  # SRC moved away


def test_a_successful_conversion_leaves_only_its_output(tmp_path: Path) -> None:
    src, _obj = source(tmp_path / "src.pt")
    before = _listing(tmp_path)
    for to in ("pt", "safetensors"):
        convert_file(str(src), str(tmp_path / f"out.{to}"), to=to, policy=default_policy())
    assert _listing(tmp_path) == sorted([*before, "out.pt", "out.safetensors"])


_SLOW_CONVERT = """
import sys, time
from ckptguard._convert import _zipwrite
real = _zipwrite._copy
def slow(*args):
    real(*args)
    print("copying", flush=True)
    time.sleep(60)
_zipwrite._copy = slow
from ckptguard._cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_during_a_conversion_leaves_nothing_behind(tmp_path: Path) -> None:
    src, _obj = source(tmp_path / "src.pt")
    digest, before = _digest(src), _listing(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_CONVERT, "convert", str(src), str(tmp_path / "out.pt")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "copying"  # a temporary file exists now
    assert any(n.startswith(".ckptguard-") for n in _listing(tmp_path))
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err  # reported as interrupted
    assert _listing(tmp_path) == before
    assert _digest(src) == digest
