"""Common Voice as Mozilla publishes it (commonvoice.mozilla.org, the per-locale tarball of a
release: <locale>/clips/*.mp3 and <locale>/{validated,train,dev,test}.tsv, tab-separated with a
header row holding client_id, path, sentence_id, sentence, sentence_domain, up_votes,
down_votes, age, gender, accents, variant, locale, segment in CV 17), with the quirks users
meet: a clip listed but absent, a clip that is not mp3 audio, clips at 32 kHz beside 48 kHz,
an unbalanced quote in a sentence, a tsv re-saved with a byte-order mark and CRLF ends, and
the wrong locale's folder."""
from __future__ import annotations

import pytest

from recipe_fixtures import CV15_COLUMNS, cuts_by_id, run_recipe, write_audio
from udistil.errors import UdistilError

ROWS = {  # split: [(clip, sentence as in the tsv, spoken, sample rate)]
    "train": [("common_voice_sw_1001", "Habari ya asubuhi.", "habari ya asubuhi", 48000),
              ("common_voice_sw_1002", 'Alisema "karibu sana', "alisema karibu sana", 32000),
              ("common_voice_sw_1003", "Hii haipo.", None, 48000),       # listed, no file
              ("common_voice_sw_1004", "Hii imeharibika.", "junk", 48000)],  # not audio
    "dev": [("common_voice_sw_2001", "Asante sana", "asante sana", 48000)],
    "test": [("common_voice_sw_3001", "Ninapenda chai", "ninapenda chai", 44100)],
}
ROWS["validated"] = ROWS["train"][:2] + ROWS["dev"] + ROWS["test"]


def make_release(root, speak, locale="sw"):
    from udistil.tts.espeak import resample

    lang = root / locale
    for split, rows in ROWS.items():
        lines = ["\t".join(CV15_COLUMNS)]
        for clip, sentence, spoken, rate in rows:
            mp3 = lang / "clips" / f"{clip}.mp3"
            if spoken == "junk":
                mp3.parent.mkdir(parents=True, exist_ok=True)
                mp3.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(200))
            elif spoken is not None and not mp3.exists():
                write_audio(mp3, resample(speak(spoken, voice="sw"), 16000, rate), rate, format="MP3")
            values = {c: "" for c in CV15_COLUMNS}
            values.update(client_id=f"spk{clip[-1]}", path=f"{clip}.mp3", sentence=sentence, locale=locale,
                          up_votes="2", down_votes="0", sentence_id="s" + clip)
            lines.append("\t".join(values[c] for c in CV15_COLUMNS))
        text = "\n".join(lines) + "\n"
        if split == "dev":  # re-saved by a spreadsheet: BOM and CRLF
            (lang / f"{split}.tsv").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
        else:
            (lang / f"{split}.tsv").write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def release(tmp_path_factory, speak):
    return make_release(tmp_path_factory.mktemp("cv") / "cv-corpus-17.0-2024-03-15", speak)


def test_common_voice_as_published(release, tmp_path):
    proc = run_recipe("swahili", tmp_path, "--cv-dir", str(release), "--test-sets", "test_cv_sw",
                      "--prep-num-jobs", "1")
    log = proc.stdout + proc.stderr
    train = cuts_by_id(tmp_path, "train")
    assert sorted(train) == ["common_voice_sw_1001", "common_voice_sw_1002"]
    assert train["common_voice_sw_1002"].supervisions[0].text == 'Alisema "karibu sana'
    assert train["common_voice_sw_1002"].supervisions[0].speaker == "spk2"
    assert all(c.sampling_rate == 16000 for c in train.values())  # 32 and 48 kHz in, 16 kHz out
    assert cuts_by_id(tmp_path, "train")["common_voice_sw_1002"].load_audio().shape[-1] > 8000
    assert sorted(cuts_by_id(tmp_path, "dev")) == ["common_voice_sw_2001"]  # BOM + CRLF tsv
    assert cuts_by_id(tmp_path, "dev")["common_voice_sw_2001"].supervisions[0].text == "Asante sana"
    assert sorted(cuts_by_id(tmp_path, "test_cv_sw")) == ["common_voice_sw_3001"]
    assert "common_voice_sw_1003.mp3 not found" in log and "common_voice_sw_1004.mp3 cannot be read" in log
    assert "skipped 1 clips not found and 1 unreadable" in log


def test_validated_tsv_and_the_wrong_locale(release, tmp_path):
    from udistil.recipes.common_voice import prepare_common_voice_split

    skipped = prepare_common_voice_split(release, "sw", "validated", tmp_path, "cv", "validated")
    assert sum(skipped.values()) == 0
    (release / "ar").mkdir(exist_ok=True)
    (release / "ar" / "clips").mkdir(exist_ok=True)
    (release / "ar" / "dev.tsv").write_bytes((release / "sw" / "dev.tsv").read_bytes())
    with pytest.raises(UdistilError, match=r"ar/dev\.tsv:2: locale 'sw', not 'ar'"):
        prepare_common_voice_split(release, "ar", "dev", tmp_path, "cv", "dev")
