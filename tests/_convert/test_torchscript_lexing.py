"""TorchScript convert reads the code members as TorchScript's lexer does, or refuses them.

``torch.jit.load`` calls a class's ``__setstate__`` (when the code defines it with a matching
``__getstate__``) on the state data.pkl gives the module: its weights are what that code makes
of them. convert must then refuse, however the def is spelled: TorchScript counts any blank
(tab, \\v, \\f) as a column of indentation, accepts any spacing between ``def``, the name and
its parenthesis, and breaks lines only at \\n, where a line-by-line reader could see no method
at all. Each hostile archive below is live: ``torch.jit.load`` runs the hidden ``__setstate__``
(the weight comes back as 7, not the 0 that was saved)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

import ckptguard
from ckptguard import CheckpointError


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight


_GETSTATE = (
    "  def __getstate__(self: {cls}) -> Dict[str, Tensor]:\n"
    "    weight = self.weight\n"
    '    return {{"weight": weight}}\n'
)
_SETSTATE_BODY = (
    "(self: {cls},\n    state: Dict[str, Tensor]) -> NoneType:\n"
    '    self.weight = torch.add(state["weight"], 7.)\n'
    "    self.training = True\n"
    "    self._is_full_backward_hook = None\n"
    "    return None\n"
)
# How the __setstate__ def line starts (then "(self: ..." follows, or " (self: ...")
SPELLINGS = {
    "vertical-tab-indent": "\x0b def __setstate__",
    "form-feed-indent": "\x0c def __setstate__",
    "tab-indent": " \tdef __setstate__",
    "two-spaces-after-def": "  def  __setstate__",
    "space-before-paren": "  def __setstate__ ",
}


def _scripted(path: Path) -> tuple[Path, str, str]:
    torch.jit.save(torch.jit.script(_Net()), str(path))
    with zipfile.ZipFile(path) as z:
        name = next(
            n
            for n in z.namelist()
            if "/code/" in n and n.endswith(".py") and b"def forward(" in z.read(n)
        )
        text = z.read(name).decode()
    module = name.split("/code/", 1)[1][: -len(".py")].replace("/", ".")
    cls = module + "." + text.split("class ", 1)[1].split("(", 1)[0]
    return path, name, cls


def _rewrite(src: Path, dst: Path, member: str, text: str) -> Path:
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as w:
        for n in z.namelist():
            w.writestr(n, text.encode() if n == member else z.read(n))
    return dst


def _hidden_setstate(tmp_path: Path, spelling: str) -> Path:
    src, member, cls = _scripted(tmp_path / "net.jit")
    with zipfile.ZipFile(src) as z:
        text = z.read(member).decode()
    method = _GETSTATE.format(cls=cls) + spelling + _SETSTATE_BODY.format(cls=cls)
    assert "  def forward(" in text
    return _rewrite(
        src,
        tmp_path / "hidden.jit",
        member,
        text.replace("  def forward(", method + "  def forward("),
    )


@pytest.mark.parametrize("spelling", list(SPELLINGS.values()), ids=list(SPELLINGS))
def test_a_setstate_spelled_any_way_torchscript_reads_is_refused(
    tmp_path: Path, spelling: str
) -> None:
    bad = _hidden_setstate(tmp_path, spelling)
    # live: torch.jit.load runs the archive's __setstate__
    assert torch.equal(torch.jit.load(str(bad)).state_dict()["weight"], torch.full((2,), 7.0))
    out = tmp_path / "w.pt"
    with pytest.raises(CheckpointError, match=r"__setstate__|control character"):
        ckptguard.convert(bad, out)
    assert not out.exists()


def test_the_plain_module_still_converts(tmp_path: Path) -> None:
    src, _, _ = _scripted(tmp_path / "net.jit")
    out = tmp_path / "w.pt"
    ckptguard.convert(src, out)
    got = torch.load(out, weights_only=True)
    assert list(got) == ["weight"]
    assert torch.equal(got["weight"], torch.zeros(2))


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: t.replace("  __buffers__ = []\n", "  __buffers__ = []\n  __parameters__  = []\n"),
        lambda t: t.replace(
            "  __buffers__ = []\n", "  __buffers__ = []\n  __buffers__ : List[str] = []\n"
        ),
        lambda t: t.replace(
            "  __buffers__ = []\n", "  __buffers__ = []\n  __parameters__ = [] # x\n"
        ),
        lambda t: t.replace(
            "  __buffers__ = []\n", "  __buffers__ = []\n# c\n  __parameters__ = []\n"
        ),
    ],
    ids=["spaced", "annotated", "commented", "after-a-column-0-comment"],
)
def test_a_parameter_list_not_read_as_written_is_refused(tmp_path: Path, edit: object) -> None:
    """A second ``__parameters__``/``__buffers__`` line that ckptguard does not read as
    torch.jit.save writes it is refused, rather than the list read from the first line only."""
    src, member, _ = _scripted(tmp_path / "net.jit")
    with zipfile.ZipFile(src) as z:
        text = z.read(member).decode()
    assert callable(edit)
    changed = edit(text)
    assert changed != text
    bad = _rewrite(src, tmp_path / "p.jit", member, changed)
    with pytest.raises(CheckpointError):
        ckptguard.convert(bad, tmp_path / "w.pt")
    assert not (tmp_path / "w.pt").exists()
