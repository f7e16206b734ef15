"""`nll` and `nll_sum`: negative log-likelihood of the pseudo-label (higher = worse).

By default the likelihood is the teacher's own, read from stage 3's per-token
log-probabilities (no second pass): `nll` is the mean per token (docs/design.md), `nll_sum` the
total, which grows with long hallucinated outputs that the per-token mean hides.

With `nll_lm` (any transformers causal-LM directory or hub id, e.g. AceGPT for Arabic on a
GPU cluster) the pseudo-label text is scored by that language model instead: a fluent
text scores low, a garbled or looping one high.  The teacher's audio evidence is then
not used at all, which is the point of the paper's LM variant.
"""
from __future__ import annotations

import math

from udistil.errors import UdistilError
from udistil.filters.base import Score, teacher_text
from udistil.filters.token_stats import _TokenStatistic


class CausalLMScorer:
    """Per-token negative log-likelihoods of texts under a transformers causal LM."""

    def __init__(self, spec: str, device: str = "cpu", dtype: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from udistil.models.device import resolve_dtype
        from udistil.models.spec import resolve_model

        path = resolve_model(spec)
        device = torch.device(device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForCausalLM.from_pretrained(
                path, dtype=resolve_dtype(dtype, device)).to(device).eval()
        except Exception as e:  # transformers raises many types for a wrong directory
            raise UdistilError(f"{path}: cannot load a causal language model for --nll-lm "
                               f"({type(e).__name__}: {e})") from e
        self.device = device

    def token_nlls(self, text: str) -> list[float]:
        import torch

        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        # The first token needs a context to be predicted from: the BOS token when the LM has
        # one (then every text token is scored), otherwise the first token is context only.
        bos = self.tokenizer.bos_token_id
        if bos is not None:
            ids = [bos] + ids
        if len(ids) < 2:
            return []
        with torch.inference_mode():
            logits = self.model(torch.tensor([ids], device=self.device)).logits[0, :-1].float()
            logprobs = torch.log_softmax(logits, dim=-1)
            targets = torch.tensor(ids[1:], device=self.device)
            return (-logprobs.gather(1, targets[:, None])[:, 0]).tolist()


class NegativeLogLikelihood(_TokenStatistic):
    name = "nll"
    # The same point as confidence 0.5, in log space: -log(0.5) = 0.69 nats per token.
    default_threshold = math.log(2)

    def __init__(self, nll_lm: str | None = None, device: str = "cpu", dtype: str | None = None):
        self.lm = CausalLMScorer(nll_lm, device, dtype) if nll_lm else None
        if self.lm is not None:
            self.needs = ("teacher", "model")
            self.batch_size = 16

    @classmethod
    def runs_model(cls, options: dict) -> bool:
        return bool(options.get("nll_lm"))

    def summarise(self, values):
        return -sum(values) / len(values)

    def score(self, cuts, audios):
        if self.lm is None:
            return super().score(cuts, audios)
        out = []
        for cut in cuts:
            text = teacher_text(cut)
            nlls = self.lm.token_nlls(text) if text else []
            out.append(Score(self.reduce(nlls)) if nlls else Score.null("empty pseudo-label"))
        return out

    def reduce(self, nlls: list[float]) -> float:
        return sum(nlls) / len(nlls)


class TotalNegativeLogLikelihood(NegativeLogLikelihood):
    name = "nll_sum"
    # No natural threshold for a total: it grows with length; select by --keep-fraction.
    default_threshold = None

    def summarise(self, values):
        return -sum(values)

    def reduce(self, nlls):
        return sum(nlls)
