"""Batched beam search for Whisper, with the greedy loop's budget and loop stop.

Why not `model.generate()`: it decodes one clip per call here (each clip has its own token
budget), runs every beam of a looping clip to that budget, and has no loop stop.  This
search decodes a whole batch at once with one KV cache, and treats the three ways a
hypothesis can end alike:
  * the end token (stop "eot");
  * a repetition loop (stop "loop"), cut as greedy_decode cuts it, to one copy of the unit;
  * the clip's token budget (stop "budget").

A hypothesis's score is the sum of its tokens' log-probabilities (the end token's included)
divided by its length, as transformers scores it (length_penalty 1).  Each step keeps, per
request, the `beam` best unfinished continuations; a request ends when it holds `beam`
finished hypotheses (Whisper's patience of 1) or has nothing left to continue, and its
best finished hypothesis is the result.  The per-token statistics are computed afterwards
by one teacher-forced pass (transcriber.py), as for `generate()`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from udistil.teacher.greedy import STOP_BUDGET, STOP_END, STOP_LOOP, DecodeRequest, loop_cut
from udistil.teacher.token_rules import TokenRules


@dataclass
class BeamResult:
    tokens: list[int] = field(default_factory=list)  # without prompt and end token
    stop: str = STOP_END
    score: float = float("-inf")                     # length-normalised log-probability


@dataclass
class _Hypothesis:
    request: int
    tokens: list[int]
    logprob: float


def _finish(request: DecodeRequest, tokens: list[int], logprob: float, detect_loops: bool,
            ended: bool, timestamp_begin: int) -> BeamResult | None:
    """The finished hypothesis that `tokens` makes, or None while it may go on."""
    if ended:  # the end token counts in the length
        return BeamResult(tokens, STOP_END, logprob / (len(tokens) + 1))
    cut = loop_cut(tokens, timestamp_begin if request.timestamps else None) if detect_loops else None
    if cut is not None:
        return BeamResult(tokens[:cut], STOP_LOOP, logprob / len(tokens))
    if len(tokens) >= request.max_new_tokens:
        return BeamResult(tokens, STOP_BUDGET, logprob / len(tokens))
    return None


@torch.inference_mode()
def beam_decode(model, encoder_hidden: torch.Tensor, requests: list[DecodeRequest], rules: TokenRules,
                beam: int, detect_loops: bool = True) -> list[BeamResult]:
    """Beam search for every request (prompts of equal length).

    A request with `timestamps` follows Whisper's timestamp rules (token_rules.py) at every
    step, as greedy_decode does; its hypotheses keep their timestamp tokens."""
    if not requests:
        return []
    if beam < 1:
        raise ValueError(f"beam must be at least 1, not {beam}")
    prompt_len = len(requests[0].prompt)
    if any(len(r.prompt) != prompt_len for r in requests):
        raise ValueError("beam_decode needs prompts of equal length; group requests by prompt")
    device = encoder_hidden.device
    finished: list[list[BeamResult]] = [[] for _ in requests]
    # One row of the batch (and of the KV cache) per live hypothesis.
    live = [_Hypothesis(i, [], 0.0) for i in range(len(requests))]
    rows = torch.tensor([r.encoder_row for r in requests], device=device)
    encoder_states = encoder_hidden.index_select(0, rows)
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    input_ids = torch.tensor([r.prompt for r in requests], device=device)
    decoder, proj_out = model.get_decoder(), model.get_output_embeddings()
    end = rules.end_of_text
    while live:
        hidden = decoder(input_ids=input_ids, encoder_hidden_states=encoder_states, cache=cache,
                         use_cache=True).last_hidden_state[:, -1]
        logits = rules.mask_logits(proj_out(hidden).float(), [h.tokens for h in live],
                                  [requests[h.request].timestamps for h in live])
        totals = torch.log_softmax(logits, dim=-1) + torch.tensor([h.logprob for h in live], device=device)[:, None]
        by_request: dict[int, list[int]] = {}
        for row, hyp in enumerate(live):
            by_request.setdefault(hyp.request, []).append(row)
        next_live, sources = [], []
        vocab = logits.shape[1]
        for request, request_rows in by_request.items():
            scores = totals[request_rows].flatten()
            # Candidates best first (Whisper's rule): those that end are set aside, until
            # `beam` go on.  Of 2 * beam candidates at most `beam` end on the end token (one
            # per row); more end only at a loop or the budget, and fewer then go on.
            top = torch.topk(scores, min(2 * beam, int(torch.isfinite(scores).sum())))
            going = 0
            for score, flat in zip(top.values.tolist(), top.indices.tolist()):
                row, token = request_rows[flat // vocab], flat % vocab
                tokens = live[row].tokens + ([] if token == end else [token])
                done = _finish(requests[request], tokens, score, detect_loops, ended=token == end,
                               timestamp_begin=rules.timestamp_begin)
                if done is not None:
                    finished[request].append(done)
                    continue
                next_live.append(_Hypothesis(request, tokens, score))
                sources.append(row)
                going += 1
                if going == beam:
                    break
            if len(finished[request]) >= beam:
                # Done: its continuations leave the batch.
                del next_live[len(next_live) - going:], sources[len(sources) - going:]
        live = next_live
        if not live:
            break
        index = torch.tensor(sources, device=device)
        cache.batch_select_indices(index)
        encoder_states = encoder_states.index_select(0, index)
        input_ids = torch.tensor([[h.tokens[-1]] for h in live], device=device)
    return [max(done, key=lambda r: r.score) if done else BeamResult(stop=STOP_BUDGET) for done in finished]
