"""The scan path, declared once: every module ``ckptguard scan`` may import.

Start-up is most of a short scan's time (the CLI is benchmarked as a whole process), so these
modules, and only these, may use start-up tricks: typing-only imports under a module-level
``TYPE_CHECKING = False``, and imports inside functions so that a module is loaded only when
a scan needs it (a reader for a format, a reporter for an output mode). ``tests/test_startup.py``
checks both directions: a scan of every format in every output mode imports exactly these
modules, and no module outside them uses a start-up trick.
"""

from __future__ import annotations

SCAN_PATH = (
    "ckptguard",
    "ckptguard._advice",
    "ckptguard._assess",
    "ckptguard._cli",
    "ckptguard._cli._argparse",
    "ckptguard._cli._output",
    "ckptguard._cli._progress",
    "ckptguard._cli._scan",
    "ckptguard._errors",
    "ckptguard._formats",
    "ckptguard._formats._common",
    "ckptguard._formats._detect",
    "ckptguard._formats._extracted",
    "ckptguard._formats._foreign",
    "ckptguard._formats._framing",
    "ckptguard._formats._legacy",
    "ckptguard._formats._npy",
    "ckptguard._formats._safetensors",
    "ckptguard._formats._tar",
    "ckptguard._formats._text",
    "ckptguard._formats._torchscript",
    "ckptguard._formats._torchzip",
    "ckptguard._formats._zip",
    "ckptguard._gc",
    "ckptguard._grammar",
    "ckptguard._pickle",
    "ckptguard._pickle._analysis",
    "ckptguard._pickle._bounds",
    "ckptguard._pickle._opcodes",
    "ckptguard._pickle._reader",
    "ckptguard._pickle._vm",
    "ckptguard._policy",
    "ckptguard._policy._data",
    "ckptguard._policy._discovery",
    "ckptguard._policy._judge",
    "ckptguard._policy._namespace",
    "ckptguard._policy._toml",
    "ckptguard._record",
    "ckptguard._reporters",
    "ckptguard._reporters._common",
    "ckptguard._reporters._human",
    "ckptguard._reporters._json",
    "ckptguard._reporters._jsontext",
    "ckptguard._reporters._sarif",
    "ckptguard._reporters._terminal",
    "ckptguard._results",
    "ckptguard._scan",
    "ckptguard._scan_rules",
    "ckptguard._verdict",
    "ckptguard._version",
)
