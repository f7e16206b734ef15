"""Arrays appended to one file per writer, read back at random: files grow with shards, not cuts.

Stage 3's distillation targets and stage 6's encoder cache hold one or a few small arrays
per cut.  One `.npy` file per array would make millions of files at a few hundred thousand
cuts, which cluster file systems (Lustre, GPFS, NFS) handle slowly and count against quotas.
Here every writing process (one stage-3 shard, one cache-building job) appends its arrays to
a single `<name>.chunks` file; each array is described by a lhotse `Array` manifest whose
storage key locates it:

    storage_type "udistil_chunks", storage_path the file, storage_key
    "OFFSET:NBYTES:DTYPE:CRC32:SHAPE"  (e.g. "40960:3584:<i4:9f1c0b2a:14x64")

so `cut.load_kd_topk_ids()` and `Array.load()` read it like any lhotse array (the reader is
registered with lhotse when this module is imported, as udistil's readers do).

A kill can leave the file's last array half written: nothing refers to it (the manifest line
or index line that would is written only after the array is flushed), a resumed writer
appends after it, and the CRC in every key would refuse such bytes if a broken reference
ever pointed at them.  Only one process may append to a file: writers take its lock
(udistil.parallel.lock), so two jobs given the same name stop instead of interleaving.
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
from lhotse.array import Array
from lhotse.features.io import FeaturesReader, register_reader

from udistil.errors import UdistilError

STORAGE_TYPE = "udistil_chunks"
SUFFIX = ".chunks"


def make_key(offset: int, nbytes: int, dtype: np.dtype, crc: int, shape) -> str:
    return f"{offset}:{nbytes}:{np.dtype(dtype).str}:{crc:08x}:{'x'.join(str(int(s)) for s in shape)}"


def parse_key(key: str) -> tuple[int, int, np.dtype, int, tuple[int, ...]]:
    offset, nbytes, dtype, crc, shape = key.split(":")
    dims = tuple(int(s) for s in shape.split("x")) if shape else ()
    return int(offset), int(nbytes), np.dtype(dtype), int(crc, 16), dims


class ChunkWriter:
    """Appends arrays to `path` (created when missing); `fresh=True` empties it first."""

    def __init__(self, path, fresh: bool = False):
        from udistil.parallel.lock import OutputLock

        self.path = Path(path).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = OutputLock(self.path).acquire()
        try:
            self._fh = open(self.path, "wb" if fresh else "ab")
        except BaseException:
            self._lock.release()
            raise
        self._fh.seek(0, os.SEEK_END)
        self.bytes_written = 0

    def store_array(self, value: np.ndarray) -> Array:
        value = np.ascontiguousarray(value)
        data = value.tobytes()
        offset = self._fh.tell()
        try:
            self._fh.write(data)
            self._fh.flush()
        except OSError as e:  # a full disk names no file by itself
            raise OSError(e.errno, e.strerror, str(self.path)) from e
        self.bytes_written += len(data)
        key = make_key(offset, len(data), value.dtype, zlib.crc32(data), value.shape)
        return Array(storage_type=STORAGE_TYPE, storage_path=str(self.path), storage_key=key,
                     shape=list(value.shape))

    def close(self) -> None:
        try:
            if not self._fh.closed:
                self._fh.close()
        finally:
            self._lock.release()


# Open files per process (a forked DataLoader worker opens its own): a training step reads a
# few arrays from each of a few files, and reopening a file per array is most of its cost.
_OPEN: dict[tuple[int, str], int] = {}
_MAX_OPEN = 256


def _descriptor(path: str) -> int:
    key = (os.getpid(), path)
    fd = _OPEN.get(key)
    if fd is None:
        if len(_OPEN) >= _MAX_OPEN:
            for old_key in list(_OPEN)[: _MAX_OPEN // 2]:
                old = _OPEN.pop(old_key)
                if old_key[0] == os.getpid():
                    os.close(old)
        fd = os.open(path, os.O_RDONLY)
        _OPEN[key] = fd
    return fd


def read_chunk(path: str, key: str) -> np.ndarray:
    offset, nbytes, dtype, crc, shape = parse_key(key)
    try:
        data = os.pread(_descriptor(path), nbytes, offset)
    except OSError as e:
        raise UdistilError(f"{path}: cannot read {nbytes} bytes at {offset} ({e})") from e
    if len(data) != nbytes or zlib.crc32(data) != crc:
        raise UdistilError(f"{path}: the array at byte {offset} is truncated or damaged "
                           f"({len(data)} of {nbytes} bytes, checksum "
                           f"{'ok' if zlib.crc32(data) == crc else 'wrong'})")
    return np.frombuffer(bytearray(data), dtype=dtype).reshape(shape)  # writable, as np.load gives


@register_reader
class ChunkReader(FeaturesReader):
    """lhotse's reader for `udistil_chunks` arrays (Array.load, cut.load_<field>)."""

    name = STORAGE_TYPE

    def __init__(self, storage_path, *args, **kwargs):
        super().__init__()
        self.storage_path = str(storage_path)

    def read(self, key: str, left_offset_frames: int = 0, right_offset_frames: int | None = None) -> np.ndarray:
        return read_chunk(self.storage_path, key)[left_offset_frames:right_offset_frames]
