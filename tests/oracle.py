"""The differential oracle: what CPython's C unpickler really reaches, without running anything.

``RecordingUnpickler`` is a subclass of the C ``pickle.Unpickler`` whose ``find_class`` returns
an inert recorder class (it records the ``(module, name)`` it was asked for) and whose
``persistent_load`` returns an inert stub: nothing is imported, nothing real is called.
Recorders absorb everything the unpickler can do to them (calls, ``__new__``, ``__setstate__``,
attribute and item sets, ``extend``/``append``/``add``), so the oracle reads at least as far
into a stream as any real execution could.

It is fed the way each real loader feeds the C unpickler:

* ``loads``: the whole stream in one buffer (``pickle.loads(bytes)``; a file object whose
  ``read`` hands over everything at once gives the C unpickler exactly that buffer);
* ``file``: an opened file (``io.BufferedReader``, which has ``peek``: ``pickle.load(open(...))``
  and ``torch.load(path)``);
* ``file-small-buffer``: the same with a 64-byte buffer, so that ``peek`` holds some frames
  whole and not others (the C unpickler reads a frame ``peek`` cannot show it like io.BytesIO);
* ``bytesio``: ``io.BytesIO`` (no ``peek``: torch's zip records and ``torch.load(BytesIO)``);
* the same three as a sequence of loads on one file object, as torch's legacy format reads its
  five pickles (and as ckptguard reads pickles in a row).

The C unpickler allocates a memo table as large as the largest PUT index, so hostile or mutated
streams could ask it for gigabytes: the oracle runs in a worker process with an address-space
limit (:class:`Oracle`), and ``python -m tests.oracle`` is that worker.
"""

from __future__ import annotations

import _compat_pickle
import _pickle
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MODES = ("loads", "file", "file-small-buffer", "bytesio")
_MAX_LOADS = 16  # pickles read in a row in the sequence modes
_WORKER_MEMORY = 2 << 30  # bytes of address space the worker may use
_SMALL_BUFFER = 64  # an opened file whose buffer holds less than most frames


class _Absorb:
    """The value of any attribute of a recorder: a callable that does nothing."""

    def __call__(self, *args: object, **kwargs: object) -> None:
        return None


_ABSORB = _Absorb()


class _RecorderMeta(type):
    """The type of recorder classes: calling, attribute and item sets on the class itself (what
    a pickle does to a global) are absorbed."""

    def __call__(cls, *args: object, **kwargs: object) -> Any:
        return object.__new__(cls)

    def __getattr__(cls, name: str) -> Any:
        return _ABSORB

    def __setattr__(cls, name: str, value: object) -> None:
        return None

    def __setitem__(cls, key: object, value: object) -> None:
        return None


class _Recorder(metaclass=_RecorderMeta):
    """Instances: the results of calls, NEWOBJ, persistent loads; they absorb everything."""

    def __new__(cls, *args: object, **kwargs: object) -> Any:
        return object.__new__(cls)

    def __getattr__(self, name: str) -> Any:
        return _ABSORB

    def __setattr__(self, name: str, value: object) -> None:
        return None

    def __setitem__(self, key: object, value: object) -> None:
        return None

    def __call__(self, *args: object, **kwargs: object) -> Any:
        return object.__new__(_Recorder)


class RecordingUnpickler(_pickle.Unpickler):  # type: ignore[misc]
    """CPython's C unpickler with find_class and persistent_load replaced by recorders."""

    def __init__(self, file: Any, reached: list[tuple[str, str]]) -> None:
        super().__init__(file, encoding="utf-8")  # torch.load's encoding
        self.reached = reached

    def find_class(self, module: str, name: str) -> Any:
        self.reached.append((module, name))
        return _RecorderMeta(f"recorded_{len(self.reached)}", (_Recorder,), {})

    def persistent_load(self, pid: object) -> Any:
        return object.__new__(_Recorder)


class _Whole:
    """A file object whose first ``read`` returns all the data: the C unpickler then works on
    one buffer exactly as ``pickle.loads`` does (and finds the stream truncated at its end)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, n: int = -1) -> bytes:
        data, self._data = self._data, b""
        return data

    def readline(self) -> bytes:
        return self.read()


def _open(mode: str, data: bytes, path: str) -> Any:
    if mode == "loads":
        return _Whole(data)
    if mode == "bytesio":
        return io.BytesIO(data)
    with open(path, "wb") as f:
        f.write(data)
    if mode == "file-small-buffer":  # peek covers some frames and not others
        return open(path, "rb", buffering=_SMALL_BUFFER)
    return open(path, "rb")


@dataclass
class Reading:
    """What one feeding mode reached: per load, the globals in the order the C unpickler asked
    for them (before its protocol < 3 renames); how many loads completed; how the last ended."""

    per_load: list[list[tuple[str, str]]]
    loads: int
    error: str | None

    @property
    def globals(self) -> list[tuple[str, str]]:
        return [g for load in self.per_load for g in load]

    def first(self, n: int) -> Reading:
        """The reading of the first ``n`` loads (torch's legacy format reads five)."""
        error = self.error if len(self.per_load) <= n else None
        return Reading(self.per_load[:n], min(self.loads, n), error)


def read_mode(data: bytes, mode: str, *, sequence: bool, path: str) -> Reading:
    """Feed ``data`` to the recording unpickler in ``mode``; several loads in a row if
    ``sequence`` (until the data ends or a load fails; ``loads`` has only one buffer)."""
    per_load: list[list[tuple[str, str]]] = []
    f = _open(mode, data, path)
    loads = 0
    error = None
    try:
        for _ in range(_MAX_LOADS if sequence and mode != "loads" else 1):
            if mode != "loads" and f.tell() >= len(data):
                break
            reached: list[tuple[str, str]] = []
            per_load.append(reached)
            try:
                RecordingUnpickler(f, reached).load()
            except Exception as exc:  # the stream is broken here (what it reached still counts)
                error = f"{type(exc).__name__}: {exc}"[:200]
                break
            loads += 1
    finally:
        if mode.startswith("file"):
            f.close()
    return Reading(per_load, loads, error)


def read_all(data: bytes, *, sequence: bool = False) -> dict[str, Reading]:
    """Every mode (in this process: use :class:`Oracle` for untrusted or mutated data)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "stream.pkl")
        return {m: read_mode(data, m, sequence=sequence, path=path) for m in MODES}


def mapped(module: str, name: str) -> tuple[str, str]:
    """CPython's protocol < 3 ``fix_imports`` rename (from the stdlib's own table)."""
    hit = _compat_pickle.NAME_MAPPING.get((module, name))
    if hit is not None:
        return hit
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def unreported(readings: Iterable[Reading], reported: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Globals some reading reached that are not in ``reported`` (after or before renames)."""
    missed = set()
    for r in readings:
        for g in r.globals:
            if g not in reported and mapped(*g) not in reported:
                missed.add(g)
    return missed


class Oracle:
    """The oracle in a worker process with an address-space limit (restarted if it dies)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        return subprocess.Popen(
            [sys.executable, "-m", "tests.oracle"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # CPython prints unraisable errors of broken buffers
            cwd=root,
            preexec_fn=_limit_memory,
        )

    def read(self, data: bytes, *, sequence: bool = False) -> dict[str, Reading]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(struct.pack("<QB", len(data), sequence) + data)
        proc.stdin.flush()
        head = proc.stdout.read(8)
        if len(head) < 8:  # the worker died (a limit it could not fail gracefully on)
            self.close()
            return {m: Reading([], 0, "oracle worker died") for m in MODES}
        (n,) = struct.unpack("<Q", head)
        answer = json.loads(proc.stdout.read(n))
        return {
            m: Reading(
                [[(g[0], g[1]) for g in load] for load in r["per_load"]], r["loads"], r["error"]
            )
            for m, r in answer.items()
        }

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            if self._proc.stdin:
                self._proc.stdin.close()
            if self._proc.stdout:
                self._proc.stdout.close()
            self._proc = None


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (_WORKER_MEMORY, _WORKER_MEMORY))


def _serve() -> None:
    sys.setrecursionlimit(10_000)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "stream.pkl")
        while True:
            head = stdin.read(9)
            if len(head) < 9:
                return
            n, sequence = struct.unpack("<QB", head)
            data = stdin.read(n)
            out = {}
            for m in MODES:
                try:
                    r = read_mode(data, m, sequence=bool(sequence), path=path)
                except MemoryError:
                    r = Reading([], 0, "MemoryError")
                out[m] = {"per_load": r.per_load, "loads": r.loads, "error": r.error}
            raw = json.dumps(out).encode()
            stdout.write(struct.pack("<Q", len(raw)) + raw)
            stdout.flush()


assert pickle.Unpickler is _pickle.Unpickler, "the oracle needs CPython's C unpickler"

if __name__ == "__main__":
    _serve()
