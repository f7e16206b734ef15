"""Every filter on real espeak-ng speech: a correct pseudo-label must score better than a
wrong one for the same audio, and cuts a filter cannot score must get null.

The "good" cut carries whisper-base's own stage-3 output for a clean English sentence
(checked to be close to the reference); the "bad" cut is the same audio with a wrong
pseudo-label whose per-token statistics are whisper-base's, teacher-forced, as stage 3
would have recorded had the teacher said it.  For the hallucination signals the wrong
label is a repetition loop, which is what they are built to catch.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
from lhotse import Recording, SupervisionSegment

from udistil.data.manifests import custom
from udistil.errors import UdistilError
from udistil.evaluate.scoring import utterance_wer
from udistil.filters import create_filter, filter_class
from udistil.filters.base import worse_is_higher
from udistil.teacher.pseudo_label import store_transcript
from udistil.teacher.transcriber import STOP_END, Transcriber

SENTENCE = "The city council approved a new budget for the schools."
WRONG = "Bananas grow slowly under a purple mountain sky at night."
LOOP = "the school the school the school the school the school the school the school the school"


def padded(samples):
    # espeak-ng starts speaking at sample 0; Whisper needs a little silence first.
    return np.concatenate([np.zeros(8000, np.float32), samples, np.zeros(4800, np.float32)])


def make_cut(path, samples, text, language, cut_id):
    from udistil.data.audio import SAMPLE_RATE
    import soundfile as sf

    sf.write(str(path), samples, SAMPLE_RATE)
    rec = Recording.from_file(str(path), recording_id=cut_id)
    cut = rec.to_cut()
    cut.id = cut_id
    cut.supervisions = [SupervisionSegment(cut_id, cut_id, 0.0, rec.duration, text=text, language=language)]
    return cut


@pytest.fixture(scope="module")
def teacher(whisper_base_dir):
    return Transcriber.from_spec(str(whisper_base_dir))


def forced(teacher, audio, text, language):
    """The Transcript stage 3 would have stored had the teacher output `text`."""
    from udistil.teacher.transcriber import Transcript

    prompt = teacher.rules.prompt(language, timestamps=False)
    body = teacher.tokenizer.encode(" " + text, add_special_tokens=False)
    result = teacher._score_tokens(teacher.encode([audio]), prompt, body, STOP_END)
    return Transcript(text, result.tokens, result.logprobs, result.entropies, language, STOP_END)


@pytest.fixture(scope="module")
def pair(tmp_path_factory, speak, teacher):
    """(good cut, bad cut, loop cut): one clean English clip, three pseudo-labels."""
    tmp = tmp_path_factory.mktemp("filter_pair")
    audio = padded(speak(SENTENCE, "en"))
    good = make_cut(tmp / "good.wav", audio, SENTENCE, "en", "clip-good")
    store_transcript(good, teacher.transcribe([audio], ["en"])[0])
    assert utterance_wer(SENTENCE, custom(good)["teacher_text"], "en") <= 20, custom(good)["teacher_text"]
    bad = copy.deepcopy(good)
    bad.id = "clip-wrong"
    store_transcript(bad, forced(teacher, audio, WRONG, "en"))
    loop = copy.deepcopy(good)
    loop.id = "clip-loop"
    store_transcript(loop, forced(teacher, audio, LOOP, "en"))
    custom(loop)["teacher_stop"] = "loop"
    return good, bad, loop


def score_one(name, cut, **options):
    from udistil.data.audio import load_cut_audio

    filt = create_filter(name, **options)
    audio = load_cut_audio(cut) if "audio" in filt.needs else None
    return filt.score([cut], [audio])[0]


def assert_better(name, good_cut, bad_cut, **options):
    good, bad = score_one(name, good_cut, **options), score_one(name, bad_cut, **options)
    assert good.value is not None and bad.value is not None, (good, bad)
    direction = filter_class(name).higher_is_worse
    assert worse_is_higher(good.value, direction) < worse_is_higher(bad.value, direction), (name, good, bad)
    return good.value, bad.value


@pytest.mark.parametrize("name", ["confidence", "entropy", "nll", "nll_sum", "oracle_wer"])
def test_teacher_statistics_prefer_the_right_label(pair, name):
    good, bad, _ = pair
    assert_better(name, good, bad)


@pytest.mark.parametrize("name", ["hallucination", "compression_ratio", "repeated_ngrams", "chars_per_second"])
def test_hallucination_signals_catch_a_loop(pair, name):
    good, _, loop = pair
    assert_better(name, good, loop)


def test_proxy_wer_with_whisper_tiny_en(pair):
    good, bad, _ = pair
    good_wer, bad_wer = assert_better("proxy_wer", good, bad, proxy="packaged:whisper-tiny.en")
    assert good_wer < 30 and bad_wer > 80


def test_consistency_speed_and_noise(pair, whisper_base_dir):
    good, bad, _ = pair
    for perturb in ("speed", "noise"):
        good_wer, bad_wer = assert_better("consistency", good, bad, model=str(whisper_base_dir), perturb=perturb)
        assert bad_wer > 50


def test_pesq_with_espeak(pair):
    good, bad, _ = pair
    assert_better("pesq", good, bad, tts="espeak")


def test_fusion_ranks_the_wrong_label_worse(pair, whisper_base_dir):
    good, bad, loop = (copy.deepcopy(c) for c in pair)
    cuts = [good, bad, loop]
    for name in ("confidence", "nll_sum", "hallucination"):
        filt = create_filter(name)
        for cut, s in zip(cuts, filt.score(cuts, [None] * 3)):
            custom(cut)[name] = s.value
    fused = create_filter("fusion").score(cuts, [None] * 3)
    assert fused[0].value < fused[1].value and fused[0].value < fused[2].value
    # No WER-like component: the estimate is 100 x the fused percentile.
    assert all(0 < f.value <= 100 for f in fused)


def test_fusion_never_uses_references(pair):
    with pytest.raises(UdistilError, match="label-free"):
        create_filter("fusion", components=["oracle_wer"]).score(list(pair), [None] * 3)


# ---- nulls, with reasons -------------------------------------------------------------

def test_proxy_outside_its_languages_is_null(tmp_path, speak, pair):
    sw = make_cut(tmp_path / "sw.wav", padded(speak("Habari ya asubuhi rafiki yangu", "sw")),
                  "Habari ya asubuhi rafiki yangu", "sw", "clip-sw")
    custom(sw).update(teacher_text="habari ya asubuhi", teacher_tokens=[1], teacher_logprobs=[-0.1],
                      teacher_entropy=[0.2], teacher_stop="eot")
    filt = create_filter("proxy_wer", proxy="packaged:whisper-tiny.en")
    from udistil.data.audio import load_cut_audio
    scores = filt.score([sw, pair[0]], [load_cut_audio(sw), load_cut_audio(pair[0])])
    assert scores[0].value is None and "'sw'" in scores[0].reason
    assert scores[1].value is not None


def test_empty_pseudo_label_is_null_for_token_and_tts_filters(pair):
    empty = copy.deepcopy(pair[0])
    custom(empty).update(teacher_text="", teacher_tokens=[], teacher_logprobs=[], teacher_entropy=[])
    for name in ("confidence", "entropy", "nll", "pesq"):
        s = score_one(name, empty)
        assert s.value is None and s.reason, name
    # ...while an empty output on audible speech is a hallucination flag.
    assert score_one("hallucination", empty).value >= 1


def test_oracle_refuses_a_set_without_references(pair, tmp_path):
    from udistil.data.manifests import write_cuts
    from udistil.filters.runner import score_cuts

    unlabelled = copy.deepcopy(pair[0])
    unlabelled.supervisions[0].text = ""
    write_cuts([unlabelled], tmp_path / "in.jsonl.gz")
    with pytest.raises(UdistilError, match="no cut has a reference"):
        score_cuts(create_filter("oracle_wer"), tmp_path / "in.jsonl.gz", tmp_path / "out.jsonl.gz")


def test_pesq_edge_cases_are_explicit():
    from udistil.filters.pesq import match_length, pesq_wb

    assert len(match_length(np.ones(10, np.float32), 25)) == 25
    assert len(match_length(np.ones(30, np.float32), 25)) == 25
    silence = np.zeros(16000, np.float32)
    s = pesq_wb(silence, silence)
    assert s.value is None and "no utterance" in s.reason.lower()


def test_backends_that_do_not_import_say_so():
    try:
        import sonar  # noqa: F401
    except Exception:
        with pytest.raises(UdistilError, match="sonar-space"):
            create_filter("sonar_sim")
    try:
        import TTS  # noqa: F401
    except Exception:
        with pytest.raises(UdistilError, match="coqui-tts"):
            create_filter("pesq", tts="xtts")


def test_sonar_encoders_get_the_stage_device_and_dtype(monkeypatch):
    """SONAR does not install here (fairseq2n); its pipelines are stood in for, to check what
    udistil hands them: --dtype reaches both encoders, and the cosine is computed in float32."""
    import torch

    from lhotse import MonoCut

    import udistil.filters.sonar_sim as sonar_sim

    built = []

    class FakePipeline:
        def __init__(self, **kwargs):
            built.append(kwargs)
            self.dtype = kwargs["dtype"]

        def predict(self, inputs, batch_size, source_lang=None):
            # The same unit vector for speech and text: cosine 1, computed from the encoders' dtype.
            return torch.ones(len(inputs), 4, dtype=self.dtype)

    monkeypatch.setattr(sonar_sim, "import_sonar", lambda: (FakePipeline, FakePipeline))
    filt = create_filter("sonar_sim", device="cpu", dtype="bfloat16")
    assert filt.options["dtype"] == "bfloat16"
    cut = MonoCut(id="sw-1", start=0, duration=1.0, channel=0, recording=None)
    cut.supervisions = [SupervisionSegment("sw-1", "sw-1", 0, 1.0, language="sw",
                                           custom={"teacher_text": "habari ya asubuhi"})]
    scores = filt.score([cut], [np.zeros(16000, np.float32)])
    assert [b["dtype"] for b in built] == [torch.bfloat16, torch.bfloat16]
    assert scores[0].value == pytest.approx(1.0)
    with pytest.raises(UdistilError, match="float16 is not supported on the CPU"):
        create_filter("sonar_sim", device="cpu", dtype="float16")
