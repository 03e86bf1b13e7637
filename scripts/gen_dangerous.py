"""Derive ckptguard/data/dangerous_derived.toml: dangerous functions and their other names.

A dev tool, run by hand when Python, numpy or torch change (``make dangerous-data`` or
``python scripts/gen_dangerous.py``); the scanner never runs it and never imports what it
imports. It writes, every entry with its reason:

1. **Source analysis** (no import of the analysed code): every function, method and class of
   the standard library (and of numpy's and torch's Python sources) whose body reaches a
   code-execution, process, import, file or network primitive (``SINKS`` below: ``eval``,
   ``exec``, ``compile``, ``__import__``, ``open``, ``os.system``, ``os.exec*``,
   ``os.spawn*``, ``subprocess.*``, ``importlib.*``, ``runpy``, ``ctypes``, subinterpreters,
   ...), directly or through other functions: calls to module-level functions, classes and
   methods of the same module (``self.m()``, ``cls.m()``, ``C.m``), names imported from other
   analysed modules, base classes. A class is dangerous when a method that runs implicitly
   (dunder methods, ``append``/``extend``, which unpickling calls) or a base class is.
2. **Aliases** (imports numpy and torch): every attribute of every loaded numpy/torch/stdlib
   module whose value is a dangerous object (by identity with a resolved dangerous entry, or
   by its canonical ``__module__.__qualname__``) under a name the policy does not already
   call dangerous, e.g. ``numpy.matlib.savetxt`` (= ``numpy.savetxt``) or a module imported
   under another name (``import subprocess as _sp``).

Entries that the hand-written ``policy.toml`` already makes dangerous (its chain rule) are left
out, so the file holds only what the hand list misses. ``--check`` compares instead of writing.
"""

from __future__ import annotations

import argparse
import ast
import atexit
import builtins
import importlib
import importlib.util
import os
import sys
import sysconfig
import tempfile
import types
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "src" / "ckptguard" / "data"
POLICY = DATA / "policy.toml"
OUT = DATA / "dangerous_derived.toml"

# What a function may not reach. A reference to any of these (called or passed on) counts.
_OS_SINKS = [
    "system",
    "popen",
    "execl",
    "execle",
    "execlp",
    "execlpe",
    "execv",
    "execve",
    "execvp",
    "execvpe",
    "spawnl",
    "spawnle",
    "spawnlp",
    "spawnlpe",
    "spawnv",
    "spawnve",
    "spawnvp",
    "spawnvpe",
    "posix_spawn",
    "posix_spawnp",
    "fork",
    "forkpty",
    "startfile",
    "kill",
    "killpg",
    "remove",
    "unlink",
    "rmdir",
    "removedirs",
    "rename",
    "renames",
    "replace",
    "mkdir",
    "makedirs",
    "open",
    "fdopen",
    "truncate",
    "ftruncate",
    "chmod",
    "lchmod",
    "fchmod",
    "chown",
    "lchown",
    "fchown",
    "symlink",
    "link",
    "mkfifo",
    "mknod",
    "write",
    "pwrite",
    "writev",
    "putenv",
    "unsetenv",
    "chdir",
    "fchdir",
    "chroot",
    "_exit",
    "abort",
    "add_dll_directory",
    "memfd_create",
    "sendfile",
    "utime",
    "setuid",
    "setgid",
    "seteuid",
    "setegid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setsid",
    "setpgid",
    "plock",
    "pidfd_open",
]
_SHUTIL_SINKS = [
    "copyfileobj",
    "copyfile",
    "copymode",
    "copystat",
    "copy",
    "copy2",
    "copytree",
    "rmtree",
    "move",
    "chown",
    "make_archive",
    "unpack_archive",
    "register_archive_format",
    "register_unpack_format",
]
SINKS: dict[str, str] = {
    **{
        f"builtins.{n}": k
        for n, k in {
            "eval": "evaluates code",
            "exec": "executes code",
            "compile": "compiles code",
            "__import__": "imports modules",
            "open": "opens files",
            "breakpoint": "starts a debugger",
        }.items()
    },
    **{
        f"{m}.{n}": "runs programs or touches files"
        for m in ("os", "posix", "nt")
        for n in _OS_SINKS
    },
    **{f"shutil.{n}": "copies, moves or deletes files" for n in _SHUTIL_SINKS},
    "subprocess": "runs programs",
    "_posixsubprocess": "runs programs",
    "_winapi.CreateProcess": "runs programs",
    "pty.spawn": "runs programs",
    "pty.fork": "forks the process",
    "multiprocessing": "starts processes",
    "asyncio.subprocess": "runs programs",
    "asyncio.create_subprocess_exec": "runs programs",
    "asyncio.create_subprocess_shell": "runs programs",
    "importlib": "imports modules",
    "imp": "imports modules",
    "zipimport": "imports code",
    "runpy": "runs code",
    "code": "runs code",
    "codeop": "compiles code",
    "ctypes": "calls C functions",
    "_ctypes": "calls C functions",
    "_interpreters": "runs code in subinterpreters",
    "_xxsubinterpreters": "runs code in subinterpreters",
    "interpreters": "runs code in subinterpreters",
    "concurrent.interpreters": "runs code in subinterpreters",
    "marshal.load": "loads code objects",
    "marshal.loads": "loads code objects",
    "pickle.load": "unpickles",
    "pickle.loads": "unpickles",
    "pickle.Unpickler": "unpickles",
    "_pickle": "unpickles",
    "io.open": "opens files",
    "io.FileIO": "opens files",
    "_io.open": "opens files",
    "_io.FileIO": "opens files",
    "codecs.open": "opens files",
    "tempfile": "creates files",
    "socket.socket": "opens network connections",
    "socket.create_connection": "opens network connections",
    "socket.create_server": "opens network servers",
    "_socket": "opens network connections",
    "webbrowser.open": "starts a browser",
    "open-for-writing": "opens a file for writing",
}

# Sinks that only read or compile (no code runs, nothing changes): a function that uses one
# directly is listed, but reaching it through another function does not make a caller
# dangerous (else every function that may print a warning, which reads source lines through
# linecache, would be). open() with a literal mode that writes, or a mode that is not a
# literal, is a strong sink.
WEAK = {
    "builtins.compile",
    "builtins.open",
    "io.open",
    "_io.open",
    "codecs.open",
    "io.FileIO",
    "_io.FileIO",
}

# Methods that run without being named: on construction and unpickling (NEWOBJ, REDUCE,
# BUILD, APPEND(S), SETITEM(S)), as dict keys, on attribute access and on deletion. A class
# is dangerous when one of these is (operators and repr are not counted).
_IMPLICIT = {
    "__new__",
    "__init__",
    "__setstate__",
    "__setitem__",
    "__setattr__",
    "__getattr__",
    "__getattribute__",
    "__del__",
    "__call__",
    "__reduce__",
    "__reduce_ex__",
    "__init_subclass__",
    "__set_name__",
    "__hash__",
    "__eq__",
    "append",
    "extend",
}

_SKIP_DIRS = {
    "site-packages",
    "dist-packages",
    "test",
    "tests",
    "idlelib",
    "turtledemo",
    "__pycache__",
    "testing",
    "_testing",
}


def _sink(dotted: str) -> str | None:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in SINKS:
            return key
    return None


# --------------------------------------------------------------------------- source analysis
class _Module:
    """One analysed module: its definitions, import bindings and per-definition references."""

    def __init__(self, name: str, tree: ast.Module, is_package: bool) -> None:
        self.name = name
        self.package = name if is_package else name.rpartition(".")[0]
        self.defs: dict[str, ast.AST] = {}  # qualname -> FunctionDef / ClassDef
        self.bindings: dict[str, str] = {}  # local name -> dotted target (imports anywhere)
        self.exports: dict[str, str] = {}  # module attribute -> dotted target (top-level imports)
        self.classes: dict[str, list[str]] = {}  # class qualname -> its method names
        self._collect_imports(tree)
        self._collect_defs(tree.body, "")
        self._collect_exports(tree.body)

    def _absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = self.package.split(".")
        if node.level > 1:
            base = base[: len(base) - node.level + 1]
        return ".".join([*base, *([node.module] if node.module else [])])

    def _bind(self, node: ast.AST, into: dict[str, str]) -> None:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    into[a.asname] = a.name
                else:
                    top = a.name.partition(".")[0]
                    into[top] = top
        elif isinstance(node, ast.ImportFrom):
            mod = self._absolute(node)
            for a in node.names:
                if a.name != "*":
                    into[a.asname or a.name] = f"{mod}.{a.name}"

    def _collect_imports(self, tree: ast.Module) -> None:
        for node in ast.walk(tree):
            self._bind(node, self.bindings)

    def _collect_exports(self, body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self._bind(node, self.exports)
            elif isinstance(node, (ast.If, ast.Try)):
                for block in (
                    node.body,
                    node.orelse,
                    *getattr(node, "handlers", ()),
                    getattr(node, "finalbody", []),
                ):
                    stmts = block.body if isinstance(block, ast.ExceptHandler) else block
                    self._collect_exports(stmts)

    def _collect_defs(self, body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.defs[prefix + node.name] = node
            elif isinstance(node, ast.ClassDef):
                qual = prefix + node.name
                self.defs[qual] = node
                self.classes[qual] = [
                    n.name
                    for n in node.body
                    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                ]
                self._collect_defs(node.body, qual + ".")
            elif isinstance(node, (ast.If, ast.Try)):
                for block in (node.body, node.orelse, getattr(node, "finalbody", [])):
                    self._collect_defs(block, prefix)
                for h in getattr(node, "handlers", ()):
                    self._collect_defs(h.body, prefix)

    def references(self, qual: str) -> Iterator[str]:
        """Dotted names a definition refers to: ``self:``-prefixed for its own module."""
        node = self.defs[qual]
        owner = qual.rpartition(".")[0] if qual.rpartition(".")[0] in self.classes else None
        local: set[str] = set()
        if isinstance(node, ast.ClassDef):
            # Decorators and the class body run once, at import; instances run the methods
            # and inherit the bases'.
            nodes: Iterable[ast.AST] = node.bases
            for m in self.classes[qual]:
                if m in _IMPLICIT:
                    yield f"self:{qual}.{m}"
        else:
            nodes = [node]
            local = _local_names(node)  # type: ignore[arg-type]
        tag = "base:" if isinstance(node, ast.ClassDef) else ""
        for top in nodes:
            for sub in ast.walk(top):
                dotted = _dotted(sub)
                if dotted is None:
                    continue
                head, _, rest = dotted.partition(".")
                if head in local and head not in ("self", "cls"):
                    continue
                if tag:
                    if head in self.classes and not rest:
                        yield f"base:self:{head}"
                    elif head in self.bindings:
                        yield "base:" + self.bindings[head] + (f".{rest}" if rest else "")
                    continue
                if head in ("self", "cls") and owner and rest:
                    yield f"self:{owner}.{rest.partition('.')[0]}"
                elif head in self.defs and "." not in head:
                    if head in self.classes and rest:
                        yield f"self:{head}.{rest.partition('.')[0]}"
                    yield f"self:{head}"
                elif head in self.bindings:
                    yield self.bindings[head] + (f".{rest}" if rest else "")
                elif isinstance(sub, ast.Name) and hasattr(builtins, head):
                    yield f"builtins.{dotted}"
        if not isinstance(node, ast.ClassDef):
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and _writes(call):
                    yield "open-for-writing"


def _local_names(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Parameters and names assigned in a function (they shadow builtins and globals)."""
    a = fn.args
    names = {x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)}
    names |= {x.arg for x in (a.vararg, a.kwarg) if x is not None}
    for sub in ast.walk(fn):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            names.add(sub.id)
        elif (
            isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and sub is not fn
        ):
            names.add(sub.name)
    glob = {
        n for sub in ast.walk(fn) if isinstance(sub, (ast.Global, ast.Nonlocal)) for n in sub.names
    }
    return names - glob


def _writes(call: ast.Call) -> bool:
    """``open(path, mode)`` whose mode may write (a literal with w/a/x/+, or not a literal)."""
    if not (isinstance(call.func, ast.Name) and call.func.id == "open"):
        return False
    mode = (
        call.args[1]
        if len(call.args) > 1
        else next((k.value for k in call.keywords if k.arg == "mode"), None)
    )
    if mode is None:
        return False
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return any(c in mode.value for c in "wax+")
    return True


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
        return ".".join([node.id, *reversed(parts)])
    return None


def _module_files(root: Path, package: str | None) -> Iterator[tuple[str, Path, bool]]:
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(p in _SKIP_DIRS for p in rel.parts[:-1]):
            continue
        parts = list(rel.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        if package:
            parts = [package, *parts]
        if not parts or not all(p.isidentifier() for p in parts):
            continue
        yield ".".join(parts), path, is_package


def analyse(sources: Iterable[tuple[str, Path, bool]]) -> dict[str, str]:
    """``module.qualname`` -> reason, for every definition that reaches a sink."""
    modules: dict[str, _Module] = {}
    for name, path, is_package in sources:
        try:
            tree = ast.parse(path.read_bytes(), str(path))
        except (SyntaxError, ValueError):
            continue
        modules[name] = _Module(name, tree, is_package)

    def node_of(dotted: str) -> str | None:
        """The analysed definition a dotted reference names, following re-exports."""
        for _ in range(8):
            parts = dotted.split(".")
            for i in range(len(parts) - 1, 0, -1):
                mod = modules.get(".".join(parts[:i]))
                if mod is None:
                    continue
                rest = parts[i:]
                for j in range(len(rest), 0, -1):
                    qual = ".".join(rest[:j])
                    if qual in mod.defs:
                        return f"{mod.name}:{qual}"
                if rest[0] in mod.exports:
                    dotted = ".".join([mod.exports[rest[0]], *rest[1:]])
                    break
                return None
            else:
                return None
        return None

    reason: dict[str, str] = {}
    weak: set[str] = set()  # definitions whose only sinks are weak: listed, not propagated
    edges: dict[str, set[str]] = {}
    for mod in modules.values():
        for qual in mod.defs:
            key = f"{mod.name}:{qual}"
            targets = edges.setdefault(key, set())
            for found in mod.references(qual):
                ref = found
                if ref.startswith("base:"):  # a base class: only classes count
                    ref = ref[5:]
                    if ref.startswith("self:"):
                        targets.add(f"{mod.name}:{ref[5:]}")
                        continue
                    other = node_of(ref)
                    if (
                        other is not None
                        and other != key
                        and isinstance(
                            modules[other.partition(":")[0]].defs[other.partition(":")[2]],
                            ast.ClassDef,
                        )
                    ):
                        targets.add(other)
                    elif _sink(ref) is not None:  # subclass of subprocess.Popen, ...
                        reason.setdefault(key, f"subclasses {ref} ({SINKS[_sink(ref) or '']})")
                    continue
                if ref.startswith("self:"):
                    target = ref[5:]
                    if target in mod.defs and target != qual:
                        targets.add(f"{mod.name}:{target}")
                    continue
                sink = _sink(ref)
                if sink is not None:
                    if key not in reason or (key in weak and sink not in WEAK):
                        reason[key] = f"calls {sink} ({SINKS[sink]})"
                        weak.discard(key)
                        if sink in WEAK:
                            weak.add(key)
                    continue
                other = node_of(ref)
                if other is not None and other != key:
                    targets.add(other)
    # Fixpoint: a definition reaching a dangerous one is dangerous.
    changed = True
    while changed:
        changed = False
        for key, targets in edges.items():
            if key in reason:
                continue
            for t in sorted(targets):
                if t in reason and t not in weak:
                    via = t.replace(":", ".")
                    first = reason[t]
                    what = first.split(" (")[0].removeprefix("calls ").removeprefix("reaches ")
                    what = what.split(" via ")[0]
                    reason[key] = f"reaches {what} via {via}"
                    changed = True
                    break
    return {k.replace(":", "."): v for k, v in reason.items()}


# --------------------------------------------------------------------------- the rules
class Rules:
    """ckptguard's own policy rules over the hand-written policy.toml plus ``extra`` derived
    entries (never the shipped derived file: what is derived must not be derived from
    itself)."""

    def __init__(self, extra: dict[str, str] | None = None) -> None:
        sys.path.insert(0, str(ROOT / "src"))
        from ckptguard._policy import _data, _policy  # noqa: PLC0415

        self._data_module = _data
        fd, self.path = tempfile.mkstemp(suffix=".toml")
        with os.fdopen(fd, "w") as f:
            f.write(render_entries(extra or {}))
        atexit.register(os.unlink, self.path)
        self._activate()
        self.policy = _policy.Policy()
        self.data = _data.shipped_all()
        self.vetted = {n for p in self.data.profiles.values() for n in p}

    def _activate(self) -> None:
        """Point ckptguard's data loader at this instance's derived entries."""
        if self.path != self._data_module.DERIVED_FILE:
            self._data_module.DERIVED_FILE = self.path
            self._data_module.shipped.cache_clear()
            self._data_module.shipped_all.cache_clear()

    def reason(self, module: str, name: str) -> str | None:
        """Why the global (``module``, ``name``) is dangerous; ``name`` "" asks about the
        module ``module`` itself (everything under it)."""
        self._activate()
        if not name:
            verdict, why = self.policy._dangerous(module)
            return why if verdict is not None else None
        verdict, why = self.policy.classify(module, name)
        return why if verdict.value == "dangerous" else None

    def dotted(self, dotted: str) -> str | None:
        module, _, name = dotted.rpartition(".")
        return self.reason(module, name) if module else self.reason(dotted, "")


def minimal(found: dict[str, str], rules: Rules) -> dict[str, str]:
    """Drop entries the rules already cover, and methods of classes that are themselves listed
    (the chain rule covers ``Class.method`` once ``Class`` is dangerous)."""
    out = {}
    for name in sorted(found):
        if name in rules.vetted:
            print(f"warning: vetted {name} {found[name]}; not listed", file=sys.stderr)
            continue
        parts = name.split(".")
        if any(".".join(parts[:i]) in out for i in range(1, len(parts))):
            continue
        if rules.dotted(name) is None:
            out[name] = found[name]
    return out


# --------------------------------------------------------------------------- aliases
_ALIAS_ROOTS = ("numpy", "torch")


def _import_quietly(name: str) -> types.ModuleType | None:
    import warnings  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return importlib.import_module(name)
        except BaseException:
            return None


def load_namespaces(deep: bool) -> None:
    """Import numpy (every submodule but tests) and torch (its import, plus every submodule
    when ``deep``): the namespaces whose attributes are walked for aliases."""
    import pkgutil  # noqa: PLC0415

    for root in _ALIAS_ROOTS:
        mod = _import_quietly(root)
        if mod is None:
            continue
        if root == "numpy" or deep:
            for info in pkgutil.walk_packages(mod.__path__, root + ".", onerror=lambda _n: None):
                parts = info.name.split(".")
                if any(p in _SKIP_DIRS or p in ("conftest", "setup", "__main__") for p in parts):
                    continue
                _import_quietly(info.name)


def resolve(dotted: str) -> object | None:
    """The object a dotted name reaches among the modules already imported (no new import)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        mod = sys.modules.get(".".join(parts[:i]))
        if mod is None:
            continue
        obj: object = mod
        try:
            for p in parts[i:]:
                obj = getattr(obj, p)
        except Exception:
            return None
        return obj
    return None


def canonical(obj: object) -> list[tuple[str, str]]:
    """The names an object is defined under: ``__module__.__qualname__`` of it and of what it
    wraps (``functools.wraps``, numpy's array-function dispatchers, whose ``__module__`` says
    ``numpy`` while the function lives in ``numpy.lib._npyio_impl``), and the module whose
    file holds its code."""
    if isinstance(obj, types.ModuleType):
        return [(obj.__name__, "")]
    out: list[tuple[str, str]] = []
    seen: set[int] = set()
    todo = [obj]
    while todo:
        o = todo.pop()
        if id(o) in seen or len(seen) > 8:
            continue
        seen.add(id(o))
        mod = getattr(o, "__module__", None)
        qual = getattr(o, "__qualname__", None) or getattr(o, "__name__", None)
        if isinstance(mod, str) and isinstance(qual, str) and "<" not in qual:
            out.append((mod, qual))
            code = getattr(o, "__code__", None)
            home = _file_modules().get(getattr(code, "co_filename", ""))
            if home is not None and home != mod:
                out.append((home, qual))
        for attr in ("__wrapped__", "_implementation", "__func__"):
            try:
                inner = getattr(o, attr, None)
            except Exception:
                inner = None
            if inner is not None:
                todo.append(inner)
    return out


def _file_modules() -> dict[str, str]:
    if not _FILES:
        for name, mod in list(sys.modules.items()):
            f = getattr(mod, "__file__", None)
            if isinstance(f, str):
                _FILES.setdefault(f, name)
    return _FILES


_FILES: dict[str, str] = {}


def _interesting(obj: object) -> bool:
    try:
        return isinstance(obj, types.ModuleType) or callable(obj)
    except Exception:
        return False


def walked_modules(roots: Iterable[str]) -> list[types.ModuleType]:
    out = []
    for name, mod in sorted(sys.modules.items()):
        if not isinstance(mod, types.ModuleType) or getattr(mod, "__name__", None) != name:
            continue
        if any(name == r or name.startswith(r + ".") for r in roots):
            out.append(mod)
    return out


def dangerous_objects(names: Iterable[str]) -> dict[int, tuple[object, str]]:
    """id -> (object, the dangerous name it was resolved from)."""
    out: dict[int, tuple[object, str]] = {}
    for name in names:
        obj = resolve(name)
        if obj is not None and _interesting(obj) and not isinstance(obj, types.ModuleType):
            out.setdefault(id(obj), (obj, name))
    return out


def aliases(
    reason: Callable[[str, str], str | None],
    danger: dict[int, tuple[object, str]],
    roots: Iterable[str],
) -> dict[str, str]:
    """Every ``module.attr`` of the walked modules that reaches a dangerous object under a
    name ``reason(module, attr)`` does not already call dangerous."""
    out: dict[str, str] = {}
    for mod in walked_modules(roots):
        try:
            items = list(vars(mod).items())
        except TypeError:
            continue
        for attr, obj in items:
            if not (isinstance(attr, str) and attr.isidentifier()) or not _interesting(obj):
                continue
            if reason(mod.__name__, attr) is not None:
                continue
            hit = danger.get(id(obj))
            why: str | None = None
            if hit is not None and hit[0] is obj:
                origin, why = hit[1], reason(*_split(hit[1]))
            else:
                origin = ""
                for m, n in canonical(obj):
                    if (m, n) != (mod.__name__, attr) and (why := reason(m, n)) is not None:
                        origin = f"{m}.{n}" if n else m
                        break
            if why is None:
                continue
            why = why.removeprefix(f"{origin}: ")
            what = "the module" if isinstance(obj, types.ModuleType) else "the same object as"
            out[f"{mod.__name__}.{attr}"] = f"{what} {origin}: {why}"
    return out


def _split(dotted: str) -> tuple[str, str]:
    module, _, name = dotted.rpartition(".")
    return (module, name) if module else (dotted, "")


# --------------------------------------------------------------------------- output
def stdlib_sources() -> list[tuple[str, Path, bool]]:
    return list(_module_files(Path(sysconfig.get_paths()["stdlib"]), None))


def package_sources(name: str) -> list[tuple[str, Path, bool]]:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return []
    return list(_module_files(Path(next(iter(spec.submodule_search_locations))), name))


def _quote(text: str) -> str:
    return text.replace("\\", "/").replace('"', "'")


def render_entries(entries: dict[str, str]) -> str:
    lines = ["[dangerous.globals]"]
    lines += [f'"{name}" = "{_quote(entries[name])}"' for name in sorted(entries)]
    return "\n".join(lines) + "\n"


def render(stdlib: dict[str, str], packages: dict[str, str], alias: dict[str, str]) -> str:
    head = [
        "# GENERATED by scripts/gen_dangerous.py -- do not edit; edit policy.toml or the script.",
        f"# Python {sys.version.split()[0]}; "
        + ", ".join(
            f"{r} {getattr(sys.modules.get(r), '__version__', 'absent')}" for r in _ALIAS_ROOTS
        ),
        "# [dangerous.globals]: functions, methods and classes that reach code execution,",
        "# processes, imports, files or the network (source analysis of the standard library",
        "# and numpy), and other names of dangerous objects (aliases in the installed numpy,",
        "# torch and standard library namespaces). Only what policy.toml does not already cover.",
        "",
    ]
    return "\n".join(head) + "\n" + render_entries({**packages, **stdlib, **alias})


def build(deep: bool) -> str:
    std = minimal(analyse(stdlib_sources()), Rules())
    # numpy's Python sources are analysed like the standard library's. torch's are not: its
    # call graph is too large for this analysis to stay precise (nearly every tensor function
    # "reaches" a file write through some generic helper); torch's dangerous parts are listed
    # by hand in policy.toml, and their aliases are derived below.
    pkg_found = analyse(package_sources("numpy"))
    pkg = minimal(pkg_found, Rules(std))
    load_namespaces(deep)
    known = Rules({**std, **pkg})
    danger = dangerous_objects(known.data.dangerous_globals)
    roots = (*_ALIAS_ROOTS, *sorted(sys.stdlib_module_names))
    found = aliases(known.reason, danger, roots)
    return render(std, pkg, minimal(found, known))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the shipped file")
    ap.add_argument(
        "--deep",
        action="store_true",
        help="import every torch submodule too (slow; finds more aliases)",
    )
    args = ap.parse_args(argv)
    text = build(args.deep)
    if args.check:
        same = OUT.exists() and OUT.read_text() == text
        print("up to date" if same else f"{OUT} differs: run scripts/gen_dangerous.py")
        return 0 if same else 1
    OUT.write_text(text)
    print(f"wrote {OUT} ({text.count(chr(10)) - 8} entries)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    raise SystemExit(main())
