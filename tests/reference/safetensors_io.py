"""safetensors_io.py: reading and writing .safetensors files (SPEC §6) with
nothing but struct, json and numpy.

Layout: 8-byte little-endian header length N, N bytes of JSON header (padded
with spaces so that 8 + N is a multiple of 8), then the tensor data. The header
maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
(offsets relative to the start of the data), plus an optional "__metadata__"
object whose values are strings.

Errors are ValueError("FILE: tensor 'NAME': what is wrong").
"""

import json
import os
import struct
import tempfile

import numpy as np

# Header size bound, as in the reference implementation (and the C reader).
MAX_HEADER = 100 * 1024 * 1024

# safetensors dtype name -> numpy dtype of the stored bytes (little-endian).
# BF16 has no numpy type: it is stored as uint16 and widened on read.
DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}

# numpy dtype -> safetensors name, for arrays written without an explicit dtype.
_NAME_OF = {
    np.dtype("float64"): "F64",
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("int16"): "I16",
    np.dtype("int8"): "I8",
    np.dtype("uint64"): "U64",
    np.dtype("uint32"): "U32",
    np.dtype("uint16"): "U16",
    np.dtype("uint8"): "U8",
    np.dtype("bool"): "BOOL",
}


def bf16_to_f32(bits):
    """uint16 bfloat16 bit patterns -> float32 (exact)."""
    return (np.asarray(bits, dtype=np.uint32) << 16).view(np.float32)


def f32_to_bf16(values):
    """float32 -> uint16 bfloat16 bit patterns, round to nearest even; NaN stays NaN."""
    u = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(values, dtype=np.float32))
    quiet = ((u >> 16) | 0x40).astype(np.uint16)
    return np.where(nan, quiet, rounded).astype(np.uint16)


def _encode(name, array, dtype):
    """Returns (dtype name, shape, little-endian bytes) for one tensor."""
    array = np.asarray(array)
    if dtype is None:
        if array.dtype not in _NAME_OF:
            raise ValueError(f"tensor '{name}': numpy dtype {array.dtype} has no safetensors name")
        dtype = _NAME_OF[array.dtype]
    if dtype == "BF16":
        stored = f32_to_bf16(array.astype(np.float32))
    elif dtype in DTYPES:
        stored = array.astype(DTYPES[dtype])
    else:
        raise ValueError(f"tensor '{name}': unknown dtype '{dtype}'")
    stored = np.ascontiguousarray(stored)
    return dtype, [int(s) for s in array.shape], stored.tobytes()


def write_safetensors(path, tensors, metadata=None):
    """Writes @tensors, a sequence of (name, array) or (name, array, dtype)
    (or a dict name -> array), in the order given, with the string
    dict @metadata as "__metadata__". Atomic: temporary file, fsync, rename."""
    if isinstance(tensors, dict):
        tensors = list(tensors.items())
    header = {}
    if metadata:
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError(f"{path}: __metadata__ keys and values must be strings ({key!r})")
        header["__metadata__"] = dict(metadata)
    blobs = []
    offset = 0
    for entry in tensors:
        name, array = entry[0], entry[1]
        dtype = entry[2] if len(entry) > 2 else None
        if name == "__metadata__" or name in header:
            raise ValueError(f"{path}: tensor '{name}': duplicate or reserved name")
        dtype, shape, data = _encode(name, array, dtype)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for blob in blobs:
                f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_safetensors(path, raw=False):
    """Reads and validates a file. Returns (tensors, metadata): tensors is a
    dict name -> numpy array in file order (BF16 widened to float32 unless
    @raw, F16 kept as float16), metadata a dict of strings."""
    with open(path, "rb") as f:
        blob = f.read()
    return parse_safetensors(blob, path, raw=raw)


def parse_safetensors(blob, display_name="<bytes>", raw=False):
    def fail(message, tensor=None):
        where = f"{display_name}: tensor '{tensor}': " if tensor is not None else f"{display_name}: "
        raise ValueError(where + message)

    if len(blob) < 8:
        fail(f"file is {len(blob)} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER:
        fail(f"header length {n} exceeds the limit of {MAX_HEADER} bytes")
    if 8 + n > len(blob):
        fail(f"header length {n} runs past the end of the file ({len(blob)} bytes)")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        fail(f"header is not valid UTF-8 JSON ({e})")
    if not isinstance(header, dict):
        fail("header is not a JSON object")

    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        fail("__metadata__ is not an object")
    for key, value in metadata.items():
        if not isinstance(value, str):
            fail(f"__metadata__ value of '{key}' is not a string")

    data = memoryview(blob)[8 + n:]
    entries = []
    for name, info in header.items():
        if not isinstance(info, dict):
            fail("entry is not an object", name)
        dtype = info.get("dtype")
        shape = info.get("shape")
        offsets = info.get("data_offsets")
        if dtype not in DTYPES:
            fail(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}", name)
        if (not isinstance(shape, list)
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
            fail(f"shape {shape!r} is not a list of non-negative integers", name)
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
                or offsets[0] > offsets[1]):
            fail(f"data_offsets {offsets!r} is not [begin, end] with 0 <= begin <= end", name)
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        expected = count * DTYPES[dtype].itemsize
        if offsets[1] - offsets[0] != expected:
            fail(f"holds {offsets[1] - offsets[0]} bytes, expected {expected} "
                 f"for shape {shape} of {dtype}", name)
        entries.append((offsets[0], offsets[1], name, dtype, shape))

    # Offsets must tile the data section exactly: no gaps, no overlaps.
    entries.sort(key=lambda e: (e[0], e[1]))
    position = 0
    for begin, end, name, _, _ in entries:
        if begin != position:
            fail(f"data starts at byte {begin}, expected {position} "
                 "(tensors must be contiguous)", name)
        position = end
    if position != len(data):
        fail(f"data section is {len(data)} bytes, the tensors cover {position}")

    tensors = {}
    for begin, end, name, dtype, shape in entries:
        array = np.frombuffer(data[begin:end], dtype=DTYPES[dtype]).reshape(shape).copy()
        if dtype == "BF16" and not raw:
            array = bf16_to_f32(array).reshape(shape)
        tensors[name] = array
    return tensors, dict(metadata)


def header_of(path):
    """The parsed JSON header (with __metadata__) of a file, for inspection."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n).decode("utf-8"))
