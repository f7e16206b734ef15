"""egs/swahili stages 1-2 on tiny copies of its three corpora, each in its real layout:
Common Voice sw (an older release without the variant column; 48 kHz mp3), FLEURS sw_ke
(google/fleurs repository layout) and ALFFA (Kaldi dirs whose wav.scp points at /my_dir)."""
from __future__ import annotations

import pytest

from recipe_fixtures import (CV_OLD_COLUMNS, cuts_by_id, make_common_voice, make_fleurs_repo,
                             make_kaldi_dir, run_recipe)

CV = {"train": [("common_voice_sw_101", "Habari ya asubuhi.", "habari ya asubuhi")],
      "dev": [("common_voice_sw_201", "Asante sana", "asante sana")],
      "test": [("common_voice_sw_301", "Ninapenda chai", "ninapenda chai")]}
FLEURS = {split: [(str(1000 + i), f"{9000 + i}_{split}", "Watoto wanacheza mpira.", "watoto wanacheza mpira")]
          for i, split in enumerate(("train", "dev", "test"))}
ALFFA = {"train": [("SWH-15-20101106_16k-emission_swahili_15h00_-_16h00_tu_20101106_part2", "SWH-15-20101106", "leo ni siku nzuri")],
         "test": [("16k-emission_swahili_05h30_-_06h00_tu_20101124_part001g", "SWH-05-20101124", "karibu nyumbani")]}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory, speak):
    root = tmp_path_factory.mktemp("sw")
    cv = make_common_voice(root / "cv-corpus-9.0", "sw", CV, speak, voice="sw", columns=CV_OLD_COLUMNS)
    fleurs = make_fleurs_repo(root / "fleurs", "sw_ke", FLEURS, speak, voice="sw")
    alffa = root / "ALFFA_PUBLIC" / "ASR" / "SWAHILI" / "data"
    for split, wav_dir in (("train", "wav"), ("test", "wav5")):
        make_kaldi_dir(alffa / split, ALFFA[split], speak, "sw", alffa / split / wav_dir, scp_prefix="/my_dir/wav")
    return cv, fleurs, alffa


def test_swahili_stages_1_2(corpora, tmp_path):
    cv, fleurs, alffa = corpora
    run_recipe("swahili", tmp_path, "--cv-dir", str(cv), "--fleurs-dir", str(fleurs), "--alffa-dir", str(alffa),
               "--prep-num-jobs", "1")
    train = cuts_by_id(tmp_path, "train")
    # Common Voice train + ALFFA train, combined.
    assert sorted(train) == sorted([CV["train"][0][0], ALFFA["train"][0][0]])
    assert train[CV["train"][0][0]].supervisions[0].text == "Habari ya asubuhi."
    assert train[ALFFA["train"][0][0]].supervisions[0].text == "leo ni siku nzuri"
    assert sorted(cuts_by_id(tmp_path, "dev")) == [CV["dev"][0][0]]
    assert sorted(cuts_by_id(tmp_path, "test_cv_sw")) == [CV["test"][0][0]]
    assert sorted(cuts_by_id(tmp_path, "test_alffa")) == [ALFFA["test"][0][0]]

    fleurs_test = cuts_by_id(tmp_path, "test_fleurs_sw")
    (cut,) = fleurs_test.values()
    prompt, stem, raw, norm = FLEURS["test"][0]
    assert cut.id == f"{prompt}_1_{stem}"  # lhotse's FLEURS ids: <prompt>_<n>_<file>
    assert cut.supervisions[0].text == norm and cut.supervisions[0].custom["raw_text"] == raw
    wav_samples = len(__import__("soundfile").read(str(fleurs / "data" / "sw_ke" / "audio" / "test" / f"{stem}.wav"))[0])
    assert cut.duration == pytest.approx(wav_samples / 16000, abs=1e-3)

    for set_name in ("train", "dev", "test_cv_sw", "test_fleurs_sw", "test_alffa"):
        for c in cuts_by_id(tmp_path, set_name).values():
            assert c.supervisions[0].language == "sw"
            assert c.sampling_rate == 16000 and 0.3 < c.duration < 30


def test_swahili_only_some_corpora(corpora, tmp_path):
    _, fleurs, _ = corpora
    run_recipe("swahili", tmp_path, "--fleurs-dir", str(fleurs), "--fleurs-in-train", "true",
               "--test-sets", "test_fleurs_sw", "--prep-num-jobs", "1")
    assert [c.supervisions[0].text for c in cuts_by_id(tmp_path, "train").values()] == [FLEURS["train"][0][3]]
    assert len(cuts_by_id(tmp_path, "dev")) == 1  # FLEURS dev stands in for Common Voice dev
