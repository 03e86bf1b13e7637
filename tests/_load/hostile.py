"""Hostile checkpoints for the loader, built opcode by opcode; each would create ``marker``.

Every payload is wrapped in a real torch zip archive (its data.pkl replaced) or a legacy
torch file, since those are the formats ``ckptguard.load`` hands to torch.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

PROTO2 = b"\x80\x02"
PROTO4 = b"\x80\x04"


def _u(text: str) -> bytes:
    raw = text.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw


def _short(text: str) -> bytes:
    raw = text.encode()
    return pickle.SHORT_BINUNICODE + bytes([len(raw)]) + raw


def _g(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _cmd(marker: Path) -> str:
    return f"touch {marker}"


def _code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def os_system(m: Path) -> bytes:
    return PROTO2 + _g("os", "system") + _u(_cmd(m)) + pickle.TUPLE1 + pickle.REDUCE + pickle.STOP


def posix_system(m: Path) -> bytes:
    return PROTO2 + _g("posix", "system") + _u(_cmd(m)) + pickle.TUPLE1 + pickle.REDUCE + b"."


def builtins_exec(m: Path) -> bytes:
    return PROTO2 + _g("builtins", "exec") + _u(_code(m)) + pickle.TUPLE1 + pickle.REDUCE + b"."


def py2_builtin_eval(m: Path) -> bytes:
    # protocol 2: __builtin__ is renamed to builtins by fix_imports
    return PROTO2 + _g("__builtin__", "eval") + _u(_code(m)) + pickle.TUPLE1 + pickle.REDUCE + b"."


def stack_global_memo(m: Path) -> bytes:
    # STACK_GLOBAL whose operands come from the memo
    return (
        PROTO4 + _short("builtins") + pickle.MEMOIZE + _short("exec") + pickle.MEMOIZE
        + pickle.POP + pickle.POP + pickle.BINGET + b"\x00" + pickle.BINGET + b"\x01"
        + pickle.STACK_GLOBAL + _u(_code(m)) + pickle.TUPLE1 + pickle.REDUCE + pickle.STOP
    )  # fmt: skip


def dotted_attribute(m: Path) -> bytes:
    # protocol 4 dotted name: torch + serialization.os.system
    return (
        PROTO4 + _short("torch") + _short("serialization.os.system") + pickle.STACK_GLOBAL
        + _u(_cmd(m)) + pickle.TUPLE1 + pickle.REDUCE + pickle.STOP
    )  # fmt: skip


def inst_opcode(m: Path) -> bytes:
    return b"(" + _u(_cmd(m)) + pickle.INST + b"os\nsystem\n" + pickle.STOP


def obj_opcode(m: Path) -> bytes:
    return PROTO2 + b"(" + _g("os", "system") + _u(_cmd(m)) + pickle.OBJ + pickle.STOP


def hidden_in_state_dict(m: Path) -> bytes:
    # a plausible dict whose one value is a call to subprocess
    return (
        PROTO2 + b"}" + _short("weight") + _g("subprocess", "call")
        + b"(" + _short("sh") + _short("-c") + _u(_cmd(m)) + b"l" + pickle.TUPLE1
        + pickle.REDUCE + pickle.SETITEM + pickle.STOP
    )  # fmt: skip


def discarded_call(m: Path) -> bytes:
    # the payload runs and its result is popped; the visible value is harmless
    return (
        PROTO2 + _g("os", "system") + _u(_cmd(m)) + pickle.TUPLE1 + pickle.REDUCE
        + pickle.POP + b"}" + pickle.STOP
    )  # fmt: skip


def ext_opcode(m: Path) -> bytes:
    return PROTO2 + pickle.EXT1 + b"\x01" + _u(_cmd(m)) + pickle.TUPLE1 + pickle.REDUCE + b"."


def global_mutation(m: Path) -> bytes:
    # BUILD on a vetted class object itself (monkey-patching it), then calling it
    return (
        PROTO2 + _g("argparse", "Namespace") + b"N}" + _short("__init__") + _g("os", "system")
        + pickle.SETITEM + pickle.TUPLE2 + pickle.BUILD + pickle.POP + b"}" + pickle.STOP
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
