"""Hostile checkpoints for the loader, built opcode by opcode; each would create ``marker``.

Every payload is wrapped in a real torch zip archive (its data.pkl replaced) or a legacy
torch file, since those are the formats ``ckptguard.load`` hands to torch.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

from tests.pickleasm import (
    BUILD,
    EMPTY_DICT,
    LIST,
    MARK,
    MEMOIZE,
    NONE,
    OBJ,
    POP,
    REDUCE,
    SETITEM,
    STACK_GLOBAL,
    TUPLE1,
    TUPLE2,
    binget,
    binunicode,
    ext1,
    glob,
    inst,
    program,
    sglobal,
    ustr,
)


def _cmd(marker: Path) -> str:
    return f"touch {marker}"


def _code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _call1(func: bytes, arg: str) -> bytes:
    """func(arg) with TUPLE1 REDUCE (protocol 2)."""
    return func + binunicode(arg) + TUPLE1 + REDUCE


def os_system(m: Path) -> bytes:
    return program(_call1(glob("os", "system"), _cmd(m)))


def posix_system(m: Path) -> bytes:
    return program(_call1(glob("posix", "system"), _cmd(m)))


def builtins_exec(m: Path) -> bytes:
    return program(_call1(glob("builtins", "exec"), _code(m)))


def py2_builtin_eval(m: Path) -> bytes:
    # protocol 2: __builtin__ is renamed to builtins by fix_imports
    return program(_call1(glob("__builtin__", "eval"), _code(m)))


def stack_global_memo(m: Path) -> bytes:
    # STACK_GLOBAL whose operands come from the memo
    return program(
        ustr("builtins"), MEMOIZE, ustr("exec"), MEMOIZE, POP, POP, binget(0), binget(1),
        _call1(STACK_GLOBAL, _code(m)), protocol=4,
    )  # fmt: skip


def dotted_attribute(m: Path) -> bytes:
    # protocol 4 dotted name: torch + serialization.os.system
    return program(_call1(sglobal("torch", "serialization.os.system"), _cmd(m)), protocol=4)


def inst_opcode(m: Path) -> bytes:
    return program(MARK, binunicode(_cmd(m)), inst("os", "system"), protocol=None)


def obj_opcode(m: Path) -> bytes:
    return program(MARK, glob("os", "system"), binunicode(_cmd(m)), OBJ)


def hidden_in_state_dict(m: Path) -> bytes:
    # a plausible dict whose one value is a call to subprocess
    argv = MARK + ustr("sh") + ustr("-c") + binunicode(_cmd(m)) + LIST
    return program(EMPTY_DICT, ustr("weight"), glob("subprocess", "call"), argv, TUPLE1, REDUCE,
                   SETITEM)  # fmt: skip


def discarded_call(m: Path) -> bytes:
    # the payload runs and its result is popped; the visible value is harmless
    return program(_call1(glob("os", "system"), _cmd(m)), POP, EMPTY_DICT)


def ext_opcode(m: Path) -> bytes:
    return program(_call1(ext1(1), _cmd(m)))


def global_mutation(m: Path) -> bytes:
    # BUILD on a vetted class object itself (monkey-patching it), then calling it
    return program(
        glob("argparse", "Namespace"), NONE, EMPTY_DICT, ustr("__init__"), glob("os", "system"),
        SETITEM, TUPLE2, BUILD, POP, EMPTY_DICT,
    )  # fmt: skip


PAYLOADS: dict[str, Callable[[Path], bytes]] = {
    "os.system": os_system,
    "posix.system": posix_system,
    "builtins.exec": builtins_exec,
    "__builtin__.eval": py2_builtin_eval,
    "stack-global-memo": stack_global_memo,
    "dotted-attribute": dotted_attribute,
    "INST": inst_opcode,
    "OBJ": obj_opcode,
    "hidden-in-state-dict": hidden_in_state_dict,
    "discarded-call": discarded_call,
    "EXT1": ext_opcode,
    "global-mutation": global_mutation,
}


def torch_zip_with_pickle(path: Path, data_pkl: bytes) -> Path:
    """A real torch.save archive whose data.pkl is replaced by ``data_pkl``."""
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buf)
    buf.seek(0)
    with zipfile.ZipFile(buf) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                data = data_pkl
            zout.writestr(info.filename, data)
    return path


def legacy_with_pickle(path: Path, obj_pkl: bytes) -> Path:
    """A legacy (pre-1.6) torch file whose object pickle is ``obj_pkl`` and has no storages."""
    magic, version = 0x1950A86A20F9469CFC6C, 1001
    sys_info = {"protocol_version": version, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}  # fmt: skip
    parts = [pickle.dumps(magic, 2), pickle.dumps(version, 2), pickle.dumps(sys_info, 2),
             obj_pkl, pickle.dumps([], 2)]  # fmt: skip
    path.write_bytes(b"".join(parts))
    return path
