"""Find risky loading call sites in one module (libcst, names resolved through imports).

:func:`analyze` returns :class:`Site` objects: a finding plus, for a fixable call, what the
fixer must change. Names are resolved with libcst's scope analysis, so ``import torch as th``,
``from torch import load as f`` and ``torch.serialization.load`` are all ``torch.load``, while a
parameter or local variable that shadows ``torch`` is not; strings, comments and docstrings are
never code. Only names bound by an ``import`` count (a relative import is never ``torch``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m
from libcst.metadata import (
    Assignment,
    CodeRange,
    PositionProvider,
    QualifiedName,
    QualifiedNameSource,
    Scope,
    ScopeProvider,
)

from ckptguard._code import _names
from ckptguard._code import _rules as R
from ckptguard._code._rules import Rule
from ckptguard._policy import default_policy
from ckptguard._verdict import Verdict

FIX_NAME = "ckptguard"

_IGNORE = re.compile(r"#\s*ckptguard:\s*ignore(?:\[([^\]]*)\])?", re.IGNORECASE)
_ALL = "*"


@dataclass(frozen=True)
class Site:
    """One finding in a module, with the node it is about."""

    rule: Rule
    message: str
    node: cst.CSTNode  # reported position
    span: CodeRange  # the whole construct (for ignore comments on its first or last line)
    position: CodeRange
    fix: Fix | None = None

    @property
    def fixable(self) -> bool:
        return self.fix is not None


@dataclass(frozen=True)
class Fix:
    """Rewrite ``call`` to ``ckptguard.load(...)``, dropping the argument at ``drop`` if any;
    or, for ``kind="weights-only"`` (torch.hub loaders), keep the callee and make the
    weights_only argument at ``drop`` the literal ``True`` (append ``weights_only=True`` when
    ``drop`` is None)."""

    call: cst.Call
    drop: int | None  # index of the weights_only argument in call.args
    kind: str = "ckptguard"  # or "weights-only"

    @property
    def needs_import(self) -> bool:
        return self.kind == "ckptguard"


def analyze(wrapper: cst.MetadataWrapper) -> list[Site]:
    """Every finding in the module, ignore comments applied, in source order."""
    collector = _BindingCollector()
    wrapper.module.visit(collector)
    if not collector.candidates:
        return []  # no node that could resolve to a watched name: skip scope analysis
    visitor = _Visitor(collector.bindings())
    wrapper.visit(visitor)
    sites = [s for s in visitor.sites if not _suppressed(s, visitor.ignores)]
    sites.sort(key=lambda s: (s.position.start.line, s.position.start.column, s.rule.id))
    return sites


def _suppressed(site: Site, ignores: dict[int, set[str]]) -> bool:
    for line in {site.span.start.line, site.span.end.line, site.position.start.line}:
        codes = ignores.get(line)
        if codes and (_ALL in codes or site.rule.id in codes or site.rule.name in codes):
            return True
    return False


def _parse_ignore(comment: str) -> set[str] | None:
    match = _IGNORE.search(comment)
    if match is None:
        return None
    if match.group(1) is None:
        return {_ALL}
    codes: set[str] = set()
    for raw in match.group(1).split(","):
        part = raw.strip()
        rule = R.lookup(part) if part else None
        if rule is not None:
            codes.update((rule.id, rule.name))
    return codes


class _Visitor(cst.CSTVisitor):
    METADATA_DEPENDENCIES = (PositionProvider, ScopeProvider)

    def __init__(self, bindings: Bindings) -> None:
        super().__init__()
        self._bindings = bindings
        self.sites: list[Site] = []
        self.ignores: dict[int, set[str]] = {}
        self._handled: set[int] = set()  # id() of torch.load references already reported

    # -- helpers -------------------------------------------------------------------------

    def _qualified(
        self, node: cst.CSTNode, source: QualifiedNameSource, *, filtered: bool = True
    ) -> set[str]:
        # What QualifiedNameProvider computes, asked only for the few nodes that can matter
        # (resolving every name of a large module is most of the cost).
        if filtered and not self._bindings.may_matter(node):
            return set()
        scope: Scope | None = self.get_metadata(ScopeProvider, node, None)
        if scope is None:
            return set()
        names: Iterable[QualifiedName] = scope.get_qualified_names_for(node)
        return {q.name for q in names if q.source is source}

    def _imported(self, node: cst.CSTNode) -> set[str]:
        return self._qualified(node, QualifiedNameSource.IMPORT)

    def _is_torch_load(self, node: cst.CSTNode) -> bool:
        return not self._imported(node).isdisjoint(_names.TORCH_LOAD)

    def _pos(self, node: cst.CSTNode) -> CodeRange:
        rng: CodeRange = self.get_metadata(PositionProvider, node)
        return rng

    def _add(
        self,
        rule: Rule,
        message: str,
        node: cst.CSTNode,
        span_node: cst.CSTNode | None = None,
        fix: Fix | None = None,
    ) -> None:
        span = self._pos(span_node if span_node is not None else node)
        self.sites.append(Site(rule, message, node, span, self._pos(node), fix))

    # -- comments ------------------------------------------------------------------------

    def visit_Comment(self, node: cst.Comment) -> None:
        codes = _parse_ignore(node.value)
        if codes is not None:
            self.ignores.setdefault(self._pos(node).start.line, set()).update(codes)

    # -- imports are not uses ------------------------------------------------------------

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    # -- calls ---------------------------------------------------------------------------

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        imported = self._imported(func)
        if not imported.isdisjoint(_names.TORCH_LOAD):
            self._handled.add(id(func))
            self._torch_load_call(node)
        elif not imported.isdisjoint(_names.TORCH_HUB_LOADERS):
            self._hub_call(node, sorted(imported & _names.TORCH_HUB_LOADERS)[0])
        elif not imported.isdisjoint(_names.NUMPY_LOAD):
            self._numpy_load_call(node)
        elif not imported.isdisjoint(_names.PICKLE_LOADERS):
            name = sorted(imported & _names.PICKLE_LOADERS)[0]
            self._add(
                R.PICKLE_LOAD,
                f"{name}() unpickles its input, which runs code from it; keep pickles out of "
                "data you did not write yourself (use JSON, safetensors or numpy .npz), or "
                "restrict the unpickler's find_class",
                node,
            )
        elif not imported.isdisjoint(_names.SAFE_GLOBALS_REGISTRARS):
            self._registrar_call(node, sorted(imported & _names.SAFE_GLOBALS_REGISTRARS)[0])
        elif _names.SETATTR in self._builtins(func):
            self._setattr_call(node)

    def _hub_call(self, node: cst.Call, name: str) -> None:
        """torch.hub.load_state_dict_from_url / model_zoo.load_url: torch.load underneath, with
        weights_only defaulting to False. The fix passes weights_only=True (the state dict these
        functions are for loads under it); there is no ckptguard equivalent to route to."""
        index = _argument(node, "weights_only", _names.HUB_WEIGHTS_ONLY_POSITION)
        if index is not None and m.matches(node.args[index].value, m.Name("True")):
            return
        if index is None:
            what = "without weights_only (it defaults to False)"
        elif m.matches(node.args[index].value, m.Name("False")):
            what = "with weights_only=False"
        else:
            what = "with weights_only not a literal True"
        message = f"{name} {what}: a malicious checkpoint at the URL or in the cache runs code"
        why_not = None
        if any(a.star for a in node.args):
            why_not = "*args/**kwargs may carry weights_only already"
        elif index is not None and _has_side_effects(node.args[index].value):
            why_not = "replacing the weights_only expression would skip a call it makes"
        if why_not is not None:
            self._add(
                R.TORCH_HUB_LOAD_URL, f"{message}; not fixable automatically: {why_not}", node
            )
            return
        fix = Fix(node, index, kind="weights-only")
        self._add(
            R.TORCH_HUB_LOAD_URL,
            f"{message}; pass weights_only=True (fixable with --fix)",
            node,
            fix=fix,
        )

    def _numpy_load_call(self, node: cst.Call) -> None:
        index = _argument(node, "allow_pickle", _names.ALLOW_PICKLE_POSITION)
        spread = any(
            a.star == "**" and _spreads_keyword(a.value, "allow_pickle") for a in node.args
        )
        if index is None and not spread:
            return  # allow_pickle=False, numpy's default
        if index is not None and m.matches(node.args[index].value, m.Name("False")):
            return
        self._add(
            R.NUMPY_LOAD_ALLOW_PICKLE,
            "numpy.load with allow_pickle enabled unpickles object arrays, which runs code "
            "from a malicious .npy/.npz; not fixable automatically (allow_pickle=False fails on "
            "object arrays): load plain arrays with allow_pickle=False, and store other data "
            "without pickles (or check each file with `ckptguard scan FILE` before loading)",
            node,
        )

    def _registrar_call(self, node: cst.Call, registrar: str) -> None:
        """Each element of ``add_safe_globals([...])`` ckptguard's shipped profiles vet."""
        arg = next((a for a in node.args if a.keyword is None and not a.star), None)
        if arg is None:
            named = (a for a in node.args if a.keyword and a.keyword.value == "safe_globals")
            arg = next(named, None)
        if arg is None or not isinstance(arg.value, (cst.List, cst.Tuple)):
            return
        short = registrar.rsplit(".", 1)[1]
        for element in arg.value.elements:
            value = element.value
            if isinstance(value, cst.Tuple) and value.elements:  # (obj, "name")
                value = value.elements[0].value
            name = self._vetted_name(value)
            if name is not None:
                self._add(
                    R.SAFE_GLOBALS_NOT_NEEDED,
                    f"{name} is vetted by ckptguard (its shipped profiles load it): registering "
                    f"it with {short} is no longer needed once loads go through ckptguard.load "
                    "(information only; keeping it changes nothing)",
                    element.value,
                )

    def _vetted_name(self, value: cst.BaseExpression) -> str | None:
        if m.matches(value, m.Call(func=m.Name("type"), args=[m.Arg(value=m.Call())])):
            # type(np.dtype(np.float64)): a numpy dtype class
            assert isinstance(value, cst.Call)
            inner = value.args[0].value
            assert isinstance(inner, cst.Call)
            names = self._qualified(inner.func, QualifiedNameSource.IMPORT, filtered=False)
            return "a numpy dtype class" if "numpy.dtype" in names else None
        names = self._qualified(value, QualifiedNameSource.IMPORT, filtered=False)
        for name in sorted(names):
            if _vetted(name):
                return name
        return None

    def _builtins(self, node: cst.CSTNode) -> set[str]:
        return self._qualified(node, QualifiedNameSource.BUILTIN)

    def _setattr_call(self, node: cst.Call) -> None:
        args = node.args
        if len(args) < 2 or args[0].keyword or args[1].keyword or args[0].star or args[1].star:
            return
        target, attr = args[0].value, args[1].value
        if not isinstance(attr, cst.SimpleString) or attr.evaluated_value != "load":
            return
        owner = self._qualified(target, QualifiedNameSource.IMPORT, filtered=False)
        if owner.isdisjoint(_names.TORCH_LOAD_OWNERS):
            return
        self._add(
            R.TORCH_LOAD_MONKEYPATCH,
            "setattr() replaces torch.load for the whole process (libraries included); call "
            "ckptguard.load where you load checkpoints instead of patching torch",
            node,
        )

    def _torch_load_call(self, node: cst.Call) -> None:
        positional = [a for a in node.args if a.keyword is None and not a.star]
        keywords = {a.keyword.value: i for i, a in enumerate(node.args) if a.keyword is not None}
        has_star = any(a.star == "*" for a in node.args)

        spread = any(_spreads_pickle_module(a.value) for a in node.args if a.star == "**")
        if "pickle_module" in keywords or spread or len(positional) > _names.PICKLE_MODULE_POSITION:
            how = (
                "pickle_module="
                if "pickle_module" in keywords or spread
                else "a third positional argument"
            )
            self._add(
                R.TORCH_LOAD_PICKLE_MODULE,
                f"torch.load with {how} unpickles with that module and defaults to "
                "weights_only=False (runs code from the file); not fixable automatically: "
                "ckptguard.load takes no pickle_module, so drop it and call ckptguard.load",
                node,
            )
            return

        drop = keywords.get("weights_only")
        if drop is not None:
            value = node.args[drop].value
            if m.matches(value, m.Name("True")):
                return  # safe on every PyTorch that has the argument
            rule = R.TORCH_LOAD_WEIGHTS_ONLY_FALSE
            what = (
                "weights_only=False"
                if m.matches(value, m.Name("False"))
                else "weights_only not a literal True"
            )
            message = f"torch.load with {what} runs code from a malicious checkpoint"
        else:
            rule = R.TORCH_LOAD_NO_WEIGHTS_ONLY
            message = (
                "torch.load without weights_only runs code from a malicious checkpoint on "
                "PyTorch < 2.6 and fails on checkpoints with non-tensor objects on >= 2.6"
            )

        why_not = None
        if has_star:
            why_not = (
                "*args may carry a third positional argument (pickle_module), which "
                "ckptguard.load does not take"
            )
        elif drop is not None and _has_side_effects(node.args[drop].value):
            why_not = "removing the weights_only expression would skip a call it makes"
        elif isinstance(node.func, cst.Name) and self._also_bound_otherwise(node.func):
            why_not = f"the name {node.func.value!r} is also bound to something else here"
        else:
            why_not = self._fix_name_problem(node)
        if why_not is not None:
            self._add(rule, f"{message}; not fixable automatically: {why_not}", node)
            return
        fix = Fix(node, drop)
        self._add(rule, f"{message}; use ckptguard.load (fixable with --fix)", node, fix=fix)

    def _also_bound_otherwise(self, name: cst.Name) -> bool:
        """``from torch import load`` and also ``def load`` (or ``load = ...``) in scope."""
        scope: Scope | None = self.get_metadata(ScopeProvider, name, None)
        if scope is None:
            return True
        names: Iterable[QualifiedName] = scope.get_qualified_names_for(name)
        return any(q.name not in _names.TORCH_LOAD for q in names)

    def _fix_name_problem(self, node: cst.CSTNode) -> str | None:
        scope: Scope | None = self.get_metadata(ScopeProvider, node, None)
        if scope is None:
            return "the call's scope could not be resolved"
        for assignment in scope[FIX_NAME]:
            if not (isinstance(assignment, Assignment) and imports_ckptguard(assignment.node)):
                return f"the name {FIX_NAME!r} means something else here"
        return None

    # -- references ----------------------------------------------------------------------

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._assigned_over(target.target, node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._assigned_over(node.target, node)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._assigned_over(node.target, node)

    # Names being bound (def load, load = ..., for load in ...) are not uses of torch.load.

    def _binding(self, target: cst.CSTNode | None) -> None:
        if isinstance(target, cst.Name):
            self._handled.add(id(target))
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._binding(element.value)
        elif isinstance(target, cst.StarredElement):
            self._binding(target.value)
        elif isinstance(target, cst.AsName):
            self._binding(target.name)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._binding(node.name)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._binding(node.name)

    def visit_Param(self, node: cst.Param) -> None:
        self._binding(node.name)

    def visit_For(self, node: cst.For) -> None:
        self._binding(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._binding(node.target)

    def visit_WithItem(self, node: cst.WithItem) -> None:
        self._binding(node.asname)

    def visit_ExceptHandler(self, node: cst.ExceptHandler) -> None:
        self._binding(node.name)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._binding(node.target)

    def visit_Global(self, node: cst.Global) -> None:
        for item in node.names:
            self._binding(item.name)

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        for item in node.names:
            self._binding(item.name)

    def visit_Del(self, node: cst.Del) -> None:
        self._binding(node.target)

    def _assigned_over(self, target: cst.BaseExpression, statement: cst.CSTNode) -> None:
        self._binding(target)
        elements = (
            [e.value for e in target.elements]
            if isinstance(target, (cst.Tuple, cst.List))
            else [target]
        )
        for element in elements:
            if isinstance(element, cst.Attribute) and self._is_torch_load(element):
                self._handled.add(id(element))
                self._add(
                    R.TORCH_LOAD_MONKEYPATCH,
                    "assigning to torch.load replaces it for the whole process (libraries "
                    "included); call ckptguard.load where you load checkpoints instead",
                    element,
                    span_node=statement,
                )

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self._reference(node)

    def visit_Name(self, node: cst.Name) -> None:
        self._reference(node)

    def _reference(self, node: cst.Name | cst.Attribute) -> None:
        if id(node) in self._handled or not self._is_torch_load(node):
            return
        self._handled.add(id(node))
        self._add(
            R.TORCH_LOAD_AS_VALUE,
            "torch.load used as a value: the calls it ends up in cannot be checked; refer to "
            "ckptguard.load instead (not fixable automatically)",
            node,
        )


@dataclass(frozen=True)
class Bindings:
    """Local names that imports bind to something the rules care about."""

    functions: frozenset[str]  # `from torch import load as f` -> "f" (a watched function)
    modules: frozenset[str]  # `import torch as th` -> "th" (a prefix of a watched name)

    def may_matter(self, node: cst.CSTNode) -> bool:
        """Whether ``node`` can resolve to a watched name (cheap and syntactic: every node that
        scope analysis could resolve to one passes; most other nodes do not)."""
        if isinstance(node, cst.Attribute):
            if node.attr.value not in _names.LEAF_NAMES:
                return False
            base: cst.BaseExpression = node.value
            while isinstance(base, cst.Attribute):
                base = base.value
            return isinstance(base, cst.Name) and base.value in self.modules
        if isinstance(node, cst.Name):
            return node.value in self.functions or node.value in _names.BARE_NAMES
        return False


class _BindingCollector(cst.CSTVisitor):
    """One cheap pass over the module: what its imports bind, and whether any node could be a
    watched name at all (most modules have none; they skip scope analysis)."""

    def __init__(self) -> None:
        super().__init__()
        self.functions: set[str] = set()
        self.modules: set[str] = set()
        self._attributes: list[cst.Attribute] = []
        self._names: set[str] = set()

    def bindings(self) -> Bindings:
        return Bindings(frozenset(self.functions), frozenset(self.modules))

    @property
    def candidates(self) -> bool:
        bindings = self.bindings()
        if any(bindings.may_matter(a) for a in self._attributes):
            return True
        return not self._names.isdisjoint(self.functions | _names.BARE_NAMES)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value in _names.LEAF_NAMES:
            self._attributes.append(node)

    def visit_Name(self, node: cst.Name) -> None:
        self._names.add(node.value)

    def _bind(self, local: str, target: str) -> None:
        if target in _names.WATCHED:
            self.functions.add(local)
        if target in _names.PREFIXES:
            self.modules.add(local)

    def visit_Import(self, node: cst.Import) -> bool:
        for alias in node.names:
            dotted = _dotted(alias.name)
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self._bind(alias.asname.name.value, dotted)
            else:  # `import a.b.c` binds `a`
                root = dotted.split(".", 1)[0]
                self._bind(root, root)
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
            return False  # a relative import is never torch/pickle; `*` is not resolved
        module = _dotted(node.module)
        for alias in node.names:
            bound = alias.asname.name if alias.asname is not None else alias.name
            if isinstance(bound, cst.Name):
                self._bind(bound.value, f"{module}.{_dotted(alias.name)}")
        return False


def _dotted(node: cst.BaseExpression) -> str:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return f"{_dotted(node.value)}.{node.attr.value}"
    return ""


def _spreads_pickle_module(value: cst.BaseExpression) -> bool:
    """``**{"pickle_module": m}`` or ``**dict(pickle_module=m)``."""
    return _spreads_keyword(value, "pickle_module")


def _spreads_keyword(value: cst.BaseExpression, keyword: str) -> bool:
    """``**{"keyword": v}`` or ``**dict(keyword=v)``."""
    if isinstance(value, cst.Dict):
        return any(
            isinstance(e, cst.DictElement)
            and isinstance(e.key, cst.SimpleString)
            and e.key.evaluated_value == keyword
            for e in value.elements
        )
    if isinstance(value, cst.Call) and m.matches(value.func, m.Name("dict")):
        return any(a.keyword is not None and a.keyword.value == keyword for a in value.args)
    return False


def _argument(node: cst.Call, keyword: str, position: int) -> int | None:
    """Index in ``node.args`` of the argument for parameter ``keyword``: by keyword, or the
    positional one at ``position`` (counted before any ``*args``), or None."""
    positional = 0
    counting = True
    for i, a in enumerate(node.args):
        if a.keyword is not None:
            if a.keyword.value == keyword:
                return i
        elif a.star:
            counting = False  # positions after *args are unknown
        elif counting:
            if positional == position:
                return i
            positional += 1
    return None


def _vetted(qualified: str) -> bool:
    """Whether the shipped policy vets ``qualified`` (as any module/name split of it)."""
    if not qualified.startswith(("numpy.", "collections.", "torch.", "builtins.")):
        return False

    policy = default_policy()
    parts = qualified.split(".")
    return any(
        policy.classify(".".join(parts[:i]), ".".join(parts[i:]))[0] is Verdict.SAFE
        for i in range(1, len(parts))
    )


def _has_side_effects(node: cst.CSTNode) -> bool:
    return bool(m.findall(node, m.Call() | m.Await() | m.Yield() | m.NamedExpr() | m.Lambda()))


def imports_ckptguard(node: cst.CSTNode) -> bool:
    """``import ckptguard`` or ``import ckptguard.x`` (no alias): binds the package itself.
    ``node`` is an ``Import`` or a line of simple statements."""
    if isinstance(node, cst.SimpleStatementLine):
        return any(imports_ckptguard(small) for small in node.body)
    if not isinstance(node, cst.Import):
        return False
    for alias in node.names:
        if alias.asname is None:
            dotted = cst.Module([]).code_for_node(alias.name)
            if dotted == FIX_NAME or dotted.startswith(FIX_NAME + "."):
                return True
    return False
