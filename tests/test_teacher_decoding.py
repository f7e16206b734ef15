"""The teacher's own greedy loop, token rules, loop stopping and clip packing."""
import numpy as np
import pytest
import torch

from udistil.teacher.greedy import (STOP_BUDGET, STOP_LOOP, DecodeRequest, find_repetition_loop,
                                    greedy_decode)
from udistil.teacher.packing import Placement, assign_segments, pack_clips, parse_segments
from udistil.teacher.token_rules import TokenRules
from udistil.teacher.transcriber import DecodeOptions, Transcriber
from conftest import noise_clips





def test_greedy_loop_matches_generate_token_for_token(tiny):
    """Our loop must make the same choices as transformers' greedy generate()."""
    model, processor = tiny
    rules = TokenRules.from_model(model)
    clips = noise_clips(3)
    features = processor.feature_extractor(clips, sampling_rate=16000, return_tensors="pt").input_features
    max_new = 12
    with torch.inference_mode():
        encoder_out = model.get_encoder()(features).last_hidden_state
    for lang in ("en", "ar", "sw"):
        prompt = rules.prompt(lang, timestamps=False)
        # generate() counts the forced prompt tokens in max_new_tokens; our budget does not.
        budget = max_new - len(prompt)
        ours = greedy_decode(model, encoder_out, [DecodeRequest(r, prompt, budget) for r in range(3)],
                             rules, detect_loops=False)
        reference = model.generate(features, language=lang, task="transcribe", max_new_tokens=max_new,
                                   do_sample=False, num_beams=1)
        for row, result in enumerate(ours):
            expected = [int(t) for t in reference[row, len(prompt):] if int(t) != rules.end_of_text]
            assert result.tokens == expected
            assert len(result.logprobs) == len(result.entropies) == len(result.tokens)
            assert all(lp <= 0 for lp in result.logprobs)
            assert all(np.isfinite(e) and e >= 0 for e in result.entropies)


def test_beam_search_keeps_every_token_generate_chose(tiny):
    """--beam N (our batched search, beam.py) chooses generate()'s tokens, every one of them
    (the generate() path it replaced had lost each clip's first word)."""
    model, processor = tiny
    rules = TokenRules.from_model(model)
    clips = noise_clips(2, seed=1)
    transcriber = Transcriber(model, processor, DecodeOptions(beam=2, budget_base=6, budget_per_second=0.0))
    ours = transcriber.transcribe(clips, ["en", "en"])
    features = processor.feature_extractor(clips, sampling_rate=16000, return_tensors="pt").input_features
    for row, result in enumerate(ours):
        reference = model.generate(features[row:row + 1], language="en", task="transcribe", num_beams=2,
                                   max_new_tokens=6, do_sample=False)[0].tolist()
        if rules.end_of_text in reference:
            reference = reference[:reference.index(rules.end_of_text)]
        assert result.tokens and result.tokens == [t for t in reference if t < rules.end_of_text]


def test_beam_of_one_is_greedy_decoding_with_its_budget_and_loop_stop(tiny):
    """beam.py's search ends hypotheses as greedy_decode ends rows: with one beam the two
    give the same tokens and stop (the random model loops on noise, and some rows hit the
    budget first)."""
    from udistil.teacher.beam import beam_decode

    model, processor = tiny
    rules = TokenRules.from_model(model)
    features = processor.feature_extractor(noise_clips(4, seed=1), sampling_rate=16000,
                                           return_tensors="pt").input_features
    with torch.inference_mode():
        encoder_out = model.get_encoder()(features).last_hidden_state
    prompt = rules.prompt("en", timestamps=False)
    for detect_loops in (True, False):
        requests = [DecodeRequest(row, prompt, budget) for row, budget in enumerate((5, 30, 60, 60))]
        greedy = greedy_decode(model, encoder_out, requests, rules, detect_loops=detect_loops)
        beam = beam_decode(model, encoder_out, requests, rules, beam=1, detect_loops=detect_loops)
        assert [(r.tokens, r.stop) for r in beam] == [(r.tokens, r.stop) for r in greedy]
        assert {r.stop for r in beam} == ({STOP_BUDGET, STOP_LOOP} if detect_loops else {STOP_BUDGET})


def test_beam_search_leaves_no_loop_in_what_it_returns(tiny):
    """A looping hypothesis ends at the loop, cut to one copy of its unit: no result of
    `--beam N` holds a loop, while without the loop stop the same beams run into one."""
    from udistil.teacher.greedy import loop_stop_length

    model, processor = tiny
    clips = noise_clips(3, seed=1)
    budget = dict(budget_base=60, budget_per_second=0.0)
    stopped = Transcriber(model, processor, DecodeOptions(beam=2, **budget)).transcribe(clips, ["en"] * 3)
    running = Transcriber(model, processor, DecodeOptions(beam=2, detect_loops=False, **budget)).transcribe(
        clips, ["en"] * 3)
    assert all(loop_stop_length(r.tokens) is not None for r in running)
    for result in stopped:
        assert loop_stop_length(result.tokens) is None and len(result.tokens) <= 60
        assert len(result.logprobs) == len(result.entropies) == len(result.tokens)


def test_budget_stops_a_row_without_holding_the_others(tiny):
    model, processor = tiny
    rules = TokenRules.from_model(model)
    features = processor.feature_extractor(noise_clips(2), sampling_rate=16000, return_tensors="pt").input_features
    with torch.inference_mode():
        encoder_out = model.get_encoder()(features).last_hidden_state
    prompt = rules.prompt("en", timestamps=False)
    short, long = greedy_decode(model, encoder_out, [DecodeRequest(0, prompt, 3), DecodeRequest(1, prompt, 9)],
                                rules, detect_loops=False)
    assert len(short.tokens) <= 3 and len(long.tokens) <= 9
    assert short.stop == STOP_BUDGET or len(short.tokens) < 3


@pytest.mark.parametrize("tokens, period", [
    ([5] * 24, 1),
    ([1, 2, 3] + [7, 8] * 12, 2),
    ([9, 9] + [1, 2, 3, 4, 5, 6, 7, 8] * 3, 8),
])
def test_repetition_loop_is_found(tokens, period):
    assert find_repetition_loop(tokens) == period


@pytest.mark.parametrize("tokens", [
    list(range(60)),                 # no repetition
    [4, 4, 4, 4, 1, 2, 3],           # a short natural repetition, not at the end
    [1, 2] * 5,                      # too short to call a loop
])
def test_no_false_loops(tokens):
    assert find_repetition_loop(tokens) is None


def test_pack_clips_respects_the_window_and_gap():
    durations = {i: d for i, d in enumerate([8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 26.0])}
    windows = pack_clips(durations, gap=1.0, max_clips=8)
    placed = sorted(p.clip for w in windows for p in w.placements)
    assert placed == list(range(7))
    for w in windows:
        assert w.end <= 29.0 or len(w.placements) == 1
        spans = sorted((p.offset, p.offset + p.duration) for p in w.placements)
        assert all(b[0] - a[1] >= 1.0 - 1e-9 for a, b in zip(spans, spans[1:]))


def test_segments_are_split_back_to_their_clips(tiny):
    model, _ = tiny
    rules = TokenRules.from_model(model)
    ts = lambda s: rules.timestamp_begin + round(s / 0.02)  # noqa: E731
    # clip 0 at 0-3 s, clip 1 at 4-6 s: "a b" belongs to clip 0, "c" to clip 1.
    tokens = [ts(0.0), 100, 101, ts(2.9), ts(4.1), 102, ts(5.8)]
    segments = parse_segments(tokens, rules, window_end=6.0)
    placements = [Placement(0, 0.0, 3.0), Placement(1, 4.0, 2.0)]
    positions, redo = assign_segments(segments, placements)
    assert [tokens[i] for i in positions[0]] == [100, 101]
    assert [tokens[i] for i in positions[1]] == [102]
    assert redo == set()
    # One segment straddling both clips: both must be redone alone; a clip with nothing too.
    straddle = [ts(0.0), 100, 101, 102, ts(5.8)]
    _, redo = assign_segments(parse_segments(straddle, rules, 6.0), placements)
    assert redo == {0, 1}
    third = placements + [Placement(2, 7.0, 2.0)]
    _, redo = assign_segments(segments, third)
    assert redo == {2}


def test_transcriber_packed_and_alone_give_one_transcript_per_clip(tiny):
    model, processor = tiny
    clips = noise_clips(7, seconds=(1.0, 3.0), seed=1)
    langs = ["en", "en", "ar", "sw", "en", "ar", None]
    for pack in (True, False):
        transcriber = Transcriber(model, processor, DecodeOptions(pack=pack, batch_size=3, budget_base=4,
                                                                  budget_per_second=2))
        out = transcriber.transcribe(clips, langs)
        assert len(out) == len(clips)
        for clip, lang, t in zip(clips, langs, out):
            assert len(t.tokens) == len(t.logprobs) == len(t.entropies)
            assert all(tok < rules_eot(model) for tok in t.tokens)  # no control/timestamp tokens
            assert t.language == lang or (lang is None and t.language in transcriber.rules.lang_to_id)
            assert len(t.tokens) <= transcriber.budget(len(clip) / 16000) + 6 * len(clips)


def rules_eot(model):
    return TokenRules.from_model(model).end_of_text


def test_loop_stop_is_reported():
    """A stream that becomes a loop is cut to one copy of the loop and flagged."""
    tokens = [10, 11] + [3, 4, 5] * 8
    assert find_repetition_loop(tokens) == 3
    assert STOP_LOOP == "loop"


def test_loop_stop_length_cuts_where_the_greedy_loop_stop_cuts():
    """Tokens generated elsewhere (CTranslate2) are cut as greedy_decode cuts them: at the first
    prefix that ends in a loop (here 8 x [3, 4, 5], 24 tokens), one copy of the unit kept."""
    from udistil.teacher.greedy import loop_stop_length

    tokens = [10, 11] + [3, 4, 5] * 12 + [6, 7]
    assert loop_stop_length(tokens) == 5
    assert loop_stop_length(tokens[:25]) is None          # 23 looping tokens: not yet a loop
    assert loop_stop_length(tokens, checked=len(tokens)) is None
    assert loop_stop_length(list(range(60))) is None


def _with_output_bias(model, bias: dict[int, float]):
    """A copy of `model` whose logit for each token of `bias` is that value (token id -> logit)."""
    import copy

    biased = copy.deepcopy(model)
    proj = biased.get_output_embeddings()
    layer = torch.nn.Linear(proj.in_features, proj.out_features, bias=True)
    with torch.no_grad():
        layer.weight.copy_(proj.weight)
        layer.bias.zero_()
        for token, value in bias.items():
            layer.weight[token] = 0.0  # the token's logit is exactly its bias
            layer.bias[token] = value
    biased.proj_out = layer
    return biased


def test_an_unsure_end_of_text_is_refused_and_a_sure_one_taken(tiny):
    # Two tokens far above the rest: a text token X and end of text.  EOT a little ahead
    # (p ~ 0.62): Whisper's rule ends after X, and min_eot_prob 0.8 refuses that end, so X
    # repeats up to the token budget.  EOT far ahead (p ~ 0.99): both end after X.
    model, processor = tiny
    rules = TokenRules.from_model(model)
    eot, text_token = rules.end_of_text, 100
    features = processor.feature_extractor(noise_clips(1), sampling_rate=16000, return_tensors="pt").input_features
    prompt = rules.prompt("en", timestamps=False)
    budget = 5
    for eot_lead, refused in ((0.5, True), (5.0, False)):
        biased = _with_output_bias(model, {text_token: 100.0, eot: 100.0 + eot_lead})
        with torch.inference_mode():
            encoder_out = biased.get_encoder()(features).last_hidden_state
        ends = {}
        for min_eot in (0.0, 0.8):
            strict = TokenRules.from_model(biased, min_eot_prob=min_eot)
            (result,) = greedy_decode(biased, encoder_out, [DecodeRequest(0, prompt, budget)], strict,
                                      detect_loops=False)
            ends[min_eot] = result.tokens
        assert ends[0.0] == [text_token]  # EOT is never the first token, then it wins
        assert ends[0.8] == ([text_token] * budget if refused else [text_token])


def test_min_eot_prob_reaches_the_rules_and_the_fingerprint_only_when_on(tiny, tmp_path):
    from udistil.parallel.fingerprint import differences
    from udistil.teacher.pseudo_label import labelling_fingerprint

    model, processor = tiny
    assert Transcriber(model, processor, DecodeOptions(min_eot_prob=0.8)).rules.min_eot_prob == 0.8
    cuts = tmp_path / "cuts.jsonl.gz"
    cuts.write_bytes(b"")
    off = labelling_fingerprint(cuts, "m", DecodeOptions())
    on = labelling_fingerprint(cuts, "m", DecodeOptions(min_eot_prob=0.8))
    assert "min_eot_prob" not in off["options"] and on["options"]["min_eot_prob"] == 0.8
    assert differences(off, on)
    with pytest.raises(ValueError, match="min_eot_prob"):
        DecodeOptions(min_eot_prob=1.0)


@pytest.mark.parametrize("argv, named", [
    (["decode", "--batch-size", "0"], "batch_size"),
    (["decode", "--beam", "0"], "beam"),
    (["pseudo-label", "--min-eot-prob", "1.5"], "min_eot_prob"),
    (["decode", "--split-piece", "0"], "split_piece"),
    (["transcribe", "--beam", "0"], "beam"),
    (["transcribe", "--max-segment", "0"], "--max-segment"),
])
def test_a_decoding_option_out_of_range_is_a_usage_error_that_names_it(tiny_whisper_dir, tmp_path, capsys,
                                                                        argv, named):
    # Each was a traceback (ZeroDivisionError for a batch of 0) or silently replaced by its
    # default (a beam or --max-segment of 0); nothing is written.
    from udistil.bin.main import main

    command, options = argv[0], argv[1:]
    if command == "transcribe":
        wav = tmp_path / "a.wav"
        import soundfile as sf
        sf.write(str(wav), noise_clips(1)[0], 16000)
        rc = main([command, "--model", str(tiny_whisper_dir), *options, "--output-dir", str(tmp_path / "out"),
                   str(wav)])
    else:
        rc = main([command, "--model", str(tiny_whisper_dir), *options, "--in", str(tmp_path / "cuts.jsonl.gz"),
                   "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc != 0 and named in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
