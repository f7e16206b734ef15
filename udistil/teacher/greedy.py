"""Batched greedy decoding for Whisper that does no wasted work.

Why not `model.generate()`: on a CPU, the work that dominates labelling is work nobody
wants: a hallucinating clip that loops to the 448-token limit holds its whole batch for
hundreds of decoder steps, and finished rows keep being computed until the last row ends.
This loop
  * gives each row a token budget tied to its audio duration,
  * stops a row as soon as its output becomes a repetition loop (and says so: a loop is a
    quality signal for the filters),
  * drops finished rows from the batch and from the KV cache,
  * records each output token's log-probability and the entropy of the distribution it was
    drawn from, in the same pass (the confidence/entropy/nll filters reuse them).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from udistil.teacher.token_rules import TokenRules

STOP_END = "eot"
STOP_BUDGET = "budget"
STOP_LOOP = "loop"


@dataclass
class DecodeRequest:
    encoder_row: int          # row of the encoder output to attend to
    prompt: list[int]
    max_new_tokens: int
    timestamps: bool = False


@dataclass
class DecodeResult:
    tokens: list[int] = field(default_factory=list)      # generated, without prompt and end token
    logprobs: list[float] = field(default_factory=list)  # per token, same length as tokens
    entropies: list[float] = field(default_factory=list)
    stop: str = STOP_END
    # Distillation targets (kd_targets.py), one row per decoding step: the tokens, then the
    # end token when the row stopped on it.  Empty unless asked for.
    targets: list = field(default_factory=list)


def _loop_view(tokens: list[int], timestamp_begin: int | None) -> list[int]:
    """Tokens as the loop detector compares them: every timestamp token is one symbol.

    In timestamp mode a looping segment repeats its text while its timestamps keep rising
    ("<|1.0|> ok <|2.0|><|2.0|> ok <|3.0|>..."), so exact comparison would never see it.
    """
    if timestamp_begin is None:
        return tokens
    return [-1 if t >= timestamp_begin else t for t in tokens]


def find_repetition_loop(tokens: list[int], max_period: int | None = None, min_repeats: int = 3,
                         min_span: int = 24, timestamp_begin: int | None = None) -> int | None:
    """Return the period of a loop at the end of `tokens`, or None.

    A loop is a unit of `period` tokens repeated back to back at least `min_repeats` times,
    covering at least `min_span` tokens: far longer than any natural repetition
    ("ha ha ha"), and what Whisper produces when it hallucinates.  Any period that fits
    `min_repeats` times is looked for (max_period=None): a hallucinated sentence of 40
    tokens said three times is as much a loop as "the the the".  With `timestamp_begin`
    (timestamp mode), timestamp tokens all compare equal (see _loop_view).
    """
    view = _loop_view(tokens, timestamp_begin)
    n = len(view)
    longest = n // min_repeats if max_period is None else min(max_period, n // min_repeats)
    last = view[-1] if view else None
    for period in range(1, longest + 1):
        # Cheap pre-check: a loop of this period repeats the last token one period back.
        if view[n - 1 - period] != last:
            continue
        repeats = max(min_repeats, -(-min_span // period))
        span = period * repeats
        if span > n:
            continue
        tail = view[n - span:]
        unit = tail[-period:]
        if all(tail[i] == unit[i % period] for i in range(span)):
            return period
    return None


def _entropy(logprobs: torch.Tensor) -> torch.Tensor:
    # Masked tokens have logprob -inf and probability 0; 0 * -inf is NaN, so zero them first.
    probs = logprobs.exp()
    return -(probs * logprobs.masked_fill(probs == 0, 0.0)).sum(dim=-1)


@torch.inference_mode()
def greedy_decode(model, encoder_hidden: torch.Tensor, requests: list[DecodeRequest],
                  rules: TokenRules, detect_loops: bool = True, token_stats: bool = True,
                  targets=None) -> list[DecodeResult]:
    """Decode every request greedily; prompts in one call must have the same length.

    token_stats=False skips the log-softmax and entropy (the results then hold zeros); it
    exists so the benchmark can measure what keeping the statistics costs.
    targets (a kd_targets.TargetSpec) also keeps, at every step, what distillation needs from
    the teacher: a teacher-forced pass over its own greedy output would compute exactly these
    distributions again, so they are taken here, from the raw (unmasked) logits.
    """
    if not requests:
        return []
    prompt_len = len(requests[0].prompt)
    if any(len(r.prompt) != prompt_len for r in requests):
        raise ValueError("greedy_decode needs prompts of equal length; group requests by prompt")
    results = [DecodeResult() for _ in requests]
    active = list(range(len(requests)))  # request indices still decoding, in batch order
    # Every tensor made here lives on the model's device (the encoder output's).
    device = encoder_hidden.device
    rows = torch.tensor([r.encoder_row for r in requests], device=device)
    encoder_states = encoder_hidden.index_select(0, rows)
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    input_ids = torch.tensor([r.prompt for r in requests], device=device)
    decoder, proj_out = model.get_decoder(), model.get_output_embeddings()
    while active:
        hidden = decoder(input_ids=input_ids, encoder_hidden_states=encoder_states, cache=cache,
                         use_cache=True).last_hidden_state[:, -1]
        logits = proj_out(hidden).float()
        step_targets = targets.rows(logits, hidden) if targets is not None else None
        logits = rules.mask_logits(logits, [results[i].tokens for i in active],
                                   [requests[i].timestamps for i in active])
        if token_stats:
            logprobs = torch.log_softmax(logits, dim=-1)
            best = logprobs.argmax(dim=-1)
            best_logprob = logprobs.gather(1, best[:, None])[:, 0].tolist()
            entropy = _entropy(logprobs).tolist()
        else:
            best = logits.argmax(dim=-1)
            best_logprob = entropy = [0.0] * len(active)
        keep = []
        best_tokens = best.tolist()
        for pos, idx in enumerate(active):
            token, res, req = best_tokens[pos], results[idx], requests[idx]
            if step_targets is not None:
                res.targets.append(step_targets[pos])
            if token == rules.end_of_text:
                res.stop = STOP_END
                continue
            res.tokens.append(token)
            res.logprobs.append(best_logprob[pos])
            res.entropies.append(entropy[pos])
            ts_begin = rules.timestamp_begin if req.timestamps else None
            cut = loop_cut(res.tokens, ts_begin) if detect_loops else None
            if cut is not None:
                del res.tokens[cut:], res.logprobs[cut:], res.entropies[cut:], res.targets[cut:]
                res.stop = STOP_LOOP
            elif len(res.tokens) >= req.max_new_tokens:
                res.stop = STOP_BUDGET
            else:
                keep.append(pos)
        if len(keep) < len(active):
            if not keep:
                break
            keep_idx = torch.tensor(keep, device=device)
            cache.batch_select_indices(keep_idx)
            encoder_states = encoder_states.index_select(0, keep_idx)
            best = best.index_select(0, keep_idx)
            active = [active[p] for p in keep]
        input_ids = best[:, None]
    return results


def loop_cut(tokens: list[int], timestamp_begin: int | None = None) -> int | None:
    """When `tokens` end in a repetition loop, how many of them the loop stop keeps: all but
    the loop's repeats (one copy of its unit; the repeats carry no information).  None when
    they do not end in a loop.  Every decoder's loop stop cuts here (greedy, beam.py,
    CTranslate2 through loop_stop_length)."""
    period = find_repetition_loop(tokens, timestamp_begin=timestamp_begin)
    return None if period is None else _without_repeats(tokens, period, timestamp_begin)


def loop_stop_length(tokens: list[int], checked: int = 0, timestamp_begin: int | None = None) -> int | None:
    """How many of `tokens` greedy_decode's loop stop would have kept, for tokens generated
    elsewhere (CTranslate2): the first prefix longer than `checked` that ends in a repetition
    loop, less the loop's repeats (one copy of its unit kept); None when no prefix does."""
    for end in range(max(checked + 1, 1), len(tokens) + 1):
        cut = loop_cut(tokens[:end], timestamp_begin)
        if cut is not None:
            return cut
    return None


def _without_repeats(tokens: list[int], period: int, timestamp_begin: int | None) -> int:
    """Length of `tokens`, which end in a loop of `period`, with one copy of the unit kept."""
    return len(tokens) - period * (_count_repeats(tokens, period, timestamp_begin) - 1)


def _count_repeats(tokens: list[int], period: int, timestamp_begin: int | None = None) -> int:
    view = _loop_view(tokens, timestamp_begin)
    unit, count, end = view[-period:], 0, len(view)
    while end - period >= 0 and view[end - period:end] == unit:
        count += 1
        end -= period
    return count


@torch.inference_mode()
def detect_languages(model, encoder_hidden: torch.Tensor, rows: list[int], rules: TokenRules) -> list[str]:
    """Whisper's language identification: one decoder step after <|startoftranscript|>."""
    if not rows:
        return []
    device = encoder_hidden.device
    states = encoder_hidden.index_select(0, torch.tensor(rows, device=device))
    input_ids = torch.full((len(rows), 1), rules.start_of_transcript, device=device)
    hidden = model.get_decoder()(input_ids=input_ids, encoder_hidden_states=states,
                                 use_cache=False).last_hidden_state[:, -1]
    logits = model.get_output_embeddings()(hidden).float()
    lang_ids = rules.language_ids()
    best = lang_ids[logits[:, lang_ids].argmax(dim=-1)]
    return [rules.id_to_language(int(t)) for t in best]
