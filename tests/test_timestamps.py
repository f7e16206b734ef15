"""Whisper's timestamp mode: labels, decodes and `udistil transcribe` (docs/timestamps.md)."""
import numpy as np
import pytest
import torch

from udistil.models.spec import load_whisper
from udistil.teacher.greedy import DecodeRequest, greedy_decode
from udistil.teacher.token_rules import MAX_INITIAL_TIMESTAMP, TIMESTAMP_RESOLUTION, TokenRules
from udistil.teacher.transcriber import DecodeOptions, Transcriber
from conftest import noise_clips





def assert_timestamp_grammar(tokens, rules):
    """Whisper's rules: an opening timestamp no later than 1 s, timestamps never going back,
    and no two timestamp pairs without text between them."""
    tb = rules.timestamp_begin
    assert tokens and tokens[0] >= tb
    assert (tokens[0] - tb) * TIMESTAMP_RESOLUTION <= MAX_INITIAL_TIMESTAMP + 1e-9
    stamps = [t for t in tokens if t >= tb]
    assert stamps == sorted(stamps)
    for a, b, c in zip(tokens, tokens[1:], tokens[2:]):
        assert not (a >= tb and b >= tb and c >= tb), tokens


def test_options_choose_the_mode_by_clip_length():
    assert not DecodeOptions(timestamps="never").use_timestamps(29.0)
    assert DecodeOptions(timestamps="always").use_timestamps(1.0)
    auto = DecodeOptions(timestamps="auto", timestamps_above=12.0)
    assert not auto.use_timestamps(12.0) and auto.use_timestamps(12.5)
    assert auto.timestamp_budget(20.0) > auto.token_budget(20.0)
    with pytest.raises(ValueError, match="timestamps must be one of"):
        DecodeOptions(timestamps="sometimes")


def test_beam_search_follows_the_timestamp_rules_and_one_beam_is_greedy(tiny):
    """beam.py decodes in timestamp mode with the greedy loop's rules: one beam gives the
    greedy tokens and stops; wider beams keep the grammar."""
    from udistil.teacher.beam import beam_decode

    model, processor = tiny
    rules = TokenRules.from_model(model)
    features = processor.feature_extractor(noise_clips(3, seconds=(2.0, 6.0), seed=2), sampling_rate=16000,
                                           return_tensors="pt").input_features
    with torch.inference_mode():
        encoder_out = model.get_encoder()(features).last_hidden_state
    prompt = rules.prompt("en", timestamps=True)
    requests = [DecodeRequest(row, prompt, 40, timestamps=True) for row in range(3)]
    greedy = greedy_decode(model, encoder_out, requests, rules)
    one = beam_decode(model, encoder_out, requests, rules, beam=1)
    assert [(r.tokens, r.stop) for r in one] == [(r.tokens, r.stop) for r in greedy]
    for result in beam_decode(model, encoder_out, requests, rules, beam=3):
        assert_timestamp_grammar(result.tokens, rules)


@pytest.mark.parametrize("beam", [1, 2])
def test_labels_carry_text_without_timestamp_tokens(tiny, tiny_whisper_dir, speak, tmp_path, beam):
    """A clip labelled in timestamp mode: text, tokens and per-token statistics hold the text
    tokens only; the timestamped sequence is kept beside them."""
    from lhotse import Recording, SupervisionSegment

    import udistil.teacher.pseudo_label as pl
    from udistil.data.manifests import custom, read_cuts, write_cuts

    model, processor = tiny
    rules = TokenRules.from_model(model)
    cuts = []
    for i, text in enumerate(("good morning everyone", "the train leaves at noon")):
        path = tmp_path / f"utt{i}.wav"
        speak(text, path=path)
        rec = Recording.from_file(str(path), recording_id=f"utt{i}")
        cut = rec.to_cut()
        cut.supervisions = [SupervisionSegment(id=rec.id, recording_id=rec.id, start=0.0, duration=rec.duration,
                                               language="en", text=text)]
        cuts.append(cut)
    write_cuts(cuts, tmp_path / "cuts.jsonl.gz")
    transcriber = Transcriber(model, processor, DecodeOptions(timestamps="always", beam=beam, budget_base=20),
                              name=str(tiny_whisper_dir))
    pl.pseudo_label(tmp_path / "cuts.jsonl.gz", tmp_path / "labels.jsonl.gz", transcriber)
    labelled = list(read_cuts(tmp_path / "labels.jsonl.gz"))
    assert len(labelled) == 2
    for cut in labelled:
        fields = custom(cut)
        assert "<|" not in fields["teacher_text"]
        assert all(t < rules.end_of_text for t in fields["teacher_tokens"])
        assert len(fields["teacher_logprobs"]) == len(fields["teacher_entropy"]) == len(fields["teacher_tokens"])
        stamped = fields["teacher_timestamped_tokens"]
        assert_timestamp_grammar(stamped, rules)
        assert [t for t in stamped if t < rules.timestamp_begin] == fields["teacher_tokens"]


def test_the_mode_is_part_of_the_labels_fingerprint(tmp_path):
    from udistil.teacher.pseudo_label import labelling_fingerprint

    manifest = tmp_path / "cuts.jsonl"
    manifest.write_text("{}\n")
    prints = {mode: labelling_fingerprint(manifest, "packaged:whisper-base", DecodeOptions(timestamps=mode))
              for mode in ("never", "always", "auto")}
    assert len({repr(p) for p in prints.values()}) == 3
    assert labelling_fingerprint(manifest, "m", DecodeOptions(timestamps_above=10.0)) != \
        labelling_fingerprint(manifest, "m", DecodeOptions(timestamps_above=20.0))


def test_timed_sentences_follow_the_model_timestamps():
    from udistil.transcribe.engines import timed_sentences

    tb = 1000

    def ts(seconds):
        return tb + int(round(seconds / TIMESTAMP_RESOLUTION))

    def decode(ids):
        return " ".join(f"w{t}" for t in ids)

    tokens = [ts(0.0), 1, 2, ts(2.5), ts(3.0), 3, ts(5.0), 4, 5]
    assert timed_sentences(tokens, tb, 8.0, decode) == [(0.0, 2.5, "w1 w2"), (3.0, 5.0, "w3"), (5.0, 8.0, "w4 w5")]
    # Times past the clip are clamped to it; a closing time before its opening one is not kept.
    assert timed_sentences([ts(1.0), 1, ts(0.5), ts(9.0), 2, ts(12.0)], tb, 8.0, decode) == \
        [(1.0, 1.0, "w1"), (8.0, 8.0, "w2")]


def test_file_segments_map_window_times_to_the_file():
    from udistil.transcribe.engines import TimedText
    from udistil.transcribe.runner import file_segments
    from udistil.transcribe.segments import SpeechSegment

    # Two pieces of the file joined: 10-14 s and 20-26 s.
    segment = SpeechSegment(((160000, 224000), (320000, 416000)))
    out = file_segments(segment, TimedText("a b", [(0.5, 3.5, "a"), (4.5, 9.0, "b")]))
    assert [(s.start, s.end, s.text) for s in out] == [(10.5, 13.5, "a"), (20.5, 25.0, "b")]
    whole = file_segments(segment, TimedText("a b"))
    assert [(s.start, s.end) for s in whole] == [(10.0, 26.0)]


# A window as the long-form benchmark builds them: three mini-corpus utterances (voice,
# speed, pitch, babble noise at an SNR) joined with 0.5-2 s of silence.  Without timestamps
# whisper-base writes only the last sentence of it and ends.
WINDOW = [("The city council approved a new budget for public schools on Monday.", "croak", 165, 40, 5.0),
          ("The twins celebrated their tenth birthday at the swimming pool.", "m3", 150, 60, 10.0),
          ("We watched the sunset from the top of the hill.", "f1", 130, 50, 10.0)]
BABBLE = [("Heavy rain is expected across the northern region later this week.", "m1", 180, 50),
          ("She bought fresh bread and a bag of oranges at the market.", "f3", 150, 40),
          ("The train to the airport leaves every twenty minutes from platform four.", "klatt", 165, 60)]


@pytest.fixture(scope="module")
def three_sentence_window():
    from udistil.data.mini_corpus import Utterance, render, speak

    clean = {}
    for i, (text, variant, speed, pitch) in enumerate(BABBLE):
        utt = Utterance(f"babble{i}", "train", "en", text, variant, speed, pitch, "none", None)
        clean[utt.cut_id] = speak(utt)
    babble_ids = list(clean)
    rng = np.random.default_rng(1)
    parts = []
    for i, (text, variant, speed, pitch, snr) in enumerate(WINDOW):
        utt = Utterance(f"window{i}", "train", "en", text, variant, speed, pitch, "babble", snr,
                        babble_ids=babble_ids)
        clean[utt.cut_id] = speak(utt)
        parts += [render(utt, clean, 1), np.zeros(int(rng.uniform(0.5, 2.0) * 16000), np.float32)]
    return np.concatenate(parts)


def sentences_kept(text):
    """Which of WINDOW's sentences `text` holds: two or more of a sentence's words of four
    letters or more (the noisy first sentences are often misheard, but not dropped)."""
    from udistil.evaluate.normalize import normalizer_for

    norm = normalizer_for("en")
    words = set(norm(text).split())
    return [len(words & {w for w in norm(s).split() if len(w) >= 4}) >= 2 for s, *_ in WINDOW]


def test_a_three_sentence_window_label_keeps_every_sentence(whisper_base_dir, three_sentence_window):
    """Stage 3's default options label a 17.8 s window of three sentences with all three
    (cut at its pauses); decoded whole after <|notimestamps|> the same window loses two."""
    audio = three_sentence_window
    assert DecodeOptions().use_timestamps(len(audio) / 16000)
    model, processor = load_whisper(str(whisper_base_dir))
    (label,) = Transcriber(model, processor, DecodeOptions()).transcribe([audio], ["en"])
    assert sentences_kept(label.text) == [True, True, True], label.text
    assert label.timestamped_tokens and "<|" not in label.text
    whole_untimed = DecodeOptions(timestamps="never", split_above=0.0)
    (untimed,) = Transcriber(model, processor, whole_untimed).transcribe([audio], ["en"])
    assert sentences_kept(untimed.text).count(True) < 3, untimed.text


def srt_cues(text):
    def seconds(stamp):
        h, m, rest = stamp.split(":")
        s, ms = rest.split(",")
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    cues = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        start, end = lines[1].split(" --> ")
        cues.append((seconds(start), seconds(end), " ".join(lines[2:])))
    return cues


@pytest.mark.parametrize("engine", ["torch", "ctranslate2"])
def test_srt_cues_come_from_the_model_timestamps(engine, request, three_sentence_window, tmp_path, capsys):
    """`udistil transcribe --format srt` of the window, greedy: one cue per sentence the model
    timestamped, in order, inside the file, rather than one cue spanning the whole window.
    With the CTranslate2 engine's defaults (beam search) the model can timestamp one sentence
    over most of the window (beam 5 did, over all of it); the second pass decodes that speech
    again in pieces, and the cues hold every sentence."""
    import soundfile as sf

    from udistil.transcribe.runner import run_transcribe

    model = request.getfixturevalue("whisper_base_dir" if engine == "torch" else "whisper_base_ct2_dir")
    wav = tmp_path / "window.wav"
    sf.write(str(wav), three_sentence_window, 16000)
    duration = len(three_sentence_window) / 16000
    greedy = DecodeOptions(beam=1, pack=True, split_above=0.0)
    for options in ([greedy] if engine == "torch" else [greedy, None]):
        assert run_transcribe([str(wav)], str(model), language="en", fmt="srt", device="cpu", threads=2,
                              options=options, progress=False) == 0
        cues = srt_cues(capsys.readouterr().out)
        assert len(cues) >= (3 if options else 2), cues
        assert all(0.0 <= start <= end <= duration + 1e-3 for start, end, _ in cues)
        assert all(a[1] <= b[0] for a, b in zip(cues, cues[1:]))
        assert sentences_kept(" ".join(text for *_, text in cues)).count(True) >= (2 if options else 3), cues


def test_a_student_trained_on_timestamped_labels_decodes_a_long_window_with_timestamps(
        tiny_whisper_dir, speak, tmp_path):
    """A cut labelled with timestamps, trained on with DataOptions.timestamp_share 1: the
    batches hold its timestamped sequence (prompt without <|notimestamps|>), and a tiny random
    student trained briefly on them writes that sequence again when it decodes the 16 s
    window in timestamp mode (trained on the text sequence only, it does not)."""
    from lhotse import Recording, SupervisionSegment

    from udistil.student.data import DistillDataset, LabelEncoder

    audio = np.concatenate([speak("the train leaves at noon"), np.zeros(16000 * 6, np.float32),
                            speak("the sun is hot today"), np.zeros(16000 * 5, np.float32)])
    path = tmp_path / "window.wav"
    import soundfile as sf

    sf.write(str(path), audio, 16000)
    _, processor = load_whisper(str(tiny_whisper_dir))
    tok = processor.tokenizer
    rules_model, _ = load_whisper(str(tiny_whisper_dir))
    rules = TokenRules.from_model(rules_model)

    def ts(seconds):
        return rules.timestamp_begin + int(round(seconds / TIMESTAMP_RESOLUTION))

    first, second = (tok.encode(" The train leaves at noon.", add_special_tokens=False),
                     tok.encode(" The sun is hot today.", add_special_tokens=False))
    stamped = [ts(0.0)] + first + [ts(2.0), ts(8.0)] + second + [ts(10.0)]
    rec = Recording.from_file(str(path), recording_id="window")
    cut = rec.to_cut()
    cut.supervisions = [SupervisionSegment(
        id="window", recording_id="window", start=0.0, duration=rec.duration, language="en",
        text="The train leaves at noon. The sun is hot today.",
        custom={"teacher_text": "The train leaves at noon. The sun is hot today.", "teacher_tokens": first + second,
                "teacher_timestamped_tokens": stamped})]
    labels = LabelEncoder(tok, multilingual=True, max_length=448)

    def train(share):
        torch.manual_seed(0)
        model, _ = load_whisper(str(tiny_whisper_dir))
        batch = DistillDataset(processor.feature_extractor, labels, timestamp_share=share)[[cut]]
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        model.train()
        for _ in range(60):
            loss = model(input_features=batch["input_features"], decoder_input_ids=batch["decoder_input_ids"],
                         labels=batch["labels"]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        return model, batch

    student, batch = train(1.0)
    prompt = rules.prompt("en", timestamps=True)
    assert batch["decoder_input_ids"][0, :len(prompt)].tolist() == prompt
    assert rules.no_timestamps not in batch["decoder_input_ids"][0].tolist()
    features = processor.feature_extractor([audio], sampling_rate=16000, return_tensors="pt").input_features

    def decode(model):
        with torch.inference_mode():
            hidden = model.get_encoder()(features).last_hidden_state
        (result,) = greedy_decode(model, hidden, [DecodeRequest(0, prompt, 60, timestamps=True)], rules)
        return result.tokens

    assert decode(student) == stamped
    text_only, batch = train(0.0)
    assert rules.no_timestamps in batch["decoder_input_ids"][0].tolist()
    assert decode(text_only) != stamped


def bursts_with_pauses(seconds=(1.5, 1.5, 1.5), pause=0.8, seed=0):
    """Noise bursts (the 'sentences') separated by silent pauses, at 16 kHz."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, s in enumerate(seconds):
        if i:
            parts.append(np.zeros(int(pause * 16000), np.float32))
        parts.append((0.2 * rng.standard_normal(int(s * 16000))).astype(np.float32))
    return np.concatenate(parts)


def test_a_long_clip_is_labelled_piece_by_piece_at_its_pauses(tiny):
    """split_above: a clip longer than it is cut at its pauses; its label is the pieces'
    labels (each decoded alone) joined; its statistics and targets are one row per token
    of that label (plus the end token's), and its timestamped sequence puts each piece's
    tokens between its own start and end."""
    from udistil.teacher.kd_targets import TargetSpec
    from udistil.transcribe.segments import SegmentOptions, split_at_pauses

    model, processor = tiny
    clip, short = bursts_with_pauses(), bursts_with_pauses((1.0,))
    options = DecodeOptions(timestamps="never", split_above=3.0, split_piece=3.0, targets=TargetSpec(topk=4))
    transcriber = Transcriber(model, processor, options)
    label, alone = transcriber.transcribe([clip, short], ["en", "en"])
    assert transcriber.stats["split_clips"] == 1 and transcriber.stats["split_pieces"] == 3
    segments = split_at_pauses(clip, SegmentOptions(max_seconds=3.0, drop_pauses=False))
    pieces = Transcriber(model, processor, DecodeOptions(timestamps="never")).transcribe(
        [s.audio(clip) for s in segments], ["en"] * 3)
    assert label.tokens == [t for p in pieces for t in p.tokens]
    assert len(label.logprobs) == len(label.entropies) == len(label.tokens)
    assert len(label.targets) == len(label.tokens) + (1 if label.stop == "eot" else 0)
    rules = transcriber.rules
    stamps = [t for t in label.timestamped_tokens if rules.is_timestamp(t)]
    assert stamps == sorted(stamps) and len(stamps) == 2 * sum(1 for p in pieces if p.tokens)
    assert [t for t in label.timestamped_tokens if not rules.is_timestamp(t)] == label.tokens
    assert rules.timestamp_seconds(stamps[-1]) <= len(clip) / 16000 + 0.02
    # The short clip is decoded whole, as without the option.
    (plain,) = Transcriber(model, processor, DecodeOptions(timestamps="never")).transcribe([short], ["en"])
    assert alone.tokens == plain.tokens


def test_a_clip_within_split_above_is_decoded_whole_however_long_its_pieces_would_be(tiny):
    """split_above decides which clips are cut, split_piece how small the pieces are: a
    clip longer than the pieces but within split_above is decoded whole."""
    model, processor = tiny
    clip = bursts_with_pauses()
    seconds = len(clip) / 16000
    kept = Transcriber(model, processor, DecodeOptions(timestamps="never", split_above=seconds + 0.5,
                                                       split_piece=3.0))
    (whole,) = kept.transcribe([clip], ["en"])
    assert kept.stats["split_clips"] == 0
    (plain,) = Transcriber(model, processor, DecodeOptions(timestamps="never", split_above=0.0)).transcribe(
        [clip], ["en"])
    assert whole.tokens == plain.tokens
    cut = Transcriber(model, processor, DecodeOptions(timestamps="never", split_above=seconds - 0.5,
                                                      split_piece=3.0))
    cut.transcribe([clip], ["en"])
    assert cut.stats["split_clips"] == 1 and cut.stats["split_pieces"] == 3


def test_split_above_is_part_of_the_labels_fingerprint_only_when_on(tmp_path):
    from udistil.teacher.pseudo_label import labelling_fingerprint

    cuts = tmp_path / "cuts.jsonl"
    cuts.write_text("{}\n")
    off = labelling_fingerprint(cuts, "m", DecodeOptions(split_above=0.0))
    assert "split_above" not in off["options"]
    assert labelling_fingerprint(cuts, "m", DecodeOptions(split_above=10.0))["options"]["split_above"] == 10.0
    assert labelling_fingerprint(cuts, "m", DecodeOptions(split_above=15.0, split_piece=8.0))["options"][
        "split_piece"] == 8.0
    # Labels made when one threshold was both the trigger and the piece keep their fingerprint.
    assert "split_piece" not in labelling_fingerprint(cuts, "m", DecodeOptions(split_above=8.0))["options"]
    with pytest.raises(ValueError, match="split_above"):
        DecodeOptions(split_above=-1.0)


def test_a_three_sentence_window_split_at_pauses_keeps_every_sentence(whisper_base_dir, three_sentence_window):
    """The same 17.8 s window, labelled in pieces of at most 8 s cut at its pauses and
    decoded without timestamps: all three sentences."""
    model, processor = load_whisper(str(whisper_base_dir))
    options = DecodeOptions(timestamps="never", split_above=8.0)
    (label,) = Transcriber(model, processor, options).transcribe([three_sentence_window], ["en"])
    assert sentences_kept(label.text) == [True, True, True], label.text
    assert_timestamp_grammar(label.timestamped_tokens, TokenRules.from_model(model))
