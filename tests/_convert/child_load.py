"""Run in a fresh interpreter: stock torch.load (defaults) of each converted file.

Writes, for each input, ``OUT_DIR/<i>.flat.pt``: {path: tensor} of every tensor found (saved
with torch.save so that storage sharing survives), and prints one JSON line per input with the
plain (non-tensor) structure. The original classes (tests.factories, fairseq stand-ins) are not
importable here: this file runs with -I from a temporary directory.
"""

import json
import sys

import torch


def walk(o, path, flat):
    if isinstance(o, torch.Tensor):
        flat[path] = o
        return {"$tensor": path}
    if isinstance(o, dict):
        return {str(k): walk(v, f"{path}/{k}", flat) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [walk(v, f"{path}/{i}", flat) for i, v in enumerate(o)]
    if isinstance(o, (int, float, str, bool)) or o is None:
        return o
    return {"$type": type(o).__name__, "repr": repr(o)}


out_dir = sys.argv[1]
assert "tests" not in sys.modules
for i, path in enumerate(sys.argv[2:]):
    obj = torch.load(path)
    flat: dict = {}
    plain = walk(obj, "", flat)
    torch.save(flat, f"{out_dir}/{i}.flat.pt")
    print(json.dumps(plain))
