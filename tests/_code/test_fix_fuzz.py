"""Property test of --fix over generated torch.load calls: any layout of arguments, commas,
line breaks and comments. The fixed module compiles, the call keeps every argument but
weights_only (same order, same expressions), and every comment survives."""

from __future__ import annotations

import ast
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from ckptguard._code._runner import check_source

POSITIONAL = ["path", "io.BytesIO(blob)", "cfg['ckpt']"]
KEYWORDS = {
    "map_location": ["'cpu'", "device", "lambda s, loc: s"],
    "mmap": ["True"],
    "encoding": ["'latin1'"],
    "weights_only": ["False", "flag", "not trusted"],
}


@st.composite
def calls(draw: st.DrawFn) -> str:
    args = draw(st.lists(st.sampled_from(POSITIONAL), min_size=0, max_size=2))
    names = draw(st.permutations(sorted(KEYWORDS)))
    keep = draw(st.lists(st.booleans(), min_size=len(names), max_size=len(names)))
    for name, kept in zip(names, keep, strict=True):
        if kept:
            value = draw(st.sampled_from(KEYWORDS[name]))
            spaced = draw(st.booleans())
            args.append(f"{name} = {value}" if spaced else f"{name}={value}")
    if draw(st.booleans()):
        args.append("**kw")
    multiline = draw(st.booleans())
    parts = []
    for i, arg in enumerate(args):
        last = i == len(args) - 1
        comma = "," if not last or draw(st.booleans()) else ""
        comment = f"  # c{i}" if multiline and draw(st.booleans()) else ""
        if multiline:
            parts.append(f"\n    {arg}{comma}{comment}")
        else:
            parts.append(f"{arg}{comma}" + (" " if not last and draw(st.booleans()) else ""))
    close = "\n" if multiline else ""
    head = "torch.load(" + ("  # open" if multiline and draw(st.booleans()) else "")
    return head + "".join(parts) + close + ")"


def _call(tree: ast.Module) -> ast.Call:
    (assign,) = [n for n in tree.body if isinstance(n, ast.Assign)]
    assert isinstance(assign.value, ast.Call)
    return assign.value


@settings(max_examples=500, deadline=None)
@given(calls())
def test_fix_keeps_arguments_and_comments(call: str) -> None:
    source = f"import io\nimport torch\n\nstate = {call}\n"
    original = ast.parse(source)
    result = check_source(source, fix=True)
    assert result.fixed_source is not None, call
    fixed = result.fixed_source.decode()
    tree = ast.parse(fixed)
    compile(fixed, "<fixed>", "exec")

    before, after = _call(original), _call(tree)
    assert ast.unparse(after.func) == "ckptguard.load"
    assert [ast.dump(a) for a in after.args] == [ast.dump(a) for a in before.args]
    assert [ast.dump(k) for k in after.keywords] == [
        ast.dump(k) for k in before.keywords if k.arg != "weights_only"
    ]
    assert re.findall(r"# \w+", fixed) == re.findall(r"# \w+", source), fixed
    assert fixed.count("import ckptguard\n") == 1
    again = check_source(fixed, fix=True)
    assert again.fixed_source is None and not any(x.fixable for x in again.findings)
