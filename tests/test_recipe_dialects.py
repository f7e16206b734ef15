"""egs/dialects stages 1-2: FLEURS ar_eg (lhotse's download layout), an MGB-3-style Kaldi
data dir with segments, and a labelled set saved with datasets' save_to_disk (the way SADA
or in-house sets get in)."""
from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from recipe_fixtures import cuts_by_id, place, run_recipe, write_audio

FLEURS_ROWS = [("1711", "10371_ar_eg", "إزيك يا صاحبي؟", "إزيك يا صاحبي")]
MGB3 = [("انا رايح الشغل", 0), ("الجو حر قوي النهارده", 1)]
SADA = [("sada_001", "وش تبي تسوي اليوم", 16000), ("sada_002", "الله يعطيك العافية", 22050)]


def make_fleurs_lhotse_layout(root, speak):
    """lhotse download_fleurs layout: <root>/ar_eg/<split>/*.wav, <root>/metadata/ar_eg/<split>.tsv."""
    for split in ("train", "dev", "test"):
        lines = []
        for prompt, stem, raw, norm in FLEURS_ROWS:
            audio = speak(raw, voice="ar")
            write_audio(root / "ar_eg" / split / f"{stem}_{split}.wav", audio)
            lines.append("\t".join([prompt, f"{stem}_{split}.wav", raw, norm, "x |", str(len(audio)), "MALE"]))
        (root / "metadata" / "ar_eg").mkdir(parents=True, exist_ok=True)
        (root / "metadata" / "ar_eg" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def make_mgb3_kaldi(root, speak):
    signal, times = place([speak(text, voice="ar") for text, _ in MGB3])
    write_audio(root / "wav" / "egy_show_01.wav", signal)
    (root / "wav.scp").write_text(f"egy_show_01 {root / 'wav' / 'egy_show_01.wav'}\n")
    (root / "segments").write_text("".join(f"egy_show_01_{i:03d} egy_show_01 {s:.2f} {e:.2f}\n"
                                           for i, (s, e) in enumerate(times)))
    (root / "text").write_text("".join(f"egy_show_01_{i:03d} {t}\n" for i, (t, _) in enumerate(MGB3)), encoding="utf-8")
    return root, times


def make_hf_dataset(root, speak):
    """A DatasetDict with an Audio column (embedded wav bytes at two rates) and a text column."""
    from datasets import Audio, Dataset, DatasetDict, Features, Value

    from udistil.tts.espeak import resample

    rows = {"audio": [], "text": [], "dialect": []}
    for utt, text, rate in SADA:
        buf = io.BytesIO()
        sf.write(buf, resample(speak(text, voice="ar"), 16000, rate), rate, format="WAV")
        rows["audio"].append({"bytes": buf.getvalue(), "path": f"{utt}.wav"})
        rows["text"].append(f" {text} ")
        rows["dialect"].append("najdi")
    features = Features({"audio": {"bytes": Value("binary"), "path": Value("string")},
                         "text": Value("string"), "dialect": Value("string")})
    # Built as a plain struct and cast to Audio: writing an Audio feature directly needs
    # torchcodec, reading it back without decoding does not.
    ds = Dataset.from_dict(rows, features=features).cast_column("audio", Audio())
    DatasetDict({"test": ds}).save_to_disk(str(root))
    return root


@pytest.fixture(scope="module")
def corpora(tmp_path_factory, speak):
    root = tmp_path_factory.mktemp("dialects")
    return (make_fleurs_lhotse_layout(root / "fleurs", speak), *make_mgb3_kaldi(root / "mgb3_test", speak),
            make_hf_dataset(root / "sada_saved", speak))


def test_dialects_stages_1_2(corpora, tmp_path):
    fleurs, mgb3, mgb3_times, sada = corpora
    proc = run_recipe("dialects", tmp_path, "--fleurs-dir", str(fleurs), "--mgb3-dir", str(mgb3),
                      "--hf-sets", f"test_sada={sada}:test", "--test-sets", "test_fleurs_ar_eg test_mgb3 test_sada")
    # FLEURS is named as train, dev and a test set: stage 2 makes it once (twice, its two merges
    # raced for the output's lock and one of them could fail the run).
    merges = [line for line in (proc.stdout + proc.stderr).splitlines()
              if "[udistil.parallel.shards]" in line and "data/cuts_test_fleurs_ar_eg.jsonl.gz" in line]
    assert len(merges) == 1, merges

    fleurs_cuts = cuts_by_id(tmp_path, "test_fleurs_ar_eg")
    prompt, stem, raw, norm = FLEURS_ROWS[0]
    assert list(fleurs_cuts) == [f"{prompt}_1_{stem}_test"]
    assert fleurs_cuts[f"{prompt}_1_{stem}_test"].supervisions[0].text == norm

    mgb3_cuts = cuts_by_id(tmp_path, "test_mgb3")
    assert sorted(mgb3_cuts) == ["egy_show_01_000", "egy_show_01_001"]
    for i, (text, _) in enumerate(MGB3):
        cut = mgb3_cuts[f"egy_show_01_{i:03d}"]
        start, end = mgb3_times[i]
        assert cut.supervisions[0].text == text
        assert cut.duration == pytest.approx(float(f"{end:.2f}") - float(f"{start:.2f}"), abs=0.01)

    sada_cuts = cuts_by_id(tmp_path, "test_sada")
    assert sorted(sada_cuts) == ["sada_001", "sada_002"]  # ids from the audio file names
    for utt, text, rate in SADA:
        cut = sada_cuts[utt]
        assert cut.supervisions[0].text == text  # outer spaces stripped
        assert cut.sampling_rate == 16000  # the 22.05 kHz one is resampled in stage 2
        assert cut.load_audio().shape[-1] == cut.num_samples
        assert np.abs(cut.load_audio()).max() > 0.01

    for set_name in ("test_fleurs_ar_eg", "test_mgb3", "test_sada"):
        assert {c.supervisions[0].language for c in cuts_by_id(tmp_path, set_name).values()} == {"ar"}


def test_dialects_unknown_set_is_named(tmp_path):
    proc = run_recipe("dialects", tmp_path, "--test-sets", "test_nowhere", "--train-set", "test_nowhere",
                      "--dev-set", "test_nowhere", check=False)
    assert proc.returncode != 0 and "test_nowhere" in proc.stderr and "--hf-sets" in proc.stderr
