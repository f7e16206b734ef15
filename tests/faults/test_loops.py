"""Hole 5: repetition loops longer than 32 tokens and loops in timestamp mode are found,
and greedy_decode really cuts a real loop (and really stops at its budget)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from udistil.teacher.greedy import (STOP_BUDGET, STOP_LOOP, DecodeRequest, find_repetition_loop,
                                    greedy_decode)
from udistil.teacher.token_rules import TokenRules

TS = 50364  # multilingual Whisper's first timestamp token


@pytest.mark.parametrize("period", [33, 40, 100])
def test_a_long_loop_is_found(period):
    unit = list(range(1000, 1000 + period))
    assert find_repetition_loop([7, 8, 9] + unit * 3) == period


def test_a_sentence_said_twice_is_not_a_loop():
    unit = list(range(1000, 1040))
    assert find_repetition_loop([7] + unit * 2) is None


def test_a_loop_in_timestamp_mode_is_found():
    """Each repeat has the same text and rising timestamps, as Whisper writes them."""
    tokens, t = [], TS
    for _ in range(6):
        tokens += [t, 2000, 2001, 2002, 2003, t + 50]
        t += 50
    assert find_repetition_loop(tokens) is None  # exact comparison is fooled by the timestamps
    assert find_repetition_loop(tokens, timestamp_begin=TS) == 6


def test_timestamps_alone_do_not_make_a_loop():
    """Distinct segments with timestamps: only the timestamp symbols repeat."""
    tokens, t = [], TS
    for i in range(8):
        tokens += [t, 3000 + 4 * i, 3001 + 4 * i, 3002 + 4 * i, t + 40]
        t += 40
    assert find_repetition_loop(tokens, timestamp_begin=TS) is None



def _encoder_out(model, processor, n):
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(16000 * 2)).astype(np.float32) for _ in range(n)]
    features = processor.feature_extractor(clips, sampling_rate=16000, return_tensors="pt").input_features
    with torch.inference_mode():
        return model.get_encoder()(features).last_hidden_state


def _biased(model, bias):
    """The model with a fixed logit bias on its output layer (a deterministic decoder)."""
    import copy

    biased = copy.deepcopy(model)
    old = biased.get_output_embeddings()
    new = torch.nn.Linear(old.in_features, old.out_features, bias=True)
    new.weight = old.weight
    with torch.no_grad():
        new.bias.copy_(bias)
    biased.proj_out = new
    return biased


def test_greedy_decode_cuts_a_real_loop_to_one_copy(tiny):
    model, processor = tiny
    rules = TokenRules.from_model(model)
    bias = torch.zeros(model.config.vocab_size)
    token = 1500
    bias[token] = 1e4  # the decoder can only say this one token: a loop of period 1
    looping = _biased(model, bias)
    prompt = rules.prompt("en", timestamps=False)
    (res,) = greedy_decode(looping, _encoder_out(model, processor, 1), [DecodeRequest(0, prompt, 40)], rules)
    assert res.stop == STOP_LOOP
    assert res.tokens == [token]
    assert len(res.logprobs) == len(res.entropies) == 1
    # Without the detector the same decoder runs to its budget: the cut was the detector's.
    (raw,) = greedy_decode(looping, _encoder_out(model, processor, 1), [DecodeRequest(0, prompt, 40)], rules,
                           detect_loops=False)
    assert raw.stop == STOP_BUDGET and len(raw.tokens) == 40


def test_budget_stops_each_row_at_exactly_its_budget(tiny):
    model, processor = tiny
    rules = TokenRules.from_model(model)
    bias = torch.zeros(model.config.vocab_size)
    bias[rules.end_of_text] = -1e4  # never ends on its own
    endless = _biased(model, bias)
    prompt = rules.prompt("en", timestamps=False)
    short, long = greedy_decode(endless, _encoder_out(model, processor, 2),
                                [DecodeRequest(0, prompt, 3), DecodeRequest(1, prompt, 9)], rules,
                                detect_loops=False)
    assert (len(short.tokens), short.stop) == (3, STOP_BUDGET)
    assert (len(long.tokens), long.stop) == (9, STOP_BUDGET)
    # The short row leaving the batch must not change the long row's tokens.
    (alone,) = greedy_decode(endless, _encoder_out(model, processor, 2)[1:], [DecodeRequest(0, prompt, 9)], rules,
                             detect_loops=False)
    assert alone.tokens == long.tokens
