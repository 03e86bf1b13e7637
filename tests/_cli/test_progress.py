from __future__ import annotations

import io

from ckptguard._cli._progress import ProgressBar, render_bar


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_draws_on_a_tty_and_erases_itself() -> None:
    out = _Tty()
    bar = ProgressBar.for_stream(out)
    for i in range(1, 11):
        bar(i, 10)
    assert "10/10 files" in out.getvalue()
    bar.close()
    assert out.getvalue().endswith("\r\x1b[2K")


def test_bar_silent_when_not_a_tty_or_few_files() -> None:
    out = io.StringIO()
    bar = ProgressBar.for_stream(out)
    bar(5, 10)
    bar.close()
    assert out.getvalue() == ""
    tty = _Tty()
    few = ProgressBar.for_stream(tty)
    few(1, 2)
    few(2, 2)
    few.close()
    assert tty.getvalue() == ""


def test_render_bar() -> None:
    assert render_bar(0, 4, 0.0).startswith("scanning [" + "." * 30 + "] 0/4")
    assert "#" * 30 in render_bar(4, 4, 1.0)
