"""Stage 1 mini corpus: determinism, honest splits, language mix, and noise at the stated SNR."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import soundfile as sf

from udistil.data.mini_corpus import (DEFAULT_SENTENCES_DIR, DEV_HELDOUT_VOICES, HELDOUT_PITCHES, HELDOUT_SPEEDS_WPM, HELDOUT_VOICES, LANGUAGE_SHARE,
                                      LEADING_SILENCE, MAX_CLIP_SECONDS, TEST_VOICES, TRAILING_SILENCE,
                                      TRAIN_LANGUAGE_SHARE, TRAIN_VOICES, language_counts, load_sentences,
                                      load_train_only_sentences, plan_corpus, prepare_mini_corpus,
                                      split_plans)
from udistil.errors import UdistilError
from udistil.tts.espeak import synthesize

SPLITS = ("train", "dev", "test_clean", "test_noisy")
SIZES = dict(num_train=14, num_dev=6, num_test=6)


def read_jsonl_gz(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("mini") / "manifests"
    paths = prepare_mini_corpus(out, seed=3, num_threads=2, **SIZES)
    sups = {split: read_jsonl_gz(paths[split]["supervisions"]) for split in SPLITS}
    recs = {split: read_jsonl_gz(paths[split]["recordings"]) for split in SPLITS}
    return out, paths, sups, recs


def manifest_bytes(paths):
    return {(split, kind): p.read_bytes() for split, d in paths.items() for kind, p in d.items()}


def test_same_seed_gives_byte_identical_manifests(corpus):
    out, paths, _, _ = corpus
    before = manifest_bytes(paths)
    again = prepare_mini_corpus(out, seed=3, num_threads=1, **SIZES)  # other thread count, same bytes
    assert manifest_bytes(again) == before


def test_different_seed_gives_a_different_corpus(corpus, tmp_path):
    _, paths, _, _ = corpus
    other = prepare_mini_corpus(tmp_path / "manifests", seed=4, num_threads=2, **SIZES)
    # Supervisions hold no paths, so any difference comes from the seed.
    assert other["train"]["supervisions"].read_bytes() != paths["train"]["supervisions"].read_bytes()


def test_test_sets_share_no_sentence_or_voice_with_train(corpus):
    _, _, sups, _ = corpus
    texts = {split: {s["text"] for s in sups[split]} for split in SPLITS}
    voices = {split: {s["speaker"] for s in sups[split]} for split in SPLITS}
    for test in ("test_clean", "test_noisy"):
        assert not texts[test] & texts["train"]
        assert not texts[test] & texts["dev"]
        assert not voices[test] & voices["train"]
        assert voices[test] <= set(TEST_VOICES)
    assert voices["train"] <= set(TRAIN_VOICES) and voices["dev"] <= set(TRAIN_VOICES)


def test_every_split_has_all_languages_and_english_leads(corpus):
    _, _, sups, _ = corpus
    for split in SPLITS:
        langs = [s["language"] for s in sups[split]]
        assert set(langs) == set(LANGUAGE_SHARE), split
        assert langs.count("en") == max(langs.count(lang) for lang in LANGUAGE_SHARE)
    counts = language_counts(240)
    assert sum(counts.values()) == 240 and 96 <= counts["en"] <= 120
    train_counts = language_counts(240, TRAIN_LANGUAGE_SHARE)
    assert sum(train_counts.values()) == 240 and train_counts["en"] == 192


def test_a_train_set_of_160_never_repeats_an_english_sentence_and_mixes_clip_lengths():
    # Distinct English sentences are what the students learn from, so 160 cuts must not
    # repeat one (the train-only sentences make the pool large enough); and their clips say
    # one to three sentences, so that a student learns to go on after the first.  The default
    # of 320 says no sentence more than twice.
    train = plan_corpus(split_plans(160, 40, 40), seed=1234)["train"]
    english = [u for u in train if u.language == "en"]
    assert len(english) == 128 and sum(u.language != "en" for u in train) == 32
    partitioned = load_sentences()
    pool = partitioned["en"] + load_train_only_sentences(DEFAULT_SENTENCES_DIR, partitioned)["en"]
    said = {sentence: sum(u.text.count(sentence) for u in english) for sentence in pool}
    assert max(said.values()) == 1
    twice = [u for u in plan_corpus(split_plans(320, 40, 40), seed=1234)["train"] if u.language == "en"]
    assert max(sum(u.text.count(sentence) for u in twice) for sentence in pool) == 2
    assert sum(said.values()) == sum(u.sentences for u in english)
    assert {u.sentences for u in english} == {1, 2, 3}
    assert all(u.sentences == 1 for split in ("test_clean", "test_noisy")
               for u in plan_corpus(split_plans(160, 40, 40), seed=1234)[split])


def test_the_heldout_ruler_uses_voices_rates_and_clips_no_other_split_has():
    with_ruler = plan_corpus(split_plans(40, 10, 10, num_heldout=30), seed=7)
    without = plan_corpus(split_plans(40, 10, 10), seed=7)
    for split, utterances in without.items():  # the ruler changes no other split's draw
        assert with_ruler[split] == utterances, split
    heldout = with_ruler["test_heldout"]
    assert len(heldout) == 30 and {u.language for u in heldout} == {"en"}
    assert {u.variant for u in heldout} <= set(HELDOUT_VOICES)
    assert not set(HELDOUT_VOICES) & (set(TRAIN_VOICES) | set(TEST_VOICES))
    assert {u.speed for u in heldout} <= set(HELDOUT_SPEEDS_WPM)
    assert {u.pitch for u in heldout} <= set(HELDOUT_PITCHES)
    assert {u.sentences for u in heldout} == {1, 2, 3}
    train_text = " ".join(u.text for u in with_ruler["train"] + with_ruler["dev"])
    for u in heldout:
        assert u.text.split(". ")[0] not in train_text
    # Its dev twin: dev sentences, and voices of neither the ruler nor any other split.
    dev_heldout = with_ruler["dev_heldout"]
    assert len(dev_heldout) == 30 and {u.variant for u in dev_heldout} <= set(DEV_HELDOUT_VOICES)
    assert not set(DEV_HELDOUT_VOICES) & (set(HELDOUT_VOICES) | set(TRAIN_VOICES) | set(TEST_VOICES))
    dev_sentences = " ".join(u.text for u in with_ruler["dev"])
    assert all(u.text.split(". ")[0] not in train_text.replace(dev_sentences, "") for u in dev_heldout)


def write_sentence_lists(root, per_language=12, train_only=()):
    root.mkdir(parents=True, exist_ok=True)
    for lang in LANGUAGE_SHARE:
        (root / f"{lang}.txt").write_text("".join(f"{lang} sentence {i}\n" for i in range(per_language)))
    if train_only:
        (root / "train_only").mkdir()
        (root / "train_only" / "en.txt").write_text("".join(f"{s}\n" for s in train_only))
    return root


def test_train_only_sentences_reach_train_and_leave_dev_and_test_as_they_were(tmp_path):
    plans = split_plans(40, 20, 20)
    before = plan_corpus(plans, seed=5, sentences_dir=write_sentence_lists(tmp_path / "a"))
    extra = [f"extra sentence {i}" for i in range(30)]
    after = plan_corpus(plans, seed=5, sentences_dir=write_sentence_lists(tmp_path / "b", train_only=extra))
    for split in ("dev", "test_clean", "test_noisy"):
        assert after[split] == before[split], split
        assert not {u.text for u in after[split]} & set(extra)
    train_texts = {u.text for u in after["train"]}
    assert train_texts & set(extra) and not {u.text for u in before["train"]} & set(extra)


def test_a_train_only_sentence_that_is_also_partitioned_is_refused(tmp_path):
    root = write_sentence_lists(tmp_path, train_only=["new one", "en sentence 3"])
    with pytest.raises(UdistilError, match=r"train_only/en.txt: sentence 2 \('en sentence 3'\)"):
        plan_corpus(split_plans(10, 5, 5), seed=1, sentences_dir=root)


def test_clips_are_16k_short_and_match_their_manifest(corpus):
    _, _, sups, recs = corpus
    for split in SPLITS:
        for rec, sup in zip(recs[split], sups[split]):
            info = sf.info(rec["sources"][0]["source"])
            assert info.samplerate == 16000 and info.channels == 1
            assert info.frames == rec["num_samples"]
            assert 0.5 < rec["duration"] <= MAX_CLIP_SECONDS
            assert sup["recording_id"] == rec["id"] and sup["duration"] == rec["duration"]
            assert sup["custom"]["voice"] == f"{sup['language']}+{sup['speaker']}"


def measured_snr(sup, wav_path) -> float:
    """SNR of a stored mix, against the same utterance re-spoken clean by espeak-ng."""
    c = sup["custom"]
    clean = synthesize(sup["text"], voice=c["voice"], speed=c["speed"], pitch=c["pitch"]).astype(np.float64)
    # The corpus pads speech with silence on both sides (Whisper mishears speech at sample 0).
    clean = np.concatenate([np.zeros(int(LEADING_SILENCE * 16000)), clean,
                            np.zeros(int(TRAILING_SILENCE * 16000))])
    mix, _ = sf.read(wav_path, dtype="float64")
    assert len(mix) == len(clean)
    # The mix may have been scaled down to avoid clipping: project it onto the clean speech.
    scale = np.dot(mix, clean) / np.dot(clean, clean)
    noise = mix - scale * clean
    return 10 * np.log10(np.sum((scale * clean) ** 2) / np.sum(noise ** 2))


def test_noise_is_added_at_the_requested_snr(corpus):
    _, _, sups, recs = corpus
    checked = {"white": 0, "babble": 0, "none": 0}
    for split in ("train", "dev", "test_noisy", "test_clean"):
        for rec, sup in zip(recs[split], sups[split]):
            kind, snr = sup["custom"]["noise"], sup["custom"]["snr_db"]
            snr_measured = measured_snr(sup, rec["sources"][0]["source"])
            if kind == "none":
                assert snr is None and snr_measured > 40  # only 16-bit rounding is left
            else:
                # Babble is not exactly uncorrelated with the speech, hence the tolerance.
                assert abs(snr_measured - snr) < 1.0, (sup["id"], kind, snr, snr_measured)
            checked[kind] += 1
    assert checked["white"] and checked["babble"] and checked["none"]
    assert all(s["custom"]["noise"] == "none" for s in sups["test_clean"])
    assert all(s["custom"]["noise"] != "none" for s in sups["test_noisy"])


def test_cli_writes_the_manifests(tmp_path):
    from udistil.bin.main import main

    rc = main(["prepare-mini-corpus", "--out-dir", str(tmp_path / "m"), "--num-train", "3",
               "--num-dev", "3", "--num-test", "3", "--seed", "1"])
    assert rc == 0
    assert len(read_jsonl_gz(tmp_path / "m" / "mini_supervisions_train.jsonl.gz")) == 3
    assert len(list((tmp_path / "wav" / "test_noisy").glob("*.wav"))) == 3


def test_the_train_size_does_not_change_the_test_or_dev_clips():
    small = plan_corpus(split_plans(240, 40, 40), seed=1234)
    large = plan_corpus(split_plans(480, 40, 40), seed=1234)
    for split in ("dev", "test_clean", "test_noisy"):
        assert small[split] == large[split], split
    assert small["train"] != large["train"][:len(small["train"])]
    other_seed = plan_corpus(split_plans(240, 40, 40), seed=1235)
    assert other_seed["test_clean"] != small["test_clean"]


def test_the_plan_fingerprint_follows_what_is_drawn(tmp_path, monkeypatch):
    from udistil.data import mini_corpus

    root = write_sentence_lists(tmp_path / "a")
    fingerprint = mini_corpus.corpus_plan_fingerprint(20, 10, 10, seed=3, sentences_dir=root)
    assert fingerprint == mini_corpus.corpus_plan_fingerprint(20, 10, 10, seed=3, sentences_dir=root)
    assert fingerprint != mini_corpus.corpus_plan_fingerprint(20, 10, 10, seed=4, sentences_dir=root)
    more = write_sentence_lists(tmp_path / "b", train_only=["a sentence for train only"])
    assert fingerprint != mini_corpus.corpus_plan_fingerprint(20, 10, 10, seed=3, sentences_dir=more)
    monkeypatch.setattr(mini_corpus, "TRAIN_LANGUAGE_SHARE", {"en": 0.45, "ar": 0.30, "sw": 0.25})
    assert fingerprint != mini_corpus.corpus_plan_fingerprint(20, 10, 10, seed=3, sentences_dir=root)
