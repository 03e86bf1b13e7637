"""The weights of a TorchScript archive, without compiling or running any of it.

``torch.jit.save`` writes each scripted module as an object of a ``__torch__.*`` class built
with ``NEWOBJ`` and given its attributes with ``BUILD`` (a dict in slot order), and prints each
class's declaration into ``code/``, where ``__parameters__ = [...]`` and ``__buffers__ = [...]``
say which attributes are parameters and buffers. This module reads only those two lines and the
class headers of the code (line by line, by pattern: the code is never parsed as Python,
compiled or run), walks data.pkl's tree (ckptguard's own pickle reading: nothing is unpickled)
and returns the state dict ``torch.jit.load(f).state_dict()`` would: own parameters, then own
buffers, then each submodule under ``name.``, parameters and buffers that are ``None`` left
out, tensors detached (``requires_grad`` false).

Anything else is refused: a module whose class restores its state with its own code
(``__setstate__``: quantized and custom modules; any mention of it in a code file counts for
every class of that file), a code file with a raw control or line-separator character (TorchScript's
lexer and a line reader could split or indent it differently), a class the code does not declare, a
parameter or buffer that is not a plain tensor rebuild, a module inside itself, more entries
than a bound.
"""

from __future__ import annotations

import re
from typing import Any

from ckptguard._errors import ConvertError
from ckptguard._formats._extracted import Member
from ckptguard._formats._zip import read_member
from ckptguard._pickle._tree import Call, Global, PersId, TDict, Tree, TTuple, build_tree

_CLASS = re.compile(r"class ([A-Za-z_][A-Za-z0-9_]*)\(([A-Za-z_][A-Za-z0-9_.]*)\):")
_NAMES = re.compile(r"  (__parameters__|__buffers__) = \[((?:\"[^\"\\\n]*\", )*)\]")
_ITEM = re.compile(r"\"([^\"\\\n]*)\", ")
_SETSTATE = "__setstate__"
# Characters TorchScript's lexer and this line reader could read differently: str.splitlines
# breaks lines at \r, \v, \f, \x1c-\x1e, \x85, \u2028 and \u2029, where TorchScript sees one
# line, and TorchScript counts any blank (a tab, \v, \f, \r) as one column of indentation, where
# this reader sees no indentation. torch.jit.save writes none of them raw (its printer escapes
# them in string literals), so a code file holding one is refused rather than misread.
_UNSAFE_TEXT = re.compile("[\x00-\x09\x0b-\x1f\x7f\x85\u2028\u2029]")
_MAX_DEPTH = 200  # nested submodules
_MAX_ENTRIES = 1_000_000  # state-dict entries (shared submodules repeat theirs, as in torch)
_REBUILD_V2 = Global("torch._utils", "_rebuild_tensor_v2")  # how torch.jit.save writes tensors
ORDERED_DICT = Global("collections", "OrderedDict")


class _Class:
    __slots__ = ("buffers", "is_module", "parameters", "setstate")

    def __init__(self, is_module: bool) -> None:
        self.is_module = is_module
        self.parameters: set[str] | None = None
        self.buffers: set[str] | None = None
        self.setstate = False


def _refuse(problem: str) -> ConvertError:
    return ConvertError(
        f"cannot extract the weights of this TorchScript archive: {problem}",
        hint="only torch.jit.load can rebuild such a module, and it runs the archive's code: "
        "do that only for a file from a trusted source, in a sandbox, and save "
        "model.state_dict() with torch.save",
        format="torchscript",
    )


def declared_classes(code: dict[str, bytes]) -> dict[str, _Class]:
    """``__torch__.pkg.mod.Class`` -> what the code declares about it, from the class headers
    and the ``__parameters__``/``__buffers__`` lines of ``code/__torch__/pkg/mod.py``."""
    classes: dict[str, _Class] = {}
    for rel, raw in code.items():
        module = rel[len("code/") : -len(".py")].replace("/", ".")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _refuse(f"{rel} is not UTF-8 text") from None
        bad = _UNSAFE_TEXT.search(text)
        if bad is not None:
            raise _refuse(
                f"{rel} holds the control character {bad.group()!r}, which TorchScript and "
                "ckptguard could split into lines or indent differently"
            )
        # Any mention of __setstate__ in a file makes each class it declares restore its own
        # state: however the def is spelled (spacing, line breaks inside it), it is refused.
        setstate = _SETSTATE in text
        current: _Class | None = None
        for line in text.split("\n"):
            m = _CLASS.fullmatch(line)
            if m is not None:
                name = f"{module}.{m.group(1)}"
                if name in classes:
                    raise _refuse(f"the class {name} is declared twice")
                current = classes[name] = _Class(is_module=m.group(2) == "Module")
                current.setstate = setstate
                continue
            if line[:1] not in ("", " "):
                current = None  # any other top-level statement ends the class body
            n = _NAMES.fullmatch(line)
            if ("__parameters__" in line or "__buffers__" in line) and (
                n is None or current is None
            ):
                # e.g. after a comment at column 0, which TorchScript skips inside a class body
                raise _refuse(
                    f"{rel} declares parameters or buffers in a line ckptguard does not read "
                    f"as torch.jit.save writes it: {line.strip()[:80]!r}"
                )
            if n is not None and current is not None:
                names = set(_ITEM.findall(n.group(2)))
                field = "parameters" if n.group(1) == "__parameters__" else "buffers"
                if getattr(current, field) is not None:
                    raise _refuse(f"{n.group(1)} is declared twice in a class of {rel}")
                setattr(current, field, names)
    return classes


class _Extractor:
    def __init__(self, classes: dict[str, _Class]) -> None:
        self.classes = classes
        self.items: list[tuple[str, Any]] = []
        self.detached: dict[int, Call] = {}

    def module_class(self, node: Any) -> _Class | None:
        """The declared module class of ``node`` if it is a scripted module object."""
        if type(node) is not Call or type(node.func) is not Global:
            return None
        cls = self.classes.get(node.func.qualified_name)
        if cls is None or not cls.is_module:
            return None
        return cls

    def module(self, node: Any, prefix: str, busy: list[int]) -> None:
        cls = self.module_class(node)
        if cls is None:
            raise _refuse(f"{prefix or 'the top level'} is no module class the code declares")
        name = node.func.qualified_name
        if len(busy) >= _MAX_DEPTH:
            raise _refuse(f"submodules nested more than {_MAX_DEPTH} deep")
        if id(node) in busy:
            raise _refuse(f"the module at {prefix.rstrip('.')!r} contains itself")
        if cls.setstate:
            raise _refuse(
                f"{name} restores its state with its own TorchScript code (__setstate__): its "
                "weights cannot be read without running that code"
            )
        if cls.parameters is None or cls.buffers is None:
            raise _refuse(f"the code of {name} does not list its parameters and buffers")
        state = node.state
        if (
            node.op != "NEWOBJ"
            or type(node.args) is not TTuple
            or node.args.items
            or not node.has_state
            or type(state) is not TDict
            or node.dictitems
            or node.listitems
        ):
            raise _refuse(f"{name} is not built as torch.jit.save builds a module")
        attrs: dict[str, Any] = {}
        for k, v in state.items:
            if type(k) is not str:
                raise _refuse(f"{name} has an attribute whose name is not a string")
            attrs[k] = v  # a repeated name: the last one wins, as setattr does
        missing = (cls.parameters | cls.buffers) - attrs.keys()
        if missing:
            raise _refuse(f"{name} has no attribute {sorted(missing)[0]!r} its code declares")
        for names in (cls.parameters, cls.buffers):
            for k, v in attrs.items():
                if k in names and v is not None:
                    self.add(prefix + k, v)
        busy.append(id(node))
        for k, v in attrs.items():
            if k not in cls.parameters and k not in cls.buffers and self.module_class(v):
                self.module(v, f"{prefix}{k}.", busy)
        busy.pop()

    def add(self, key: str, value: Any) -> None:
        if type(value) is not Call or value.func != _REBUILD_V2:
            raise _refuse(f"the parameter or buffer {key!r} is not a tensor")
        problem = _layout_problem(value)
        if problem is not None:
            raise _refuse(f"the tensor {key!r} {problem} (damaged or altered file)")
        if len(self.items) >= _MAX_ENTRIES:
            raise _refuse(f"more than {_MAX_ENTRIES} parameters and buffers")
        self.items.append((key, self.detach(value)))

    def detach(self, node: Call) -> Call:
        """The tensor with ``requires_grad`` false, as ``state_dict()`` returns it."""
        args = node.args.items
        if args[4] is not True:
            return node
        done = self.detached.get(id(node))
        if done is None:  # one new node per tensor: tied weights stay one tensor
            done = Call(
                func=node.func,
                args=TTuple((*args[:4], False, *args[5:])),
                kwargs=node.kwargs,
                op=node.op,
                state=node.state,
                has_state=node.has_state,
                dictitems=node.dictitems,
                listitems=node.listitems,
            )
            self.detached[id(node)] = done
        return done


def _ints(v: Any) -> tuple[int, ...] | None:
    if type(v) is not TTuple or not all(type(x) is int for x in v.items):
        return None
    return v.items


def _layout_problem(node: Call) -> str | None:
    """Why ``_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`` does not
    describe a tensor inside its storage (torch.jit.load refuses such views too), or None."""
    args = node.args.items if type(node.args) is TTuple else ()
    if len(args) not in (6, 7) or node.has_state or node.dictitems or node.listitems:
        return "is not rebuilt as torch.jit.save writes tensors"
    ref, offset, size, stride = args[:4]
    pid = ref.pid.items if type(ref) is PersId and type(ref.pid) is TTuple else ()
    if len(pid) != 5 or pid[0] != "storage" or type(pid[4]) is not int:
        return "does not name a storage of the archive"
    sizes, strides = _ints(size), _ints(stride)
    if type(offset) is not int or offset < 0 or sizes is None or strides is None:
        return "has a malformed offset, size or stride"
    if len(sizes) != len(strides) or any(d < 0 for d in sizes) or any(s < 0 for s in strides):
        return "has negative or mismatched sizes and strides"
    if args[4] not in (True, False):
        return "has a malformed requires_grad"
    if 0 in sizes:
        return None
    needed = offset + 1 + sum((d - 1) * st for d, st in zip(sizes, strides, strict=True))
    if needed > pid[4]:
        return f"needs {needed} elements but its storage holds {pid[4]}"
    return None


def state_dict_tree(mm: Any, by_rel: dict[str, Member], prefix: str) -> Tree:
    """The tree of ``OrderedDict(state_dict)`` for the TorchScript archive whose members
    (relative to ``prefix``) are ``by_rel``."""
    pkl = by_rel.get("data.pkl")
    if pkl is None:
        raise _refuse(f"no {prefix}data.pkl")
    code = {
        rel: read_member(mm, m)
        for rel, m in by_rel.items()
        if rel.startswith("code/") and rel.endswith(".py")
    }
    classes = declared_classes(code)
    tree = build_tree(read_member(mm, pkl), where=prefix + "data.pkl")
    ex = _Extractor(classes)
    ex.module(tree.root, "", [])
    root = Call(func=ORDERED_DICT, args=TTuple(()), op="REDUCE", dictitems=ex.items)
    return Tree(root=root, end=tree.end, protocol=tree.protocol)
