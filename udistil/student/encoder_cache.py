"""Frozen encoder outputs, computed once per cut and shared by every epoch and student.

A student that keeps the teacher's encoder and does not train it (distil-whisper's
shape: the whole encoder, a few decoder layers) has an encoder whose output is a fixed
function of the clip.  Computing it once and storing it makes training decoder-only: no
encoder runs after the first pass over the data, in any epoch, for any student that
shares those weights and that audio-context rule.

Storage is lhotse's (`NumpyFilesWriter`, read back through `lhotse.Array`), float16, one
array [positions, d_model] per cut, at the length the student's context rule gives the
cut (audio_context.py).  `index.jsonl` lists the finished entries; a line is appended only
after its array is fully written, so a kill leaves at most an orphan file that is redone.
The directory is named by the encoder's identity (a hash of its weights and the rule), so
another encoder can never read these states.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from udistil.errors import UdistilError

log = logging.getLogger(__name__)

INDEX = "index.jsonl"
IDENTITY = "identity.json"


def encoder_identity(encoder, context) -> str:
    """Hash of the encoder's weights and the audio-context rule."""
    digest = hashlib.sha256(json.dumps(context.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


class EncoderCache:
    def __init__(self, root, identity: str, description: dict):
        from lhotse import NumpyFilesWriter

        self.directory = Path(root) / identity
        self.directory.mkdir(parents=True, exist_ok=True)
        info = {"identity": identity, **description}
        info_path = self.directory / IDENTITY
        if info_path.is_file():
            old = json.loads(info_path.read_text(encoding="utf-8"))
            if old.get("identity") != identity:
                raise UdistilError(f"{info_path}: belongs to encoder {old.get('identity')}, not {identity}")
        else:
            from udistil.data.manifests import write_json_atomic

            write_json_atomic(info, info_path)
        self.writer = NumpyFilesWriter(str(self.directory))
        self.entries: dict[tuple[str, int], dict] = {}
        self.computed = 0
        self.loaded = 0
        self._read_index()
        self._index = open(self.directory / INDEX, "a", encoding="utf-8")

    def _read_index(self) -> None:
        path = self.directory / INDEX
        if not path.is_file():
            return
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break  # a kill mid-line: the entry is redone
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    break
                self.entries[(row["cut"], int(row["positions"]))] = row["array"]
        if self.entries:
            log.info("%s: %d cached encoder outputs", self.directory, len(self.entries))

    def get(self, cut_id: str, positions: int) -> np.ndarray | None:
        manifest = self.entries.get((cut_id, positions))
        if manifest is None:
            return None
        from lhotse.array import Array

        try:
            value = Array.from_dict(manifest).load()
        except Exception as e:  # noqa: BLE001 - a damaged entry is recomputed, not fatal
            log.warning("%s: cut %s: cached encoder output unreadable (%s); recomputing",
                        self.directory, cut_id, e)
            del self.entries[(cut_id, positions)]
            return None
        self.loaded += 1
        return value

    def put(self, cut_id: str, positions: int, states: np.ndarray) -> None:
        if (cut_id, positions) in self.entries:
            return
        manifest = self.writer.store_array(f"{cut_id}.p{positions}", states.astype(np.float16))
        entry = manifest.to_dict()
        self._index.write(json.dumps({"cut": cut_id, "positions": positions, "array": entry}) + "\n")
        self._index.flush()
        self.entries[(cut_id, positions)] = entry
        self.computed += 1

    def close(self) -> None:
        if not self._index.closed:
            self._index.close()
