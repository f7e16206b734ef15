"""egs/mgb2 stages 1-2 on a tiny MGB-2 release: train XML (UTF-8, WMER) + wav, dev/test
Kaldi files with Buckwalter text, all in the release's layout."""
from __future__ import annotations

import pytest

from recipe_fixtures import cuts_by_id, place, run_recipe, write_audio

TRAIN_REC = "AAAA1111-2222-3333-4444-555566667777"  # wav name; XML ids use "_" for "-"
TRAIN_XML_ID = TRAIN_REC.replace("-", "_")
# (spoken text, caption in the XML, WMER)
TRAIN_SEGMENTS = [
    ("مرحبا بكم في نشرة الأخبار", "مرحبا بكم في نشرة الأخبار", "0.0"),
    ("السلام عليكم يا أصدقاء", "السَّلامُ عَلَيْكُمْ، يا أصدقاء!", "20.0"),
    ("الطقس جميل اليوم", "الطقس جميل اليوم", "95.0"),  # above the MER threshold: dropped
]
DEV_REC = "DEVREC01"
# Buckwalter references as in text.non_overlap_speech: "mrHbA bkm" = "مرحبا بكم".
DEV_SEGMENTS = [("مرحبا بكم", "mrHbA bkm"), ("شكرا جزيلا", "$krA jzylA")]


def segment_xml(seg_id, who, start, end, wmer, words):
    elements = "".join(f'<element id="{seg_id}_w{i}" starttime="{start}" endtime="{end}" score="1.0">{w}</element>'
                       for i, w in enumerate(words.split()))
    return (f'<segment id="{seg_id}" who="{who}" starttime="{start:.2f}" endtime="{end:.2f}" '
            f'AWD="0.3" PMER="{wmer}" WER="{wmer}" WMER="{wmer}">{elements}</segment>')


@pytest.fixture(scope="module")
def mgb2_release(tmp_path_factory, speak):
    root = tmp_path_factory.mktemp("mgb2")
    signal, times = place([speak(spoken, voice="ar") for spoken, _, _ in TRAIN_SEGMENTS])
    write_audio(root / "train" / "wav" / f"{TRAIN_REC}.wav", signal)
    segments = "".join(
        segment_xml(f"{TRAIN_XML_ID}_utt_{i}", f"{TRAIN_XML_ID}_speaker{i + 1}_align", start, end, wmer, caption)
        for i, ((_, caption, wmer), (start, end)) in enumerate(zip(TRAIN_SEGMENTS, times)))
    xml = (f'<?xml version="1.0" encoding="utf-8"?>\n<transcript><head><recording filename="{TRAIN_REC}"/></head>'
           f'<body><segments annotation_id="transcript_align">{segments}</segments></body></transcript>\n')
    (root / "train" / "xml" / "utf8").mkdir(parents=True)
    (root / "train" / "xml" / "utf8" / f"{TRAIN_REC}.xml").write_text(xml, encoding="utf-8")
    for part in ("dev", "test"):
        signal, times = place([speak(spoken, voice="ar") for spoken, _ in DEV_SEGMENTS])
        rec = f"{DEV_REC}_{part}"
        write_audio(root / part / "wav" / f"{rec}.wav", signal)
        (root / part / "wav.scp").write_text(f"{rec} wav/{rec}.wav\n")
        (root / part / "segments.non_overlap_speech").write_text(
            "".join(f"{rec}_seg{i} {rec} {s:.2f} {e:.2f}\n" for i, (s, e) in enumerate(times)))
        (root / part / "text.non_overlap_speech").write_text(
            "".join(f"{rec}_seg{i} {bw}\n" for i, (_, bw) in enumerate(DEV_SEGMENTS)), encoding="utf-8")
    return root, times


def test_mgb2_stages_1_2(mgb2_release, tmp_path):
    root, _ = mgb2_release
    run_recipe("mgb2", tmp_path, "--mgb2-dir", str(root))

    train = cuts_by_id(tmp_path, "train")
    xml = (root / "train" / "xml" / "utf8" / f"{TRAIN_REC}.xml").read_text(encoding="utf-8")
    # lhotse's ids: "<segment id>_<starttime>:<endtime>"; the WMER 95 segment is gone.
    assert len(train) == 2
    for cut_id, cut in train.items():
        assert cut_id.startswith(f"{TRAIN_XML_ID}_utt_")
        start, end = (float(x) for x in cut_id.rsplit("_", 1)[1].split(":"))
        assert f'starttime="{start:.2f}"' in xml
        assert cut.duration == pytest.approx(end - start, abs=0.01)
        assert cut.recording_id == TRAIN_REC
        assert cut.sampling_rate == 16000
        assert cut.supervisions[0].language == "ar"
    texts = sorted(c.supervisions[0].text for c in train.values())
    # Text cleaning: diacritics and punctuation gone.
    assert texts == sorted(["مرحبا بكم في نشرة الأخبار", "السلام عليكم يا أصدقاء"])

    for set_name, part in (("dev", "dev"), ("test_mgb2", "test")):
        cuts = cuts_by_id(tmp_path, set_name)
        rec = f"{DEV_REC}_{part}"
        assert sorted(cuts) == [f"{rec}_seg0", f"{rec}_seg1"]
        # Buckwalter references become Arabic script.
        assert [cuts[f"{rec}_seg{i}"].supervisions[0].text for i in range(2)] == [a for a, _ in DEV_SEGMENTS]
        assert all(c.supervisions[0].language == "ar" for c in cuts.values())


def test_mgb2_missing_release_names_the_file(tmp_path):
    (tmp_path / "mgb2" / "train" / "wav").mkdir(parents=True)
    proc = run_recipe("mgb2", tmp_path, "--mgb2-dir", str(tmp_path / "mgb2"), check=False)
    assert proc.returncode != 0
    assert "train/xml/utf8" in proc.stderr and "Expected layout" in proc.stderr
