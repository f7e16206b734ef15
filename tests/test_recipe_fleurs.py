"""FLEURS as Google publishes it (the google/fleurs dataset repository: data/<config>/<split>.tsv,
seven tab-separated columns without a header: id, file name, raw transcription, transcription,
characters, number of samples, gender; audio in data/<config>/audio/<split>.tar.gz, extracted to
audio/<split>/*.wav), with the quirks users meet: a sentence read twice (its id repeats), a tsv
re-saved with a byte-order mark and CRLF ends, a file listed but not extracted, a wav that is
not audio, and a line cut short."""
from __future__ import annotations

import pytest

from recipe_fixtures import write_audio
from udistil.data.source_manifests import read_recordings, read_supervisions
from udistil.errors import UdistilError
from udistil.recipes.common import set_manifest_paths
from udistil.recipes.fleurs import prepare_fleurs_split

ROWS = [  # (sentence id, file stem, raw, normalised, what is on disk)
    ("1001", "9001", "Watoto wanacheza mpira.", "watoto wanacheza mpira", "speech"),
    ("1001", "9002", "Watoto wanacheza mpira.", "watoto wanacheza mpira", "speech"),  # second reading
    ("1002", "9003", "Habari za asubuhi!", "habari za asubuhi", "missing"),
    ("1003", "9004", "Asante sana.", "asante sana", "junk"),
]


def make_repo(root, speak, rows=ROWS, split="test"):
    cfg = root / "data" / "sw_ke"
    lines = []
    for sentence_id, stem, raw, norm, kind in rows:
        wav = cfg / "audio" / split / f"{stem}.wav"
        if kind == "speech":
            audio = write_audio(wav, speak(raw, voice="sw"))
        elif kind == "junk":
            wav.parent.mkdir(parents=True, exist_ok=True)
            wav.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(40))
        n = len(__import__("soundfile").read(str(audio))[0]) if kind == "speech" else 16000
        chars = " ".join("|".join(norm.split())) + " |"
        lines.append("\t".join([sentence_id, f"{stem}.wav", raw, norm, chars, str(n), "FEMALE"]))
    (cfg / f"{split}.tsv").write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n").encode("utf-8"))
    return root


def test_fleurs_as_published(tmp_path, speak, caplog):
    root = make_repo(tmp_path / "fleurs", speak)
    skipped = prepare_fleurs_split(root, "sw_ke", "test", tmp_path / "m", "sw", "test_fleurs_sw", "sw")
    assert skipped == {"missing audio": 1, "unreadable audio": 1}
    rec_path, sup_path = set_manifest_paths(tmp_path / "m", "sw", "test_fleurs_sw")
    sups = {s.id: s for s in read_supervisions(sup_path)}
    assert sorted(sups) == ["1001_1_9001", "1001_2_9002"]  # lhotse's ids, the reading counted
    assert all(s.text == "watoto wanacheza mpira" and s.custom["raw_text"] == "Watoto wanacheza mpira."
               and s.language == "sw" and s.gender == "FEMALE" for s in sups.values())
    assert sorted(r.id for r in read_recordings(rec_path)) == ["9001", "9002"]
    assert "9003.wav not found" in caplog.text and "9004.wav cannot be read" in caplog.text
    assert "skipped 1 files not found and 1 unreadable" in caplog.text


def test_a_short_fleurs_line_names_the_tsv_and_line(tmp_path, speak):
    root = make_repo(tmp_path / "fleurs", speak, rows=ROWS[:1])
    tsv = root / "data" / "sw_ke" / "test.tsv"
    tsv.write_bytes(tsv.read_bytes() + b"1005\t9005.wav\tcut short\r\n")
    with pytest.raises(UdistilError, match=rf"{tsv}:2: 3 tab-separated columns"):
        prepare_fleurs_split(root, "sw_ke", "test", tmp_path / "m", "sw", "t", "sw")
