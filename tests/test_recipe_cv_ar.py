"""egs/cv_ar stages 1-2 on a tiny Common Voice Arabic release: ar/clips/*.mp3 (48 kHz) and
ar/{train,dev,test}.tsv with the CV15 columns."""
from __future__ import annotations

import soundfile as sf

from recipe_fixtures import cuts_by_id, make_common_voice, run_recipe

SPLITS = {
    "train": [("common_voice_ar_10001", "مرحبا بكم في بيتكم", "مرحبا بكم في بيتكم"),
              ("common_voice_ar_10002", "  أين تقع المدرسة؟ ", "أين تقع المدرسة")],
    "dev": [("common_voice_ar_20001", "شكرا جزيلا", "شكرا جزيلا")],
    "test": [("common_voice_ar_30001", "الطقس جميل اليوم", "الطقس جميل اليوم")],
}


def test_cv_ar_stages_1_2(tmp_path, speak):
    release = make_common_voice(tmp_path / "cv-corpus-15.0-2023-09-08", "ar", SPLITS, speak, voice="ar")
    work = tmp_path / "work"
    work.mkdir()
    run_recipe("cv_ar", work, "--cv-dir", str(release), "--cv-num-jobs", "1")

    for set_name, split in (("train", "train"), ("dev", "dev"), ("test_cv", "test")):
        cuts = cuts_by_id(work, set_name)
        assert sorted(cuts) == sorted(clip for clip, _, _ in SPLITS[split])
        for clip, sentence, _ in SPLITS[split]:
            cut = cuts[clip]
            sup = cut.supervisions[0]
            assert sup.language == "ar"
            assert sup.text == sentence.strip()  # the reference as written, outer spaces removed
            mp3 = release / "ar" / "clips" / f"{clip}.mp3"
            assert cut.duration == sf.info(str(mp3)).duration
            # 48 kHz mp3 in, 16 kHz cuts out (lazy resampling), and the audio decodes.
            assert cut.sampling_rate == 16000
            assert cut.load_audio().shape[-1] == cut.num_samples


def test_cv_ar_missing_tsv_names_it(tmp_path, speak):
    release = make_common_voice(tmp_path / "cv", "ar", {"train": SPLITS["train"]}, speak, voice="ar")
    work = tmp_path / "work"
    work.mkdir()
    proc = run_recipe("cv_ar", work, "--cv-dir", str(release), "--cv-num-jobs", "1", check=False)
    assert proc.returncode != 0
    assert "ar/dev.tsv" in proc.stderr and "not found" in proc.stderr
