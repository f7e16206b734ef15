"""Reader for CTranslate2 `model.bin` files (format version 6) into numpy arrays.

Layout (little-endian): uint32 version, string spec
name, uint32 revision, uint32 variable count, then per variable a string name, uint8 rank,
rank x uint32 dims, uint8 dtype code, uint32 byte count and the raw bytes; then a uint32
alias count and (alias, target) string pairs.  A string is a uint16 byte length followed by
that many bytes ending in NUL.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from udistil.errors import UdistilError

SUPPORTED_VERSION = 6
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
BFLOAT16 = 5  # numpy has no bfloat16: widened to float32 by hand


@dataclass
class CT2Model:
    spec: str
    revision: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.variables[self.aliases.get(name, name)]

    def __contains__(self, name: str) -> bool:
        return self.aliases.get(name, name) in self.variables


class _Cursor:
    """Sequential little-endian reads over a buffer; running past its end is a truncation."""

    def __init__(self, data: memoryview, source: str):
        self.data, self.pos, self.source = data, 0, source

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise UdistilError(f"{self.source}: truncated CTranslate2 model (needs {self.pos + n} bytes, "
                               f"file has {len(self.data)}); re-install the package (tools/install.sh)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def string(self) -> str:
        (length,) = self.unpack("H")
        raw = bytes(self.take(length))
        if not raw.endswith(b"\0"):
            raise UdistilError(f"{self.source}: corrupt CTranslate2 model (string at byte {self.pos - length} "
                               "is not NUL-terminated)")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as e:
            raise UdistilError(f"{self.source}: corrupt CTranslate2 model (bad name at byte "
                               f"{self.pos - length})") from e


def read_ctranslate2(paths) -> CT2Model:
    """Parse a CTranslate2 model.bin; `paths` may list parts to be concatenated in order."""
    parts = [Path(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
    source = " + ".join(str(p) for p in parts)
    try:
        data = b"".join(p.read_bytes() for p in parts)
    except OSError as e:
        raise UdistilError(f"{source}: cannot read CTranslate2 model: {e}") from e
    return parse_ctranslate2(memoryview(data), source)


def parse_ctranslate2(data: memoryview, source: str) -> CT2Model:
    cursor = _Cursor(data, source)
    if len(data) < 4:
        raise UdistilError(f"{source}: not a CTranslate2 model (only {len(data)} bytes)")
    (version,) = cursor.unpack("I")
    if version != SUPPORTED_VERSION:
        hint = ("not a CTranslate2 model" if version > 1000 else
                f"CTranslate2 format version {version}, only {SUPPORTED_VERSION} is supported")
        raise UdistilError(f"{source}: {hint}")
    model = CT2Model(spec=cursor.string(), revision=cursor.unpack("I")[0])
    (count,) = cursor.unpack("I")
    for _ in range(count):
        name = cursor.string()
        (rank,) = cursor.unpack("B")
        shape = cursor.unpack(f"{rank}I") if rank else ()
        code, nbytes = cursor.unpack("BI")
        raw = cursor.take(nbytes)
        model.variables[name] = _to_array(raw, code, shape, name, source)
    (n_aliases,) = cursor.unpack("I")
    for _ in range(n_aliases):
        alias, target = cursor.string(), cursor.string()
        model.aliases[alias] = target
    if cursor.pos != len(data):
        raise UdistilError(f"{source}: corrupt CTranslate2 model ({len(data) - cursor.pos} unexpected bytes at the end)")
    return model


def _to_array(raw: memoryview, code: int, shape, name: str, source: str) -> np.ndarray:
    n = int(np.prod(shape)) if shape else 1
    if code == BFLOAT16:
        halves = np.frombuffer(raw, dtype="<u2")
        array = (halves.astype(np.uint32) << 16).view(np.float32)
    elif code in DTYPES:
        array = np.frombuffer(raw, dtype=np.dtype(DTYPES[code]).newbyteorder("<"))
    else:
        raise UdistilError(f"{source}: corrupt CTranslate2 model (variable {name} has unknown dtype code {code})")
    if array.size != n:
        raise UdistilError(f"{source}: corrupt CTranslate2 model (variable {name}: {array.size} values "
                           f"for shape {tuple(shape)})")
    return array.reshape(shape)
