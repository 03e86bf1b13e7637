"""Rewrite fixable ``torch.load(...)`` calls to ``ckptguard.load(...)`` (libcst: comments and
formatting are kept).

The rewrite replaces the callee and removes a ``weights_only=...`` argument; it never adds an
argument, so ``torch.load(p, **kw)`` cannot gain a duplicate keyword. A comment that followed the
removed argument is kept on a line of its own. ``import ckptguard`` is added once, after the
module's leading imports (a ``from __future__`` import stays first), when no call can see one.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from ckptguard._code._visitor import FIX_NAME, Fix, Site, imports_ckptguard

Whitespace = cst.BaseParenthesizableWhitespace


def apply_fixes(module: cst.Module, sites: Sequence[Site]) -> cst.Module:
    """``module`` with every fixable site rewritten (the sites must come from ``module``)."""
    fixes = {id(s.fix.call): s.fix for s in sites if s.fix is not None}
    if not fixes:
        return module
    fixed = module.visit(_Transformer(fixes))
    if not any(f.needs_import for f in fixes.values()):
        return fixed  # only weights_only=True added: nothing new to import
    return _ensure_import(fixed)


def _ensure_import(module: cst.Module) -> cst.Module:
    """``module`` with ``import ckptguard`` in its leading block of imports (after the
    docstring and ``from __future__`` imports), unless that block already has it.

    Only an unconditional import that runs before any other code counts: one under
    ``if TYPE_CHECKING:``, inside a function or after the first statement that is not an
    import may not have run when a fixed call does."""
    body = list(module.body)
    end = 0
    for index, statement in enumerate(body):
        if index == 0 and _is_docstring(statement):
            end = 1
            continue
        if not _is_import_line(statement):
            break
        if imports_ckptguard(statement):
            return module
        end = index + 1
    line = cst.SimpleStatementLine(
        body=[cst.Import(names=[cst.ImportAlias(name=cst.Name(FIX_NAME))])]
    )
    following = body[end] if end < len(body) else None
    if isinstance(following, (cst.SimpleStatementLine, cst.BaseCompoundStatement)) and not (
        following.leading_lines or _is_import_line(following)
    ):
        # `import ckptguard` directly above code: separate them with a blank line
        body[end] = following.with_changes(leading_lines=[cst.EmptyLine()])
    body.insert(end, line)
    return module.with_changes(body=body)


def _is_docstring(statement: cst.BaseStatement) -> bool:
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _is_import_line(statement: cst.BaseStatement) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and all(
        isinstance(small, (cst.Import, cst.ImportFrom)) for small in statement.body
    )


class _Transformer(cst.CSTTransformer):
    def __init__(self, fixes: dict[int, Fix]) -> None:
        super().__init__()
        self._fixes = fixes

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.Call:
        fix = self._fixes.get(id(original_node))
        if fix is None:
            return updated_node
        if fix.kind == "weights-only":
            return _weights_only_true(updated_node, fix.drop)
        old = updated_node.func
        func = cst.Attribute(
            value=cst.Name(FIX_NAME),
            attr=cst.Name("load"),
            lpar=getattr(old, "lpar", ()),
            rpar=getattr(old, "rpar", ()),
        )
        call = updated_node.with_changes(func=func)
        if fix.drop is not None:
            call = _drop_argument(call, fix.drop)
        return call


def _weights_only_true(call: cst.Call, index: int | None) -> cst.Call:
    """``call`` with the argument at ``index`` set to ``True``, or with ``weights_only=True``
    appended after its last argument in the same layout (a trailing comma stays trailing)."""
    args = list(call.args)
    true = cst.Name("True")
    if index is not None:
        args[index] = args[index].with_changes(value=true)
        return call.with_changes(args=args)
    new = cst.Arg(
        value=true,
        keyword=cst.Name("weights_only"),
        equal=cst.AssignEqual(
            whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
        ),
    )
    if not args:
        return call.with_changes(args=[new])
    last = args[-1]
    # the whitespace that led up to the last argument leads up to the new one too
    before = args[-2].comma if len(args) > 1 else None
    lead: Whitespace = (
        before.whitespace_after if isinstance(before, cst.Comma) else call.whitespace_before_args
    )
    if not isinstance(lead, cst.ParenthesizedWhitespace):
        lead = cst.SimpleWhitespace(" ")
    if isinstance(last.comma, cst.Comma):  # `f(\n    url,\n)`: the new one takes the comma
        args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=lead))
        args.append(new.with_changes(comma=last.comma))
    else:  # `f(url)` / `f(\n    url  # c\n)`: what preceded `)` still does
        after = last.whitespace_after_arg
        tail: Whitespace = after
        if isinstance(after, cst.ParenthesizedWhitespace) and isinstance(
            lead, cst.ParenthesizedWhitespace
        ):  # a comment after the last argument stays on its line
            lead = lead.with_changes(first_line=after.first_line, empty_lines=after.empty_lines)
            tail = after.with_changes(first_line=cst.TrailingWhitespace(), empty_lines=[])
        args[-1] = last.with_changes(
            comma=cst.Comma(whitespace_after=lead), whitespace_after_arg=cst.SimpleWhitespace("")
        )
        args.append(new.with_changes(whitespace_after_arg=tail))
    return call.with_changes(args=args)


def _drop_argument(call: cst.Call, index: int) -> cst.Call:
    args = list(call.args)
    removed = args.pop(index)
    # The whitespace (and comment) that followed the removed argument.
    after = (
        removed.comma.whitespace_after
        if isinstance(removed.comma, cst.Comma)
        else removed.whitespace_after_arg
    )
    if index == 0:
        # `f(weights_only=False, x)`: what preceded the argument now precedes the next one.
        return call.with_changes(
            args=args, whitespace_before_args=_merge(call.whitespace_before_args, after)
        )
    prev = args[index - 1]
    assert isinstance(prev.comma, cst.Comma)  # it was followed by the removed argument
    merged = _merge(prev.comma.whitespace_after, after)
    last = index == len(args)
    if last and not isinstance(removed.comma, cst.Comma) and _multiline(merged):
        # `f(\n    p,\n    weights_only=False\n)`: the comma before the removed last argument
        # only separated the two; it goes with it (no dangling comma), and what led up to `)`
        # stays (a trailing comma the source had after the removed argument is kept below)
        args[index - 1] = prev.with_changes(
            comma=cst.MaybeSentinel.DEFAULT, whitespace_after_arg=merged
        )
    elif last and not _multiline(merged):
        # One line: what preceded `)` still does. `f(p, weights_only=False)` -> `f(p)`,
        # `f( p , weights_only=False )` -> `f( p )`, `f(p, weights_only=False,)` -> `f(p,)`.
        if isinstance(removed.comma, cst.Comma):
            comma = prev.comma.with_changes(whitespace_after=removed.comma.whitespace_after)
            args[index - 1] = prev.with_changes(comma=comma)
        else:
            args[index - 1] = prev.with_changes(
                comma=cst.MaybeSentinel.DEFAULT, whitespace_after_arg=removed.whitespace_after_arg
            )
    else:
        args[index - 1] = prev.with_changes(comma=prev.comma.with_changes(whitespace_after=merged))
    return call.with_changes(args=args)


def _multiline(ws: Whitespace) -> bool:
    return isinstance(ws, cst.ParenthesizedWhitespace)


def _merge(before: Whitespace, after: Whitespace) -> Whitespace:
    """Whitespace replacing ``before <removed argument> after``: keeps the comments of both,
    and the layout that led up to the next token (``after``'s indentation)."""
    if not isinstance(after, cst.ParenthesizedWhitespace):
        return before
    if not isinstance(before, cst.ParenthesizedWhitespace):
        return after
    moved: list[cst.EmptyLine] = []
    if after.first_line.comment is not None:
        # The removed argument's own trailing comment, now on a line of its own.
        moved.append(
            cst.EmptyLine(
                indent=before.indent,
                whitespace=before.last_line,
                comment=after.first_line.comment,
            )
        )
    return cst.ParenthesizedWhitespace(
        first_line=before.first_line,
        empty_lines=[*before.empty_lines, *moved, *after.empty_lines],
        indent=after.indent,
        last_line=after.last_line,
    )
