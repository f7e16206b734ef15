"""Frozen encoder outputs, computed once per cut before training and shared by every epoch,
rank and student.

A student that keeps the teacher's encoder and does not train it (distil-whisper's
shape: the whole encoder, a few decoder layers) has an encoder whose output is a fixed
function of the clip.  Computing it once and storing it makes training decoder-only: no
encoder runs in any epoch, on any rank, for any student that shares those weights and that
audio-context rule.  A student that trains only its top K encoder layers
(`--train-encoder-layers K`) caches its frozen bottom instead: the hidden states after the
first L-K layers, from which the top K layers and layer_norm run on every step.

The cache is complete before training starts.  It is built by sharded jobs
(`udistil encoder-cache`, run.sh's stage-6 pre-step through the job runner), or, for what
they left out, by the ranks of the training run itself, each encoding its own share of the
missing cuts (`fill`) before a barrier; then every rank reads every entry it needs.  No
two processes ever write one file: each writer has its own pair of files,

  <identity>/<writer>.chunks        float16 arrays [positions, d_model], appended
                                    (udistil/data/array_chunks.py)
  <identity>/<writer>.index.jsonl   one line per finished entry: cut, positions, key

and takes the chunk file's lock.  An index line is appended only after its array is
flushed, so a kill leaves at most an orphan array that is redone; a resumed job appends to
its own files.  Readers hold a compact index (a 64-bit hash, offset, size and file of each
entry: about 30 bytes per cut, not a Python object), so memory stays small at 500K cuts.

The directory is named by the encoder's identity (a hash of its weights and the rule, and
for bottom states of their number of layers and only the weights below), so another
encoder, or the whole encoder's outputs for a bottom's states, can never be read.  A cache written by an older udistil (one
`.npy` per cut, listed in `index.jsonl`) is still read.

Size: positions x d_model x 2 bytes per cut, at the student's audio context (audio_context.py):
a clip context stores 50 positions per second of audio, so a 32-16 student (d_model 1280)
needs about 0.46 GB per hour of audio, a full 30 s context 1500 positions whatever the clip.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from pathlib import Path

import numpy as np

from udistil.errors import UdistilError

log = logging.getLogger(__name__)

IDENTITY = "identity.json"
LEGACY_INDEX = "index.jsonl"
INDEX_SUFFIX = ".index.jsonl"
LAYOUT = "chunks-v1"


def encoder_identity(encoder, context, bottom_layers: int | None = None) -> str:
    """Hash of what the stored states are a function of: the audio-context rule and the
    weights of the frozen part.  bottom_layers None: the whole encoder's output (the hash
    older caches were named by); else the states after its first `bottom_layers` layers,
    hashed with that count and only the front end's and those layers' weights (so students
    that share a frozen bottom and differ above it share the cache), never equal to a
    whole-encoder identity."""
    rule = context.to_dict()
    names = None
    if bottom_layers is not None:
        from udistil.student.forward import encoder_parameter_is_trained

        n_layers = len(encoder.layers)
        rule = {**rule, "bottom_layers": int(bottom_layers)}
        names = {name for name in encoder.state_dict()
                 if not encoder_parameter_is_trained(name, n_layers, n_layers - bottom_layers)}
    digest = hashlib.sha256(json.dumps(rule, sort_keys=True).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        if names is not None and name not in names:
            continue
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def entry_hash(cut_id: str, positions: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{cut_id}\0{positions}".encode(), digest_size=8).digest(), "little")


def default_writer_name() -> str:
    """A name no other live process uses: this host and pid."""
    return f"run-{socket.gethostname()}-{os.getpid()}"


class EncoderCache:
    """bottom_layers: what the entries are (`forward.frozen_bottom_layers`): None, the whole
    frozen encoder's output; N, the hidden states after its first N layers (part of the
    identity: `encoder_identity(..., bottom_layers)`)."""

    def __init__(self, root, identity: str, description: dict, writer_name: str | None = None,
                 bottom_layers: int | None = None):
        self.directory = Path(root) / identity
        self.directory.mkdir(parents=True, exist_ok=True)
        self.identity = identity
        self.bottom_layers = bottom_layers
        info = {"identity": identity, **description, "layout": LAYOUT}
        if bottom_layers is not None:
            info["bottom_layers"] = int(bottom_layers)
        info_path = self.directory / IDENTITY
        if info_path.is_file():
            old = json.loads(info_path.read_text(encoding="utf-8"))
            if old.get("identity") != identity:
                raise UdistilError(f"{info_path}: belongs to encoder {old.get('identity')}, not {identity}")
            if old.get("bottom_layers") != info.get("bottom_layers"):
                raise UdistilError(f"{info_path}: holds {_what(old.get('bottom_layers'))}, not "
                                   f"{_what(bottom_layers)}")
        else:
            from udistil.data.manifests import write_json_atomic

            write_json_atomic(info, info_path)
        self.writer_name = writer_name or default_writer_name()
        self._writer = None
        self._index_fh = None
        self.computed = 0   # arrays this process encoded and stored
        self.loaded = 0     # arrays this process read back
        self.refresh()

    # ----- reading --------------------------------------------------------------------

    def refresh(self) -> None:
        """(Re)read every writer's index: what other jobs or ranks finished becomes visible."""
        hashes, files, keys = [], [], []
        self._files: list[str] = []
        self._legacy: dict[tuple[str, int], dict] = {}
        for index in sorted(self.directory.glob(f"*{INDEX_SUFFIX}")):
            chunks = str(index.with_name(index.name[: -len(INDEX_SUFFIX)] + ".chunks").resolve())
            file_no = len(self._files)
            self._files.append(chunks)
            for row in _finished_lines(index):
                hashes.append(entry_hash(row["cut"], int(row["positions"])))
                keys.append(row["key"])
                files.append(file_no)
        legacy = self.directory / LEGACY_INDEX
        if legacy.is_file():  # an older udistil's cache: one .npy per cut
            for row in _finished_lines(legacy):
                self._legacy[(row["cut"], int(row["positions"]))] = row["array"]
        order = np.argsort(np.asarray(hashes, dtype=np.uint64), kind="stable")
        self._hashes = np.asarray(hashes, dtype=np.uint64)[order]
        # Fixed-width bytes, not Python strings: about 64 bytes per entry, whatever the count.
        self._keys = np.asarray(keys, dtype="S64")[order]
        self._file_of = np.asarray(files, dtype=np.int32)[order]
        self._new: dict[tuple[str, int], tuple[str, str]] = {}  # this process's own puts
        if len(self):
            log.info("%s: %d cached encoder outputs", self.directory, len(self))

    def __len__(self) -> int:
        return len(self._hashes) + len(self._legacy) + len(self._new)

    def _locate(self, cut_id: str, positions: int):
        own = self._new.get((cut_id, positions))
        if own is not None:
            return own
        if len(self._hashes):
            h = np.uint64(entry_hash(cut_id, positions))
            i = int(np.searchsorted(self._hashes, h))
            if i < len(self._hashes) and self._hashes[i] == h:
                return self._files[int(self._file_of[i])], self._keys[i].decode()
        legacy = self._legacy.get((cut_id, positions))
        return ("legacy", legacy) if legacy is not None else None

    def has(self, cut_id: str, positions: int) -> bool:
        return self._locate(cut_id, positions) is not None

    def get(self, cut_id: str, positions: int) -> np.ndarray | None:
        where = self._locate(cut_id, positions)
        if where is None:
            return None
        from udistil.data.array_chunks import read_chunk

        try:
            if where[0] == "legacy":
                from lhotse.array import Array

                value = Array.from_dict(where[1]).load()
            else:
                value = read_chunk(*where)
        except Exception as e:  # noqa: BLE001 - a damaged entry is recomputed, not fatal
            log.warning("%s: cut %s: cached encoder output unreadable (%s); recomputing",
                        self.directory, cut_id, e)
            return None
        self.loaded += 1
        return value

    # ----- writing --------------------------------------------------------------------

    def put(self, cut_id: str, positions: int, states: np.ndarray) -> bool:
        """Store one output (False: it was already there)."""
        if self.has(cut_id, positions):
            return False
        if self._writer is None:
            from udistil.data.array_chunks import ChunkWriter

            self._writer = ChunkWriter(self.directory / f"{self.writer_name}.chunks")
            self._index_fh = open(self.directory / f"{self.writer_name}{INDEX_SUFFIX}", "a", encoding="utf-8")
        array = self._writer.store_array(states.astype(np.float16))
        self._index_fh.write(json.dumps({"cut": cut_id, "positions": int(positions),
                                         "key": array.storage_key}) + "\n")
        self._index_fh.flush()
        self._new[(cut_id, int(positions))] = (array.storage_path, array.storage_key)
        self.computed += 1
        return True

    def close(self) -> None:
        if self._index_fh is not None and not self._index_fh.closed:
            self._index_fh.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _what(bottom_layers) -> str:
    if bottom_layers is None:
        return "the whole encoder's outputs"
    return f"the states after the first {bottom_layers} encoder layers"


def _finished_lines(path: Path):
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                return  # a kill mid-line: the entry is redone
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                return


def cut_positions(context, cut) -> int:
    """The encoder length the trainer gives `cut` (a batch holds cuts of one length)."""
    from udistil.student.data import cut_num_samples

    return context.positions(cut_num_samples(cut))


def fill(cache: EncoderCache, cuts, encoder, feature_extractor, context, device,
         batch_size: int = 8, rank: int = 0, world_size: int = 1, window: int = 512,
         autocast=None) -> dict:
    """Encode and store the cuts of `cuts` (any iterable, streamed) that are this share's
    (position i with i % world_size == rank) and not yet cached: what `cache.bottom_layers`
    says it holds.  Cuts of one window are sorted by length and encoded in batches of one
    length.  Returns counts."""
    import contextlib

    import torch

    from udistil.data.audio import load_cut_audio
    from udistil.errors import BadAudioError
    from udistil.models.audio_context import log_mel
    from udistil.student.forward import frozen_encoder_states

    counts = {"cuts": 0, "cached": 0, "computed": 0, "bad_audio": 0}
    autocast = autocast or contextlib.nullcontext

    def run(pending):
        pending.sort(key=lambda item: item[1])
        for start in range(0, len(pending), batch_size):
            group = pending[start:start + batch_size]
            by_length: dict[int, list] = {}
            for cut, positions in group:
                by_length.setdefault(positions, []).append(cut)
            for positions, same in by_length.items():
                audios, kept = [], []
                for cut in same:
                    try:
                        audios.append(load_cut_audio(cut))
                        kept.append(cut)
                    except BadAudioError as e:
                        log.warning("%s; not cached", e)
                        counts["bad_audio"] += 1
                if not kept:
                    continue
                features = log_mel(feature_extractor, audios, positions).to(device)
                with torch.no_grad(), autocast():
                    states = frozen_encoder_states(encoder, features, positions, cache.bottom_layers)
                rows = states.float().cpu().numpy()
                for cut, row in zip(kept, rows):
                    counts["computed"] += cache.put(cut.id, positions, row)

    pending, pending_ids = [], set()
    for i, cut in enumerate(cuts):
        if i % world_size != rank:
            continue
        counts["cuts"] += 1
        positions = cut_positions(context, cut)
        if cache.has(cut.id, positions) or (cut.id, positions) in pending_ids:
            counts["cached"] += 1
            continue
        pending.append((cut, positions))
        pending_ids.add((cut.id, positions))
        if len(pending) >= window:
            run(pending)
            pending, pending_ids = [], set()
    run(pending)
    return counts
