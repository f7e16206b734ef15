"""The teacher, computed once: what the distillation loss needs from it, stored per cut.

Stage 3 decodes every clip alone with the full-context teacher.  The distribution the
teacher gives at each greedy step is, token for token, the distribution a teacher-forced
pass over its own pseudo-label would give, so stage 3 keeps it as it goes (one top-k per
step) instead of a later stage running the teacher's encoder again: that encoder pass is
most of the cost of labelling.  Students then train against the store, across epochs and
across every student, without ever loading the teacher.

Per cut, as lhotse `Array` manifests in the cut's custom fields (loaded with
`cut.load_<name>()`), the arrays themselves appended to one file per stage-3 shard,
`<targets-dir>/<shard>.chunks` (udistil/data/array_chunks.py: the store's file count grows
with shards, not with cuts):

  kd_topk_ids        int32   [rows, k]  the k most likely tokens at each step (raw logits)
  kd_topk_logprobs   float32 [rows, k]  their log-probabilities at temperature T
  kd_decoder_hidden  float16 [rows, d]  the teacher decoder's last hidden state, kept only
                                        when the students train with the hidden-state MSE
                                        (--alpha-mse > 0): 2,560 of 3,072 bytes per token
                                        for a large-v3 teacher at k = 64

rows = the pseudo-label's tokens, plus the end token when decoding stopped on it.  The
probability mass outside the top k is not lost: the loss treats it as one extra outcome
(see udistil/student/loss.py), which makes the truncated KL a lower bound of the full one.

`kd_targets` (a plain dict on the cut) says what made the arrays: the teacher's identity
(udistil/models/identity.py), k, T, the number of rows and a hash of the token sequence
they belong to, so a store from another teacher, other options or other labels is refused
by name instead of being trained on.  `store.json` records the spec (whether the hidden
states were kept included) and the storage layout: a store written one `.npy` per array by an
older udistil is still read through its cuts' manifests, but a shard is never resumed into it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from udistil.errors import UdistilError
from udistil.student.config import LossWeights

INFO_KEY = "kd_targets"
ARRAYS = ("kd_topk_ids", "kd_topk_logprobs", "kd_decoder_hidden")
STORE_INFO = "store.json"
# The storage layout, in store.json: an older per-file store (no layout) is never appended to.
LAYOUT = "chunks-v1"


@dataclass(frozen=True)
class TargetSpec:
    topk: int = 64
    temperature: float = LossWeights.temperature  # the distillation's: the KL is taken at it
    keep_hidden: bool = False

    def rows(self, logits: torch.Tensor, hidden: torch.Tensor) -> list[tuple]:
        """One (ids, logprobs, hidden) row per batch row, from raw logits [B, V] and hidden [B, d]."""
        k = min(self.topk, logits.shape[-1])
        logprobs = torch.log_softmax(logits.float() / self.temperature, dim=-1)
        values, ids = logprobs.topk(k, dim=-1)
        ids, values = ids.to(torch.int32).cpu().numpy(), values.cpu().numpy()
        states = hidden.to(torch.float16).cpu().numpy() if self.keep_hidden else [None] * len(ids)
        return list(zip(ids, values, states))


def tokens_hash(tokens: list[int]) -> str:
    return hashlib.sha256(json.dumps([int(t) for t in tokens]).encode()).hexdigest()[:16]


class TargetStore:
    """Writes the targets of labelled cuts under `directory` (one store per stage-3 output set),
    into the file of one shard, `<directory>/<shard>.chunks` (one writer per shard: its lock).

    fresh=True (a shard starting from nothing) empties that file: nothing can refer to it."""

    def __init__(self, directory, spec: TargetSpec, teacher_id: str, teacher_name: str,
                 shard: str = "targets", fresh: bool = False):
        from udistil.data.array_chunks import SUFFIX, ChunkWriter

        self.directory = Path(directory)
        self.spec, self.teacher_id = spec, teacher_id
        info = {"teacher": teacher_name, "teacher_id": teacher_id, **asdict(spec), "layout": LAYOUT}
        info_path = self.directory / STORE_INFO
        if info_path.is_file():
            old = json.loads(info_path.read_text(encoding="utf-8"))
            if old.get("layout") != LAYOUT:
                raise UdistilError(
                    f"{self.directory}: holds distillation targets in an older layout (one .npy file "
                    f"per array); its finished shards are still read, but new ones are not added to "
                    f"it: delete it (and the labels that point to it) to label again")
            if old != info:
                raise UdistilError(
                    f"{self.directory}: holds distillation targets made with {old}, not {info}; "
                    f"delete it (and the labels that point to it) to label again")
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            from udistil.data.manifests import write_json_atomic

            write_json_atomic(info, info_path)
        # Absolute, like the audio paths the stages write: the labels are then readable from
        # any directory (a student trained outside the recipe dir, a moved manifest).
        self.writer = ChunkWriter(self.directory / f"{shard}{SUFFIX}", fresh=fresh)

    def attach(self, cut, rows: list[tuple], tokens: list[int]) -> None:
        """Store `rows` (from TargetSpec.rows, one per step) and attach them to `cut`."""
        if not rows:
            return
        ids = np.stack([r[0] for r in rows])
        logprobs = np.stack([r[1] for r in rows]).astype(np.float32)
        arrays = {"kd_topk_ids": ids, "kd_topk_logprobs": logprobs}
        if self.spec.keep_hidden and rows[0][2] is not None:
            arrays["kd_decoder_hidden"] = np.stack([r[2] for r in rows])
        for name, value in arrays.items():
            manifest = self.writer.store_array(value)
            cut.custom = cut.custom or {}
            cut.custom[name] = manifest
        cut.custom[INFO_KEY] = {"teacher_id": self.teacher_id, "topk": self.spec.topk,
                                "temperature": self.spec.temperature, "rows": len(rows),
                                "tokens": tokens_hash(tokens)}

    def close(self) -> None:
        self.writer.close()


def check_cut_targets(cut, tokens: list[int], teacher_id: str | None, temperature: float,
                      source: str) -> dict:
    """The cut's target info, after checking it belongs to this teacher, T and label."""
    info = (cut.custom or {}).get(INFO_KEY)
    if not info:
        raise UdistilError(f"{source}: cut {cut.id} has no stored teacher targets")
    if teacher_id is not None and info.get("teacher_id") != teacher_id:
        raise UdistilError(
            f"{source}: cut {cut.id}: its teacher targets were made by another teacher "
            f"(id {info.get('teacher_id')}, this teacher is {teacher_id}); label again with this "
            f"teacher (stage 3) or pass the teacher that made them")
    if abs(float(info.get("temperature", -1)) - temperature) > 1e-6:
        raise UdistilError(
            f"{source}: cut {cut.id}: teacher targets stored at temperature {info.get('temperature')}, "
            f"training asks for {temperature}; relabel with --targets-temperature {temperature}")
    if info.get("tokens") != tokens_hash(tokens) or info.get("rows") not in (len(tokens), len(tokens) + 1):
        raise UdistilError(
            f"{source}: cut {cut.id}: its stored teacher targets belong to another label "
            f"({info.get('rows')} rows for {len(tokens)} tokens); they come from other cuts or "
            f"an older labelling - label again (stage 3)")
    return info


def load_targets(cut, source: str) -> dict:
    """The cut's arrays (numpy), named as in ARRAYS; a missing or broken file names itself."""
    import udistil.data.array_chunks  # noqa: F401 - registers the chunk reader with lhotse

    out = {}
    for name in ARRAYS:
        manifest = (cut.custom or {}).get(name)
        if manifest is None:
            continue
        try:
            out[name] = manifest.load()
        except Exception as e:  # noqa: BLE001 - any read failure is the same user problem
            path = Path(getattr(manifest, "storage_path", "")) / getattr(manifest, "storage_key", "")
            raise UdistilError(f"{source}: cut {cut.id}: cannot read stored teacher targets "
                               f"{path} ({type(e).__name__}: {e})") from e
    return out
