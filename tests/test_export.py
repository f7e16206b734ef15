"""`udistil export`: CTranslate2 directories that faster-whisper loads (real whisper-base, tiny student)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from udistil.errors import UdistilError
from udistil.models.export import faster_whisper_max_new_tokens
from udistil.teacher.transcriber import DecodeOptions

SENTENCE = "the weather is nice today and the children are playing in the park"


def _wer(ref: str, hyp: str) -> float:
    from udistil.evaluate.scoring import count_errors, normalise_pairs

    return count_errors(*normalise_pairs([ref], [hyp], ["en"])).rate() / 100


@pytest.mark.slow
def test_exported_whisper_base_transcribes_in_faster_whisper(whisper_base_ct2_dir, speak):
    from faster_whisper import WhisperModel

    out = whisper_base_ct2_dir
    for name in ("model.bin", "config.json", "tokenizer.json", "preprocessor_config.json", "udistil_export.json"):
        assert (out / name).is_file(), name
    info = json.loads((out / "udistil_export.json").read_text())
    assert info["quantization"] == "int8" and info["audio_context"] is None
    readme = (out / "README.md").read_text()
    assert "Audio context" not in readme and "Padding each short clip with silence to 30 s" in readme

    audio = np.concatenate([np.zeros(8000, np.float32), speak(SENTENCE), np.zeros(8000, np.float32)])
    model = WhisperModel(str(out), device="cpu", compute_type="int8", cpu_threads=2)
    # Language detection and the timestamped default path, as a faster-whisper user runs it.
    segments, info = model.transcribe(audio, beam_size=1)
    text = " ".join(s.text for s in segments)
    print(f"faster-whisper: {text!r} ({info.language})")
    assert info.language == "en"
    assert _wer(SENTENCE, text) <= 0.2, text

    # The README's max_new_tokens rule: faster-whisper generates (prompt + max_new_tokens) / 2
    # new tokens, so 2 * k - 4 gives exactly k, where asking for k gives fewer.
    match = re.search(r"max_new_tokens = 2 \* \((\d+) \+ ([\d.]+) \* seconds\) - (\d+)", readme)
    assert match and int(match[1]) == DecodeOptions.budget_base
    assert float(match[2]) == DecodeOptions.budget_per_second
    assert int(match[3]) == 2 * 6 - faster_whisper_max_new_tokens(6)

    def new_tokens(max_new_tokens):
        padded = np.pad(audio, (0, 30 * 16000 - len(audio)))
        segments, _ = model.transcribe(padded, language="en", beam_size=1, temperature=0.0, vad_filter=False,
                                       without_timestamps=True, condition_on_previous_text=False,
                                       no_speech_threshold=None, max_new_tokens=max_new_tokens)
        return sum(len(s.tokens) for s in segments)

    assert new_tokens(None) > 6
    assert new_tokens(faster_whisper_max_new_tokens(6)) == 6
    assert new_tokens(6) < 6


@pytest.mark.slow
def test_ct2_engine_spends_the_whole_budget_in_rounds_that_continue_one_decode(whisper_base_ct2_dir, speak):
    """CTranslate2 generates at most max_length / 2 tokens; the engine asks for enough, and its
    rounds (each continuing from the tokens so far) give the tokens of one uninterrupted
    decode, cut at the budget."""
    from udistil.teacher.transcriber import DecodeOptions
    from udistil.transcribe.engines import CT2Engine

    engine = CT2Engine(whisper_base_ct2_dir, DecodeOptions(batch_size=2), device="cpu", threads=2)
    pad = np.zeros(8000, np.float32)
    audio = [np.concatenate([pad, speak(text), pad]) for text in (SENTENCE + " and we will meet at the library after lunch",
                                                                      "good morning")]
    prompts = [engine.prompt("en")] * 2
    full = [r.sequences_ids[0] for r in engine.model.generate(
        engine._storage(audio), prompts, max_length=448, beam_size=1, suppress_blank=True, suppress_tokens=[-1])]
    assert len(full[0]) > 21 and len(full[1]) < 7, full
    capped = engine._generate(engine._storage(audio), prompts, [7, 14, 21])
    assert capped[0] == full[0][:21]
    assert capped[1] == full[1]
    # transcribe: the first call to half the budget's rate, the second to the budget.
    assert engine.transcribe(audio, ["en", "en"])[0] == engine.tokenizer.decode(full[0]).strip()


def test_cpu_workers_get_at_least_two_small_batches_each():
    from udistil.transcribe.engines import cpu_workers, worker_batch_size

    assert cpu_workers(3) == 3
    assert cpu_workers(0) >= 1  # every CPU this process may use
    # The 11 windows of a 5-minute file on two workers: four batches of at most 3.
    assert worker_batch_size(11, 8, 2) == 3
    assert worker_batch_size(100, 8, 2) == 8  # --batch-size stays the cap
    assert worker_batch_size(3, 8, 4) == 1
    assert worker_batch_size(11, 8, 1) == 8  # one worker (a GPU): batches as large as allowed


@pytest.mark.slow
def test_ct2_engine_workers_give_each_clip_its_own_text_in_order(whisper_base_ct2_dir, speak):
    """Batches decoded side by side on two CPU workers come back to the clips they were cut
    from: the same texts as one worker decoding one batch after another."""
    from udistil.transcribe.engines import CT2Engine

    sentences = ["good morning", "the old clock in the town square stopped working last winter",
                 "please close the door", "the new bus line will connect the university to the airport", SENTENCE]
    pad = np.zeros(8000, np.float32)
    audio = [np.concatenate([pad, speak(text), pad]) for text in sentences]
    parallel = CT2Engine(whisper_base_ct2_dir, DecodeOptions(batch_size=8), device="cpu", threads=2)
    serial = CT2Engine(whisper_base_ct2_dir, DecodeOptions(batch_size=8), device="cpu", threads=1)
    assert (parallel.workers, serial.workers) == (2, 1)
    order = sorted(range(len(audio)), key=lambda i: len(audio[i]))
    assert len(parallel._batches(audio, order)) >= 3 and len(serial._batches(audio, order)) == 1
    texts = parallel.transcribe(audio, ["en"] * len(audio))
    assert texts == serial.transcribe(audio, ["en"] * len(audio))
    # Each text is its own clip's: nearer its sentence than any other clip's.
    for i, text in enumerate(texts):
        distances = [_wer(sentence, text) for sentence in sentences]
        assert min(range(len(sentences)), key=distances.__getitem__) == i, (sentences[i], text)
        assert distances[i] <= 0.5, (sentences[i], text)
    assert parallel.detect_languages(audio) == ["en"] * len(audio)


@pytest.mark.slow
def test_export_refuses_to_overwrite_and_names_bad_models(whisper_base_ct2_dir, tmp_path):
    from udistil.models.export import export_ctranslate2

    with pytest.raises(UdistilError, match="not empty"):
        export_ctranslate2("packaged:whisper-base", whisper_base_ct2_dir)
    with pytest.raises(UdistilError, match="does not exist"):
        export_ctranslate2(str(tmp_path / "nowhere"), tmp_path / "out")
    with pytest.raises(UdistilError, match="unknown quantization"):
        export_ctranslate2("packaged:whisper-base", tmp_path / "out", quantization="int4")
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def clip_context_student(tmp_path_factory):
    """A tiny random student that records a clip audio-context rule in its config."""
    from transformers import WhisperConfig

    from udistil.models.audio_context import AudioContext, record
    from udistil.models.tiny import build_tiny_whisper

    path = build_tiny_whisper(tmp_path_factory.mktemp("student"), seed=3)
    config = WhisperConfig.from_pretrained(str(path))
    record(config, AudioContext(rule="clip", margin=32, quantum=64))
    config.save_pretrained(str(path))
    return path


def test_tiny_student_with_clip_context_exports_and_runs(clip_context_student, tmp_path, speak):
    from faster_whisper import WhisperModel

    from udistil.bin.main import main
    from udistil.models.audio_context import AudioContext
    from udistil.teacher.transcriber import DecodeOptions
    from udistil.transcribe.engines import CT2Engine

    out = tmp_path / "student-ct2"
    assert main(["export", str(clip_context_student), str(out), "--quantization", "int8"]) == 0
    info = json.loads((out / "udistil_export.json").read_text())
    assert info["audio_context"] == {"rule": "clip", "margin": 32, "quantum": 64}
    readme = (out / "README.md").read_text()
    assert "faster-whisper always pads" in readme and "udistil transcribe" in readme
    assert "roundup(ceil(samples / 320) + 32, 64)" in readme

    audio = speak("good morning")
    # faster-whisper loads it and runs it (padded to 30 s; a random model says anything).
    segments, _ = WhisperModel(str(out), device="cpu", compute_type="int8", cpu_threads=1).transcribe(
        audio, language="en", beam_size=1, without_timestamps=True)
    assert isinstance(" ".join(s.text for s in segments), str)

    # udistil's engine gives CTranslate2 only the frames the rule asks for.
    engine = CT2Engine(out, DecodeOptions(batch_size=4), device="cpu", threads=1)
    positions = AudioContext(rule="clip").positions(len(audio))
    assert positions < 1500
    assert engine._storage([audio]).shape == [1, 80, 2 * positions]
    texts = engine.transcribe([audio, audio[:8000]], ["en", "sw"])
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    (language,) = engine.detect_languages([audio])
    assert engine.supports(language)


def test_ct2_engine_beam_search_stops_a_loop_as_greedy_decoding_does(clip_context_student, tmp_path):
    """CTranslate2's beam search has no loop stop: the engine cuts a looping beam where the
    greedy loop stop would (one copy of the unit), as `udistil decode --beam N` does."""
    from udistil.bin.main import main
    from udistil.teacher.greedy import loop_stop_length
    from udistil.teacher.transcriber import DecodeOptions
    from udistil.transcribe.engines import CT2Engine

    out = tmp_path / "student-ct2"
    assert main(["export", str(clip_context_student), str(out)]) == 0
    engine = CT2Engine(str(out), DecodeOptions(beam=2, batch_size=2), device="cpu", threads=1)
    rng = np.random.default_rng(1)
    noise = [(0.1 * rng.standard_normal(16000 * seconds)).astype(np.float32) for seconds in (2, 3)]
    prompts = [engine.prompt("en")] * 2
    features = engine._storage(noise)
    full = [r.sequences_ids[0][:60] for r in engine.model.generate(
        features, prompts, max_length=448, beam_size=2, suppress_blank=True, suppress_tokens=[-1])]
    cuts = [loop_stop_length(row) for row in full]
    # The random model loops on noise.
    assert all(cut is not None and cut < len(row) for cut, row in zip(cuts, full)), full
    assert engine._generate(features, prompts, [60]) == [row[:cut] for row, cut in zip(full, cuts)]
