"""MGB-2 as QCRI distributes it (arabicspeech.org/mgb2; the release's README): train/wav/<id>.wav
with train/xml/utf8/<id>.xml, whose <segment id= starttime= endtime= WMER= who=> elements hold
<element>s of words, so train segments are cut by XML time; dev/ and test/ as Kaldi-style files
(wav.scp with paths relative to the part, segments.non_overlap_speech, text.non_overlap_speech in
Buckwalter).  Quirks users meet: an XML whose wav is not in the copy they have, an XML saved with a
byte-order mark and CRLF line ends, dev text with CRLF ends, and a dev wav listed but absent."""
from __future__ import annotations

import pytest

from recipe_fixtures import cuts_by_id, place, run_recipe, write_audio
from test_recipe_mgb2 import DEV_SEGMENTS, TRAIN_SEGMENTS, segment_xml

RECS = ["AAAA0001-2222-3333-4444-555566667777", "BBBB0002-2222-3333-4444-555566667777"]
GONE = "CCCC0003-2222-3333-4444-555566667777"  # XML present, wav absent


def transcript(rec, times, segments):
    xml_id = rec.replace("-", "_")
    body = "".join(segment_xml(f"{xml_id}_utt_{i}", f"{xml_id}_speaker{i + 1}_align", s, e, wmer, caption)
                   for i, ((_, caption, wmer), (s, e)) in enumerate(zip(segments, times)))
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<transcript><head><recording filename="{rec}"/></head>\n'
            f'<body><segments annotation_id="transcript_align">\n{body}\n</segments></body></transcript>\n')


@pytest.fixture(scope="module")
def release(tmp_path_factory, speak):
    root = tmp_path_factory.mktemp("mgb2_release")
    segs = TRAIN_SEGMENTS[:2]
    signal, times = place([speak(spoken, voice="ar") for spoken, _, _ in segs])
    xml_dir = root / "train" / "xml" / "utf8"
    xml_dir.mkdir(parents=True)
    for i, rec in enumerate(RECS + [GONE]):
        if rec != GONE:
            write_audio(root / "train" / "wav" / f"{rec}.wav", signal)
        text = transcript(rec, times, segs)
        if i == 1:  # re-saved on Windows: BOM and CRLF
            (xml_dir / f"{rec}.xml").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
        else:
            (xml_dir / f"{rec}.xml").write_text(text, encoding="utf-8")
    for part in ("dev", "test"):
        signal_d, times_d = place([speak(spoken, voice="ar") for spoken, _ in DEV_SEGMENTS])
        rec = f"DEV_{part}"
        write_audio(root / part / "wav" / f"{rec}.wav", signal_d)
        (root / part / "wav.scp").write_text(f"{rec} wav/{rec}.wav\r\nLOST_{part} wav/LOST_{part}.wav\r\n")
        (root / part / "segments.non_overlap_speech").write_text(
            "".join(f"{rec}_seg{i} {rec} {s:.2f} {e:.2f}\r\n" for i, (s, e) in enumerate(times_d))
            + f"LOST_{part}_seg0 LOST_{part} 0.00 1.00\r\n")
        (root / part / "text.non_overlap_speech").write_text(
            "".join(f"{rec}_seg{i} {bw}\r\n" for i, (_, bw) in enumerate(DEV_SEGMENTS))
            + f"LOST_{part}_seg0 mrHbA\r\n", encoding="utf-8")
    return root, times


def test_mgb2_release_with_its_quirks(release, tmp_path):
    root, times = release
    proc = run_recipe("mgb2", tmp_path, "--mgb2-dir", str(root))
    log = proc.stdout + proc.stderr
    train = cuts_by_id(tmp_path, "train")
    assert sorted({c.recording_id for c in train.values()}) == RECS  # GONE's segments dropped
    assert len(train) == 4
    for cut in train.values():  # cut by the XML's times
        start, end = (float(x) for x in cut.id.rsplit("_", 1)[1].split(":"))
        assert (round(start, 2), round(end, 2)) in times and cut.duration == pytest.approx(end - start, abs=0.01)
    assert "2 supervisions without recordings dropped" in log
    for set_name, part in (("dev", "dev"), ("test_mgb2", "test")):
        cuts = cuts_by_id(tmp_path, set_name)
        assert sorted(cuts) == [f"DEV_{part}_seg0", f"DEV_{part}_seg1"]  # LOST_* skipped, counted
        assert [cuts[f"DEV_{part}_seg{i}"].supervisions[0].text for i in range(2)] == [a for a, _ in DEV_SEGMENTS]
    assert "LOST_dev.wav not found" in log and "'missing audio': 1" in log


def test_non_utf8_dev_text_names_the_release_file(tmp_path):
    from udistil.errors import UdistilError
    from udistil.recipes.mgb2 import prepare_mgb2_part

    dev = tmp_path / "mgb2" / "dev"
    (dev / "wav").mkdir(parents=True)
    (dev / "wav.scp").write_text("R1 wav/R1.wav\n")
    (dev / "segments.non_overlap_speech").write_text("R1_seg0 R1 0.00 1.00\n")
    (dev / "text.non_overlap_speech").write_bytes(b"R1_seg0 caf\xe9\n")
    with pytest.raises(UdistilError, match=rf"{dev / 'text.non_overlap_speech'}:1: not UTF-8"):
        prepare_mgb2_part(tmp_path / "mgb2", "dev", tmp_path / "m", "mgb2", "dev", work_dir=tmp_path / "w")
