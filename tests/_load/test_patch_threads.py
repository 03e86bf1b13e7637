"""patched() / install() under concurrency: real threads, interleavings forced with events.

The window (torch.load routed) stays open while any block in any thread is open; each thread
loads with its own innermost block's policy; a thread without a block still loads through
ckptguard (default policy); the original comes back only when the last block exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import ckptguard
from ckptguard._load import _patch, _window, is_installed
from ckptguard._load._window import current_policy
from tests import factories
from tests._load import hostile

pytestmark = pytest.mark.filterwarnings(
    "ignore::ckptguard.RefusedLoadWarning", "ignore::ckptguard.LoadWarning"
)

TIMEOUT = 60.0


class Worker(threading.Thread):
    """Runs ``body``; keeps its result or exception for the main thread to check."""

    def __init__(self, body: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.body = body
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.body()
        except BaseException as exc:  # handed to the main thread
            self.error = exc

    def finish(self) -> Any:
        self.join(TIMEOUT)
        assert not self.is_alive(), "worker hung"
        if self.error is not None:
            raise self.error
        return self.result


def wait(event: threading.Event) -> None:
    assert event.wait(TIMEOUT), "timed out waiting for the other thread"


def outcome(path: Path) -> str:
    """'loaded' or 'refused' for a plain torch.load(path, weights_only=False)."""
    try:
        torch.load(path, weights_only=False)
    except ckptguard.UnsafeCheckpointError:
        return "refused"
    return "loaded"


@pytest.fixture
def enum_file(tmp_path: Path) -> Path:
    return factories.user_enum_checkpoint(tmp_path / "enum.pt")


@pytest.fixture(autouse=True)
def _restored() -> Any:
    original = (torch.load, torch.serialization.load)
    yield
    ckptguard.uninstall()
    assert (torch.load, torch.serialization.load) == original, "a test left the patch in"


def test_one_thread_exiting_keeps_the_patch_for_the_other(enum_file: Path) -> None:
    original = torch.load
    a_in, b_in, a_out, b_may_exit = (threading.Event() for _ in range(4))

    def thread_a() -> list[str]:
        with ckptguard.patched(allow=[factories.USER_ENUM]):
            a_in.set()
            wait(b_in)
            seen = [outcome(enum_file)]
        a_out.set()
        return seen

    def thread_b() -> list[object]:
        wait(a_in)
        with ckptguard.patched():
            b_in.set()
            wait(a_out)
            # A has left its block: torch.load must still be routed, with B's policy.
            seen: list[object] = [is_installed(), torch.load is not original, outcome(enum_file)]
            wait(b_may_exit)
        return seen

    a, b = Worker(thread_a), Worker(thread_b)
    a.start()
    b.start()
    assert a.finish() == ["loaded"]
    wait(a_out)
    assert is_installed()  # B is still inside its block
    b_may_exit.set()
    assert b.finish() == [True, True, "refused"]
    assert torch.load is original and torch.serialization.load is original
    assert not is_installed()


def test_exit_order_reversed(enum_file: Path) -> None:
    """Same as above with the first thread to enter being the last to leave."""
    original = torch.load
    a_in, b_done, a_may_exit = threading.Event(), threading.Event(), threading.Event()

    def thread_a() -> str:
        with ckptguard.patched(allow=[factories.USER_ENUM]):
            a_in.set()
            wait(a_may_exit)
            return outcome(enum_file)

    def thread_b() -> str:
        wait(a_in)
        with ckptguard.patched():
            result = outcome(enum_file)
        b_done.set()
        return result

    a, b = Worker(thread_a), Worker(thread_b)
    a.start()
    b.start()
    assert b.finish() == "refused"
    assert is_installed() and torch.load is not original
    a_may_exit.set()
    assert a.finish() == "loaded"
    assert torch.load is original


def test_each_thread_loads_with_its_own_allow_list(enum_file: Path) -> None:
    n = 8
    barrier = threading.Barrier(n, timeout=TIMEOUT)

    def body(i: int) -> list[str]:
        allow = [factories.USER_ENUM] if i % 2 else []
        with ckptguard.patched(allow=allow):
            barrier.wait()  # every block is open at once
            seen = [outcome(enum_file) for _ in range(3)]
            barrier.wait()
        return seen

    workers = [Worker(functools.partial(body, i)) for i in range(n)]
    for w in workers:
        w.start()
    for i, w in enumerate(workers):
        assert w.finish() == ["loaded" if i % 2 else "refused"] * 3
    assert not is_installed()


def test_a_thread_without_a_block_still_loads_through_ckptguard(
    tmp_path: Path, enum_file: Path
) -> None:
    marker = tmp_path / "PWNED"
    evil = hostile.torch_zip_with_pickle(tmp_path / "evil.pt", hostile.os_system(marker))
    plain = factories.state_dict(tmp_path / "plain.pt")
    inside, done = threading.Event(), threading.Event()

    def holder() -> None:
        with ckptguard.patched(allow=[factories.USER_ENUM, "tests.*"]):
            inside.set()
            wait(done)

    def bystander() -> list[str]:
        wait(inside)
        seen = [outcome(enum_file), outcome(plain)]
        with contextlib.suppress(ckptguard.CheckpointError):
            torch.load(evil, weights_only=False)
            seen.append("evil loaded")
        return seen

    h, b = Worker(holder), Worker(bystander)
    h.start()
    b.start()
    try:
        # The holder's allow list is the holder's: the bystander gets the default policy.
        assert b.finish() == ["refused", "loaded"]
    finally:
        done.set()
        h.finish()
    assert not marker.exists()
    assert not is_installed()


def test_many_threads_entering_and_leaving(enum_file: Path) -> None:
    original = torch.load
    n, rounds = 6, 20
    barrier = threading.Barrier(n, timeout=TIMEOUT)
    routed: list[bool] = []
    lock = threading.Lock()

    def body(i: int) -> None:
        for r in range(rounds):
            barrier.wait()
            with ckptguard.patched(allow=[factories.USER_ENUM] if (i + r) % 2 else []):
                with lock:
                    routed.append(is_installed())
                if (i * 7 + r) % 3 == 0:
                    outer = current_policy()
                    with ckptguard.patched(allow=[f"tests.nested{i}.Thing"]), lock:  # its own
                        routed.append(current_policy() is not outer)
                    with lock:
                        routed.append(current_policy() is outer)
                with lock:
                    routed.append(is_installed())

    workers = [Worker(functools.partial(body, i)) for i in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.finish()
    assert routed and all(routed)
    assert torch.load is original and torch.serialization.load is original


def test_nested_blocks_stack_and_an_exception_restores_the_outer(enum_file: Path) -> None:
    original = torch.load
    with ckptguard.patched(allow=[factories.USER_ENUM]):
        assert outcome(enum_file) == "loaded"
        with pytest.raises(RuntimeError, match="inner"), ckptguard.patched():
            assert outcome(enum_file) == "refused"
            raise RuntimeError("inner")
        assert outcome(enum_file) == "loaded"  # the outer block's policy again
        assert is_installed()
    assert torch.load is original


def test_blocks_exited_out_of_order(enum_file: Path) -> None:
    original = torch.load
    outer = ckptguard.patched(allow=[factories.USER_ENUM])
    inner = ckptguard.patched()
    outer.__enter__()
    inner.__enter__()
    assert outcome(enum_file) == "refused"
    outer.__exit__(None, None, None)  # the outer block ends first
    assert is_installed()
    assert outcome(enum_file) == "refused"  # the inner one is still open
    inner.__exit__(None, None, None)
    assert torch.load is original


def test_install_and_blocks_interplay(enum_file: Path) -> None:
    original = torch.load
    ckptguard.install(allow=[factories.USER_ENUM])
    with ckptguard.patched():
        assert outcome(enum_file) == "refused"  # the block's policy beats install's
    assert is_installed() and outcome(enum_file) == "loaded"  # install's layer remains

    with ckptguard.patched(allow=[factories.USER_ENUM]):
        ckptguard.uninstall()  # ends install; the block still holds the window open
        assert is_installed() and outcome(enum_file) == "loaded"
    assert torch.load is original

    with ckptguard.patched():
        ckptguard.install(allow=[factories.USER_ENUM])
    assert is_installed() and outcome(enum_file) == "loaded"  # install outlives the block
    ckptguard.uninstall()
    assert torch.load is original


def test_install_policy_applies_to_threads_without_a_block(enum_file: Path) -> None:
    ckptguard.install(allow=[factories.USER_ENUM])
    worker = Worker(lambda: outcome(enum_file))
    worker.start()
    assert worker.finish() == "loaded"


def test_a_kept_reference_keeps_guarding(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    evil = hostile.torch_zip_with_pickle(tmp_path / "evil.pt", hostile.os_system(marker))
    with ckptguard.patched(allow=["tests.*"]):
        kept = torch.load  # `from torch import load` inside the window
    assert not is_installed()
    with pytest.raises(ckptguard.CheckpointError):
        kept(evil, weights_only=False)
    assert not marker.exists()


def test_a_bad_policy_changes_nothing(tmp_path: Path) -> None:
    original = torch.load
    bad = tmp_path / "bad.toml"
    bad.write_text("this is [not toml")
    with pytest.raises(ckptguard.PolicyError), ckptguard.patched(policy=bad):
        pass  # pragma: no cover - the block never opens
    assert torch.load is original
    with pytest.raises(ckptguard.PolicyError):
        ckptguard.install(policy=bad)
    assert torch.load is original


def test_asyncio_tasks_keep_their_own_policies(enum_file: Path) -> None:
    async def task(allow: list[str], started: asyncio.Event, other: asyncio.Event) -> list[str]:
        with ckptguard.patched(allow=allow):
            started.set()
            await other.wait()  # the other task's block is open now too
            seen = [outcome(enum_file)]
            seen.append(await asyncio.to_thread(outcome, enum_file))  # follows into the thread
            await asyncio.sleep(0)
            return seen

    async def main() -> tuple[list[str], list[str]]:
        a, b = asyncio.Event(), asyncio.Event()
        return await asyncio.gather(task([factories.USER_ENUM], a, b), task([], b, a))

    allowed, default = asyncio.run(main())
    assert allowed == ["loaded", "loaded"]
    assert default == ["refused", "refused"]
    assert not is_installed()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_loads_while_a_parent_thread_held_the_lock(enum_file: Path) -> None:
    """DataLoader workers fork; a lock another thread held at the fork must not hang them.
    The child is outside any block, so its load consults the window's lock."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with ckptguard.patched(allow=[factories.USER_ENUM]), _window.window.lock:
            holding.set()
            wait(release)

    holder = Worker(hold)
    holder.start()
    wait(holding)
    try:
        pid = os.fork()
        if pid == 0:  # the child: load, report by exit status, never return into pytest
            code = 1
            try:
                code = 0 if outcome(enum_file) == "refused" else 3  # the default policy
            finally:
                os._exit(code)
        deadline = time.monotonic() + TIMEOUT
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if done[0] == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung on the patch's lock")
        assert os.waitstatus_to_exitcode(done[1]) == 0
    finally:
        release.set()
        holder.finish()


def test_blocks_raising_in_many_threads_still_restore(enum_file: Path) -> None:
    """Some threads' blocks raise while the others' are open: the others stay routed (with
    their own policies), and the original returns once all have ended."""
    original = torch.load
    n = 6
    all_open = threading.Barrier(n, timeout=TIMEOUT)
    raisers_out = threading.Barrier(n, timeout=TIMEOUT)

    def body(i: int) -> str:
        try:
            with ckptguard.patched(allow=[factories.USER_ENUM] if i % 2 else []):
                all_open.wait()
                if i % 3 == 0:
                    raise KeyError(i)
                raisers_out.wait()  # the raising threads have left their blocks
                return outcome(enum_file)
        except KeyError:
            raisers_out.wait()
            return "raised"

    workers = [Worker(functools.partial(body, i)) for i in range(n)]
    for w in workers:
        w.start()
    expected = ["raised" if i % 3 == 0 else "loaded" if i % 2 else "refused" for i in range(n)]
    assert [w.finish() for w in workers] == expected
    assert torch.load is original and not is_installed()


def test_other_code_wrapping_the_dispatcher(enum_file: Path) -> None:
    """A library that wraps torch.load after the window opened: its wrapper keeps going
    through ckptguard, ckptguard's own load does not recurse into it, and closing the window
    leaves the library's function in place."""
    original = torch.load
    with ckptguard.patched(allow=[factories.USER_ENUM]):
        inner = torch.load
        calls: list[object] = []

        def library_wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(args[0])
            return inner(*args, **kwargs)

        torch.load = torch.serialization.load = library_wrapper
        assert outcome(enum_file) == "loaded"
        assert calls == [enum_file]
        assert _patch.original_torch_load() is original
    assert torch.load is library_wrapper  # not ckptguard's to undo
    torch.load = torch.serialization.load = original
