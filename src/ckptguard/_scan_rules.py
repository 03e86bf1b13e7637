"""Every rule id a scan can report, defined once: readers use these constants, the SARIF
reporter lists them, and ``docs/rules.md`` must list exactly them (a test checks).

A rule id is a stable kebab-case string prefixed by its area (``pickle-``, ``zip-``,
``torch-``, ``npy-``, ``safetensors-``, ``format-``, ``remote-``, ``dcp-``; ``scan-error`` for other unreadable
files; ``global-`` for the SARIF results about globals). It is a JSON and SARIF contract:
never rename one. Adding a rule is one line here (``NAME = _rule("area-name", Severity.X,
"what it means")``), one line in ``docs/rules.md``, and the constant at the place that
reports it.

``severity`` is the severity findings of the rule carry (the SARIF default level). Cheap to
import: the scan path loads it, so no dataclasses and no typing.
"""

from __future__ import annotations

from ckptguard._record import Record, set_field
from ckptguard._verdict import Severity


class Rule(Record):
    """One rule: its id, the severity its findings carry, and what it means (one sentence)."""

    __slots__ = ("id", "severity", "description")  # noqa: RUF023 - field order
    id: str
    severity: Severity
    description: str

    def __init__(self, id: str, severity: Severity, description: str) -> None:
        set_field(self, "id", id)
        set_field(self, "severity", severity)
        set_field(self, "description", description)


RULES: dict[str, Rule] = {}


def _rule(rule_id: str, severity: Severity, description: str) -> str:
    if rule_id in RULES:  # pragma: no cover - a typo in this file
        raise ValueError(f"rule {rule_id} defined twice")
    RULES[rule_id] = Rule(rule_id, severity, description)
    return rule_id


E, D, W = Severity.ERROR, Severity.DANGEROUS, Severity.WARNING

# fmt: off

# Globals (SARIF results for a file's non-safe globals; never a finding).
GLOBAL_DANGEROUS = _rule("global-dangerous", D, "A pickle would import a code-execution, import, file, process or network primitive.")
GLOBAL_UNKNOWN = _rule("global-unknown", W, "A pickle would import a global that is neither vetted nor allowed by the policy.")

# Pickles (the symbolic unpickler, _pickle/_vm.py, and pickles in a row, _formats/_common.py).
PICKLE_CALL_ARGUMENT = _rule("pickle-call-argument", E, "A vetted callable is called with arguments whose cost is not bounded by the file, or that change state outside the objects the pickle builds.")
PICKLE_DEEP_KEY = _rule("pickle-deep-key", E, "A dict key or set item is nested so deep that hashing it can crash the loading process.")
PICKLE_DISCARDED_CALL = _rule("pickle-discarded-call", W, "The result of a call is thrown away: a call made only for its side effects.")
PICKLE_DYNAMIC_GLOBAL = _rule("pickle-dynamic-global", D, "STACK_GLOBAL's module or name is computed, so the global it imports cannot be known without running the file.")
PICKLE_EXT_OPCODE = _rule("pickle-ext-opcode", D, "EXT opcodes import a global from the loading process's copyreg registry, which cannot be vetted.")
PICKLE_FRAME_AMBIGUITY = _rule("pickle-frame-ambiguity", E, "A FRAME does not hold whole opcodes: loaders reading from a buffer, a file or BytesIO read different bytes.")
PICKLE_GLOBAL_MUTATION = _rule("pickle-global-mutation", D, "The pickle modifies a global itself (monkey-patches module state).")
PICKLE_HASH_COLLISIONS = _rule("pickle-hash-collisions", E, "Many keys with one hash go into a dict or set: the loader takes quadratic time.")
PICKLE_INDIRECT_CALL = _rule("pickle-indirect-call", D, "A call of a value that is not a global: what runs cannot be known without running the file.")
PICKLE_INVALID_OPERATION = _rule("pickle-invalid-operation", E, "An operation the real unpickler fails on, or that ckptguard does not model.")
PICKLE_OUT_OF_BAND_BUFFER = _rule("pickle-out-of-band-buffer", E, "A protocol 5 out-of-band buffer: the data is not in the file.")
PICKLE_SHARED_MUTATION = _rule("pickle-shared-mutation", E, "The pickle changes the object of a persistent id (a storage shared between tensors).")
PICKLE_TRAILING_DATA = _rule("pickle-trailing-data", E, "Bytes after the last complete pickle are not a valid pickle.")
PICKLE_UNBOUNDED_KEY = _rule("pickle-unbounded-key", E, "A key whose hash re-walks shared tuples: the loader takes time exponential in the file.")
PICKLE_UNBOUNDED_WORK = _rule("pickle-unbounded-work", E, "Loading the pickle takes more steps than its size allows: it would not finish in time and memory proportional to the file.")

# Zip archives (_formats/_zip.py, _formats/_torchzip.py, _formats/_common.py).
ZIP_CASE_COLLISION = _rule("zip-case-collision", E, "Two member names differ only in letter case: torch's lookups ignore case.")
ZIP_CASE_VARIANT = _rule("zip-case-variant", E, "The data.pkl member is spelled in another letter case: torch.load unpickles it anyway.")
ZIP_DIRECTORY_ATTRIBUTE = _rule("zip-directory-attribute", E, "A member is a directory by its attribute or name but holds data (or the other way round): zipfile and PyTorch read it differently.")
ZIP_INFLATE_LIMIT = _rule("zip-inflate-limit", E, "A deflated member ckptguard must read declares more inflated bytes than ckptguard inflates: refused unread.")
ZIP_LONG_NAME = _rule("zip-long-name", E, "A member name longer than torch's 511-byte cut: torch.load would see another name.")

# PyTorch archives and legacy files (_formats/_torchzip.py, _formats/_legacy.py, _detect.py).
TORCH_BAD_LOCATION = _rule("torch-bad-location", E, "A tensor storage names a device torch.load does not know.")
TORCH_BAD_PERSISTENT_ID = _rule("torch-bad-persistent-id", E, "A persistent id is not a torch storage reference: torch.load fails.")
TORCH_LEGACY_FRAME = _rule("torch-legacy-frame", E, "A legacy torch file's pickles end inside a FRAME: which bytes torch.load reads next is ambiguous.")
TORCH_LEGACY_MAGIC_OBJECT = _rule("torch-legacy-magic-object", E, "Pickles in a row whose first objects only compare equal to torch's legacy magic numbers: torch.load reads them as a legacy checkpoint.")
TORCH_MISSING_STORAGE = _rule("torch-missing-storage", E, "A tensor refers to a storage record the archive does not hold.")
TORCH_STORAGE_KEYS = _rule("torch-storage-keys", E, "A legacy file's storage-key list does not match the storages its object pickle references.")
TORCH_STORAGE_SIZE = _rule("torch-storage-size", E, "A storage's size does not match what the pickle says.")
TORCH_TENSOR_LAYOUT = _rule("torch-tensor-layout", E, "A tensor's size, stride or offset does not fit its storage.")
TORCH_TORCHSCRIPT = _rule("torch-torchscript", D, "A TorchScript archive: code, not only weights (torch.load hands it to torch.jit.load, which compiles and runs it); ckptguard never loads one, and convert extracts its weights.")
TORCH_MODULE_SOURCE = _rule("torch-module-source", Severity.INFO, "A legacy whole-model pickle carries its module classes' source text; it is never executed (only compared with the installed class).")
TORCH_TRAILING_DATA = _rule("torch-trailing-data", E, "Bytes after a legacy file's last storage: the file was altered or appended to.")
TORCH_TRUNCATED = _rule("torch-truncated", E, "A legacy file's storage is cut off: truncated file.")

# numpy (_formats/_npy.py).
NPY_DTYPE = _rule("npy-dtype", E, "A .npy dtype ckptguard does not fully understand: numpy may read the data as pickled objects.")
NPY_HEADER = _rule("npy-header", E, "A .npy header that is malformed, truncated or of an unsupported version.")
NPY_SIZE = _rule("npy-size", E, "A .npy array's data is not the size its header says (or an object array has no pickle).")

# Formats (_formats/_detect.py, _formats/_common.py, _scan.py).
FORMAT_FRAME_TAIL = _rule("format-frame-tail", E, "Pickles in a row where a STOP inside a FRAME makes loaders start the next pickle at different bytes.")
FORMAT_NOT_READ = _rule("format-not-read", E, "A model file of a format ckptguard does not read (SavedModel, Keras, ONNX, GGUF, ...): it was not checked, so the scan is an error, never safe.")
FORMAT_SAFETENSORS_PICKLE = _rule("format-safetensors-pickle", E, "A safetensors file whose bytes are also a pickle that pickle.load, numpy.load and torch.load would run.")
FORMAT_TAR = _rule("format-tar", E, "A file tarfile opens: torch.load tries PyTorch's unsupported pre-0.4 tar format first.")

# Anything else unreadable.
SCAN_ERROR = _rule("scan-error", E, "The file is missing, unreadable, truncated, inconsistent or not a checkpoint; ckptguard fails closed: never reported safe.")

# Remote objects (_remote/): a file that could not be read whole and exactly is an error.
REMOTE_CHANGED = _rule("remote-changed", E, "The object changed between requests (ETag, Last-Modified or size differ): the bytes read are not one version.")
REMOTE_FORBIDDEN = _rule("remote-forbidden", E, "The server refused access to the object (401/403, access denied).")
REMOTE_HTTP_ERROR = _rule("remote-http-error", E, "The server answered with an HTTP status ckptguard does not read as a result.")
REMOTE_NO_RANGE = _rule("remote-no-range", E, "The server ignores Range requests and the object is larger than the whole-read cap.")
REMOTE_NOT_FOUND = _rule("remote-not-found", E, "No such object, key or bucket (404/410).")
REMOTE_SIZE_MISMATCH = _rule("remote-size-mismatch", E, "A Content-Range or Content-Length that is not the range asked for, or a size that does not hold.")
REMOTE_TIMEOUT = _rule("remote-timeout", E, "No answer within the timeout, after the retries.")
REMOTE_TRUNCATED = _rule("remote-truncated", E, "Fewer bytes than asked for: a body cut short.")
REMOTE_UNAVAILABLE = _rule("remote-unavailable", E, "The server or connection failed (5xx, 429, resets), after the retries.")
REMOTE_WORKER_LOST = _rule("remote-worker-lost", E, "The Dask cluster gave up on the file's task after its retries.")

# Distributed checkpoints (_dcp/): a DCP directory whose metadata and shards do not agree is an error.
DCP_BYTES_FORMAT = _rule("dcp-bytes-format", E, "A DCP bytes item that is not a torch.save'd checkpoint ckptguard reads (a plain pickle would be unpickled by torch.load).")
DCP_CHUNK_SIZE = _rule("dcp-chunk-size", E, "A DCP tensor chunk's storage is smaller than its elements need.")
DCP_CHUNK_TILING = _rule("dcp-chunk-tiling", E, "A DCP tensor's chunks do not tile the tensor exactly (gaps, overlaps or chunks outside it).")
DCP_METADATA = _rule("dcp-metadata", E, "A DCP .metadata file that is not the metadata dataclasses dcp.save writes (wrong types, unknown fields, trailing bytes).")
DCP_MISSING_ITEM = _rule("dcp-missing-item", E, "A DCP item the metadata lists has no storage record, or a storage record names no item.")
DCP_MISSING_METADATA = _rule("dcp-missing-metadata", E, "A DCP directory or shard without the .metadata file that describes it.")
DCP_MISSING_SHARD = _rule("dcp-missing-shard", E, "A shard file the DCP metadata names does not exist.")
DCP_OUT_OF_BOUNDS = _rule("dcp-out-of-bounds", E, "A DCP item's byte range lies outside its shard file (negative, huge or past the end).")
DCP_OVERLAP = _rule("dcp-overlap", E, "Two DCP items' byte ranges overlap in a shard file.")
DCP_PATH = _rule("dcp-path", E, "A DCP shard path that is not a plain file name in the checkpoint directory (.., absolute paths, links).")
DCP_SHARD_GAP = _rule("dcp-shard-gap", E, "Bytes of a DCP shard file that belong to no item.")
DCP_TRANSFORM = _rule("dcp-transform", E, "A DCP item with transform descriptors (compression, encryption or another storage extension) ckptguard does not read.")

# fmt: on

del E, D, W
