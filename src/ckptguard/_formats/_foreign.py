"""Model formats ckptguard does not read, recognised by name or by content.

A directory scan skips such files (it cannot check them) and says so: the scan's verdict is
then ``error``, never ``safe``, because a model in the directory was not checked. TensorFlow
SavedModel folders, Keras, ONNX, GGUF, TFLite, ... are formats of their own, with their own
loaders and their own ways to run code (Keras Lambda layers, TF ops that read and write
files); ckptguard's verdicts are about pickles and the formats that carry them.
"""

from __future__ import annotations

# suffix (lower case) -> (format id, what it is)
_BY_SUFFIX = {
    ".onnx": ("onnx", "an ONNX model"),
    ".onnx_data": ("onnx", "ONNX external weights"),
    ".pb": ("tensorflow", "a TensorFlow protocol buffer (SavedModel or frozen graph)"),
    ".pbtxt": ("tensorflow", "a TensorFlow text protocol buffer"),
    ".index": ("tensorflow", "a TensorFlow checkpoint index"),
    ".tflite": ("tflite", "a TensorFlow Lite model"),
    ".keras": ("keras", "a Keras model archive"),
    ".hdf5": ("hdf5", "an HDF5 file (e.g. Keras weights)"),
    ".gguf": ("gguf", "a GGUF model (llama.cpp)"),
    ".ggml": ("ggml", "a GGML model (llama.cpp)"),
    ".mlmodel": ("coreml", "a Core ML model"),
    ".pte": ("executorch", "an ExecuTorch program"),
    ".engine": ("tensorrt", "a TensorRT engine"),
    ".plan": ("tensorrt", "a TensorRT engine"),
    ".caffemodel": ("caffe", "a Caffe model"),
    ".params": ("mxnet", "MXNet parameters"),
    ".msgpack": ("flax", "Flax/msgpack weights"),
    ".pdparams": ("paddle", "PaddlePaddle parameters"),
    ".pdmodel": ("paddle", "a PaddlePaddle model"),
    ".nemo": ("nemo", "a NeMo archive"),
}
# first bytes -> (format id, what it is)
_BY_MAGIC = (
    (b"GGUF", "gguf", "a GGUF model (llama.cpp)"),
    (b"\x89HDF\r\n\x1a\n", "hdf5", "an HDF5 file (e.g. Keras weights)"),
)


def _tf_shard(name: str) -> bool:
    """TensorFlow checkpoint shards: variables.data-00000-of-00001 (no ``re``: start-up time)."""
    tail = name[-20:]
    return (
        len(tail) == 20
        and tail.startswith(".data-")
        and tail[11:15] == "-of-"
        and (tail[6:11] + tail[15:]).isdigit()
    )


def foreign_model(path: str, head: bytes | None = None) -> tuple[str, str] | None:
    """(format id, description) when ``path`` is a model ckptguard does not read, else None."""
    low = path.lower()
    dot = low.rfind(".")
    if dot > low.rfind("/"):
        hit = _BY_SUFFIX.get(low[dot:])
        if hit is not None:
            return hit
    if _tf_shard(low):
        return ("tensorflow", "a TensorFlow checkpoint shard")
    if head is not None:
        for magic, fmt, what in _BY_MAGIC:
            if head.startswith(magic):
                return (fmt, what)
        if head[4:8] == b"TFL3":
            return ("tflite", "a TensorFlow Lite model")
    return None
