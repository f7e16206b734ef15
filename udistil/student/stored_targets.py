"""Reading the teacher's stored distillation targets into a training batch.

The store is written by stage 3 (udistil/teacher/kd_targets.py).  Every cut is checked
before it is trained on: made by this teacher, at this temperature, for this very label
(a store from another teacher, other options or other cuts stops the run, naming the
cut and what differs).  Rows are placed at the label positions they predict: the
teacher's row j predicts token j of the pseudo-label, which the decoder predicts at
position len(prompt) - 1 + j.
"""
from __future__ import annotations

from pathlib import Path

import torch

from udistil.errors import UdistilError
from udistil.student.data import teacher_tokens
from udistil.teacher.kd_targets import check_cut_targets, load_targets


class StoredTargets:
    def __init__(self, teacher_id: str | None, temperature: float, source: str,
                 want_hidden: bool = False):
        self.teacher_id = teacher_id
        self.temperature = temperature
        self.source = source
        self.want_hidden = want_hidden
        self.loaded_cuts = 0

    def check(self, cuts) -> int:
        """Check every cut's target info (no array is read); returns how many were checked."""
        n = 0
        for cut in cuts:
            tokens = teacher_tokens(cut)
            if tokens is None:
                raise UdistilError(f"{self.source}: cut {cut.id} has stored targets but no "
                                   "teacher_tokens to align them with")
            check_cut_targets(cut, tokens, self.teacher_id, self.temperature, self.source)
            if self.want_hidden and "kd_decoder_hidden" not in (cut.custom or {}):
                raise UdistilError(self._no_hidden(cut))
            n += 1
        return n

    def _no_hidden(self, cut) -> str:
        array = (cut.custom or {}).get("kd_topk_ids")
        store = Path(getattr(array, "storage_path", "") or "?")
        store = store.parent if store.suffix else store
        return (f"{self.source}: cut {cut.id}: --alpha-mse > 0 needs the teacher's decoder hidden "
                f"states, and the store {store} lacks them (stage 3 keeps them only for "
                "--targets-alpha-mse > 0, run.sh's alpha_mse); relabel with it, or train with --alpha-mse 0")

    def batch(self, cuts, width: int, offset: int) -> dict:
        """kd_ids [B, W, k], kd_logprobs [B, W, k], kd_mask [B, W] (+ kd_hidden [B, W, d])."""
        loaded = []
        for cut in cuts:  # every cut was checked once, by check(), before training
            arrays = load_targets(cut, self.source)
            if "kd_topk_ids" not in arrays or "kd_topk_logprobs" not in arrays:
                raise UdistilError(f"{self.source}: cut {cut.id}: stored targets lack their top-k arrays")
            if self.want_hidden and "kd_decoder_hidden" not in arrays:
                raise UdistilError(self._no_hidden(cut))
            loaded.append(arrays)
        k = loaded[0]["kd_topk_ids"].shape[1]
        ids = torch.zeros(len(cuts), width, k, dtype=torch.long)
        logprobs = torch.zeros(len(cuts), width, k, dtype=torch.float32)
        mask = torch.zeros(len(cuts), width, dtype=torch.bool)
        hidden = None
        if self.want_hidden:
            dim = loaded[0]["kd_decoder_hidden"].shape[1]
            hidden = torch.zeros(len(cuts), width, dim, dtype=torch.float32)
        for row, arrays in enumerate(loaded):
            n = arrays["kd_topk_ids"].shape[0]
            if arrays["kd_topk_ids"].shape[1] != k:
                raise UdistilError(f"{self.source}: cut {cuts[row].id}: stored top-k width "
                                   f"{arrays['kd_topk_ids'].shape[1]} differs from the batch's {k}")
            span = slice(offset, offset + n)
            ids[row, span] = torch.from_numpy(arrays["kd_topk_ids"]).long()
            logprobs[row, span] = torch.from_numpy(arrays["kd_topk_logprobs"]).float()
            mask[row, span] = True
            if hidden is not None:
                hidden[row, span] = torch.from_numpy(arrays["kd_decoder_hidden"]).float()
        self.loaded_cuts += len(cuts)
        out = {"kd_ids": ids, "kd_logprobs": logprobs, "kd_mask": mask}
        if hidden is not None:
            out["kd_hidden"] = hidden
        return out
