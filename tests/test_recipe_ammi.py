"""egs/ammi stages 1-2 on tiny clones of the three AMMI repositories, in their real layout:
data/records/{train,val,test}/<ID>.wav and data/raw_text_file.txt ("<ID>:<text>" lines),
two Arabic clones combined, Swahili on its own."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from recipe_fixtures import cuts_by_id, run_recipe, write_audio

# (clip id, text as in raw_text_file.txt) per split; ids follow LIG-Aikuma's naming.
AHMED = {"train": [("200623-144601_ara_e09_elicit_0", "تعتبر المدينة رابع أكبر مدينة"),
                   ("200623-144601_ara_e09_elicit_1", "حيث السكان  بعد بعقوبة "),
                   ("200623-144601_ara_e09_elicit_2", "في عام حدثت مجزرة")],
         "val": [("200623-144601_ara_e09_elicit_3", "وأسفر عن مقتل أكثر")],
         "test": [("200623-144601_ara_e09_elicit_4", "الطقس جميلٌ اليوم"),
                  ("200623-144601_ara_e09_elicit_5", "شكرا جزيلا"),
                  ("200623-144601_ara_e09_elicit_6", "أين تقع المدرسة")]}
ABUBAKR = {"train": [("200630-193627_ara_a8b_elicit_786", "أكثر من كائنات الأطلسي"),
                     # The same line as a test clip of this clone (diacritics aside): left out of train.
                     ("200630-193627_ara_a8b_elicit_787", "الحملات الصليبية بدأت")],
           "val": [("200630-193627_ara_a8b_elicit_788", "وقد سبب بناء السد العالي")],
           "test": [("200630-193627_ara_a8b_elicit_789", "الحملاتُ الصليبية بدأت"),
                    ("200630-193627_ara_a8b_elicit_790", "في البحر الأبيض المتوسط")]}
CATE = {"train": [("200702-201811_swh_35d_elicit_0", "Marekani na China ni kati ya nchi."),
                  ("200702-201811_swh_35d_elicit_1", "Tutakata rufaa.")],
        "val": [("200702-201811_swh_35d_elicit_2", "Polisi walinikamata.")],
        "test": [("200702-201811_swh_35d_elicit_3", "3 haki ya kupiga kura."),
                 ("200702-201811_swh_35d_elicit_4", "Habari ya asubuhi."),
                 ("200702-201811_swh_35d_elicit_5", "Asante sana.")]}
# Swahili clips over 30 s (a line, then silence): stage 2 drops the train one; the test
# subset is drawn from the clips stage 2 keeps, so it never holds one.
SW_LONG = {"train": ("200703-095932_swh_35d_elicit_67", "Maafisa wa afya Uingereza wamesema."),
           "test": ("200703-095932_swh_35d_elicit_68", "Chuo Kikuu cha Oxford.")}
AHMED_NO_TEXT = "200623-144601_ara_e09_elicit_99"   # a wav with no line in raw_text_file.txt
AHMED_NO_WAV = ("200623-144601_ara_e09_elicit_98", "سطر بلا تسجيل")  # a line with no wav


def make_clone(root: Path, splits: dict, speak, voice: str, rate: int = 16000) -> Path:
    lines = []
    for split, rows in splits.items():
        for clip_id, text in rows:
            audio = speak(text, voice=voice)
            if rate != 16000:
                from udistil.tts.espeak import resample
                audio = resample(audio, 16000, rate)
            write_audio(root / "data" / "records" / split / f"{clip_id}.wav", audio, rate, subtype="PCM_16")
            lines.append(f"{clip_id}:{text}")
    # As in the real files: no trailing newline.
    (root / "data" / "raw_text_file.txt").write_text("\n".join(lines), encoding="utf-8")
    (root / "LICENSE").write_text("MIT License\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def clones(tmp_path_factory, speak):
    root = tmp_path_factory.mktemp("ammi")
    ahmed = make_clone(root / "Arabic-Speech-Recognition-Dataset", AHMED, speak, "ar")
    write_audio(ahmed / "data" / "records" / "train" / f"{AHMED_NO_TEXT}.wav", speak("مرحبا", voice="ar"))
    with open(ahmed / "data" / "raw_text_file.txt", "a", encoding="utf-8") as fh:
        fh.write("\n" + ":".join(AHMED_NO_WAV))
    # The second Arabic clone at 44.1 kHz, so stage 2's resampling is on the path.
    abubakr = make_clone(root / "abubakr", ABUBAKR, speak, "ar", rate=44100)
    cate = make_clone(root / "Swahili-Speech", CATE, speak, "sw")
    for split, (clip_id, text) in SW_LONG.items():
        write_audio(cate / "data" / "records" / split / f"{clip_id}.wav",
                    np.concatenate([speak(text, voice="sw"), np.zeros(31 * 16000, dtype=np.float32)]))
        with open(cate / "data" / "raw_text_file.txt", "a", encoding="utf-8") as fh:
            fh.write(f"\n{clip_id}:{text}")
    return ahmed, abubakr, cate


def test_ammi_arabic_stages_1_2(clones, tmp_path):
    ahmed, abubakr, _ = clones
    run_recipe("ammi", tmp_path, "--lang", "ar", "--ar-dirs", f"{ahmed} {abubakr}", "--test-size", "3",
               "--train-size", "0")
    texts = {clip: text for split in (AHMED, ABUBAKR) for rows in split.values() for clip, text in rows}

    train = cuts_by_id(tmp_path, "train")
    # Both clones combined; the clip without a transcript line and the clip reading a test
    # line are left out.
    assert sorted(train) == sorted([c for c, _ in AHMED["train"]] + [ABUBAKR["train"][0][0]])
    assert sorted(cuts_by_id(tmp_path, "dev")) == sorted([AHMED["val"][0][0], ABUBAKR["val"][0][0]])
    test = cuts_by_id(tmp_path, "test_ar")
    all_test = sorted(c for split in (AHMED, ABUBAKR) for c, _ in split["test"])
    from udistil.recipes.ammi import choose_subset
    assert len(test) == 3 and sorted(test) == choose_subset(all_test, 3)

    for set_name in ("train", "dev", "test_ar"):
        for cut in cuts_by_id(tmp_path, set_name).values():
            sup = cut.supervisions[0]
            assert sup.language == "ar" and cut.sampling_rate == 16000
            # The raw transcript, its spaces collapsed.
            assert sup.text == " ".join(texts[cut.id].split())
            assert sup.speaker in (ahmed.name, abubakr.name)
            assert cut.load_audio().shape[-1] == cut.num_samples
    resampled = train[ABUBAKR["train"][0][0]]
    wav = abubakr / "data" / "records" / "train" / f"{ABUBAKR['train'][0][0]}.wav"
    assert sf.info(str(wav)).samplerate == 44100
    assert resampled.duration == pytest.approx(sf.info(str(wav)).duration, abs=1e-3)

    # The same directory cannot take the other language: stages 1-2 would skip and mix them.
    proc = run_recipe("ammi", tmp_path, "--lang", "sw", "--sw-dir", str(clones[2]), check=False)
    assert proc.returncode != 0 and "another language" in proc.stderr


def test_ammi_swahili_stages_1_2(clones, tmp_path):
    _, _, cate = clones
    run_recipe("ammi", tmp_path, "--lang", "sw", "--sw-dir", str(cate), "--test-size", "2")
    from lhotse import load_manifest
    manifests = tmp_path / "data" / "manifests"
    ids = lambda name: sorted(s.id for s in load_manifest(manifests / f"ammi_sw_supervisions_{name}.jsonl.gz"))
    # Stage 1 keeps the long train clip (with its text); stage 2 drops it.
    assert SW_LONG["train"][0] in ids("train")
    assert sorted(cuts_by_id(tmp_path, "train")) == sorted(c for c, _ in CATE["train"])
    assert sorted(cuts_by_id(tmp_path, "dev")) == [CATE["val"][0][0]]
    # A subset of 2 of the 3 test clips under 30 s, never the long one.
    from udistil.recipes.ammi import choose_subset
    subset = choose_subset([c for c, _ in CATE["test"]], 2)
    assert ids("test_sw") == subset
    test = cuts_by_id(tmp_path, "test_sw")
    assert sorted(test) == subset
    texts = dict(CATE["test"])
    assert all(c.supervisions[0].text == texts[c.id] for c in test.values())
    assert all(c.supervisions[0].language == "sw" for c in test.values())


def test_ammi_needs_the_clones(tmp_path):
    proc = run_recipe("ammi", tmp_path, "--lang", "sw", check=False)
    assert proc.returncode != 0 and "--sw-dir" in proc.stderr
