"""Stage 2 on bad input: each case is skipped-and-counted or stops, as prepare_cuts documents."""
from __future__ import annotations

import gzip
import logging

import numpy as np
import pytest
from lhotse import Recording, SupervisionSegment
from lhotse.audio import AudioSource

from udistil.data.languages import WHISPER_LANGUAGES, check_language
from udistil.data.manifests import read_cuts
from udistil.data.prepare_cuts import prepare_cuts
from udistil.data.source_manifests import write_manifest_deterministic
from udistil.errors import ManifestError, UdistilError

from conftest import write_wav


def fake_recording(rec_id, path, seconds=2.0):
    """A manifest entry for a file Recording.from_file could not read (corrupt, empty)."""
    return Recording(id=rec_id, sampling_rate=16000, num_samples=int(seconds * 16000), duration=seconds,
                     sources=[AudioSource(type="file", channels=[0], source=str(path))])


def supervision_for(rec, language="en"):
    return SupervisionSegment(id=f"{rec.id}-utt", recording_id=rec.id, start=0.0, duration=rec.duration,
                              channel=0, text="some words", language=language)


@pytest.fixture
def bad_corpus(tmp_path, speak):
    good = Recording.from_file(write_wav(tmp_path / "good.wav", speak("a good recording", voice="en")))
    silent = Recording.from_file(write_wav(tmp_path / "silent.wav", np.zeros(32000)))
    gone_path = write_wav(tmp_path / "gone.wav", speak("soon deleted", voice="en"))
    gone = Recording.from_file(gone_path)
    gone_path.unlink()
    corrupt_path = tmp_path / "corrupt.wav"
    corrupt_path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x07" * 40)
    empty_path = tmp_path / "empty.wav"
    empty_path.write_bytes(b"")
    recs = [good, silent, gone, fake_recording("corrupt", corrupt_path), fake_recording("empty", empty_path)]
    rec_path = write_manifest_deterministic(recs, tmp_path / "recs.jsonl.gz")
    sup_path = write_manifest_deterministic([supervision_for(r) for r in recs], tmp_path / "sups.jsonl.gz")
    return tmp_path, rec_path, sup_path


def test_bad_recordings_are_skipped_counted_and_named(bad_corpus, caplog):
    tmp_path, rec_path, sup_path = bad_corpus
    out = tmp_path / "cuts.jsonl.gz"
    with caplog.at_level(logging.WARNING, logger="udistil.data.prepare_cuts"):
        report = prepare_cuts(rec_path, sup_path, out)

    assert [c.id for c in read_cuts(out)] == ["good-utt"]
    assert report.num_cuts == 1
    assert report.skipped == {"missing": 1, "corrupt": 1, "empty": 1, "bad audio": 1,
                               "supervision of a skipped recording": 3}
    log = caplog.text
    for name in ("gone.wav", "corrupt.wav", "empty.wav", "silent.wav"):
        assert name in log, name
    assert "silent" in log and "not found" in log and "0 bytes" in log
    assert "skipped 1 (missing)" in report.summary()


def test_header_mode_does_not_decode_so_silence_passes(bad_corpus):
    tmp_path, rec_path, sup_path = bad_corpus
    report = prepare_cuts(rec_path, sup_path, tmp_path / "cuts.jsonl.gz", check_audio="header")
    assert report.num_cuts == 2 and "bad audio" not in report.skipped


def test_nothing_usable_stops(tmp_path):
    silent = Recording.from_file(write_wav(tmp_path / "silent.wav", np.zeros(16000)))
    rec_path = write_manifest_deterministic([silent], tmp_path / "r.jsonl.gz")
    sup_path = write_manifest_deterministic([supervision_for(silent)], tmp_path / "s.jsonl.gz")
    with pytest.raises(UdistilError, match="no usable cuts"):
        prepare_cuts(rec_path, sup_path, tmp_path / "cuts.jsonl.gz")
    assert not (tmp_path / "cuts.jsonl.gz").exists()


def test_unknown_language_stops_naming_manifest_and_supervision(tmp_path, speak):
    rec = Recording.from_file(write_wav(tmp_path / "a.wav", speak("hello", voice="en")))
    rec_path = write_manifest_deterministic([rec], tmp_path / "r.jsonl.gz")
    sup_path = write_manifest_deterministic([supervision_for(rec, language="arabic")], tmp_path / "s.jsonl.gz")
    with pytest.raises(UdistilError, match=r"s\.jsonl\.gz \(supervision a-utt\).*'arabic'.*did you mean 'ar'"):
        prepare_cuts(rec_path, sup_path, tmp_path / "cuts.jsonl.gz")


@pytest.mark.parametrize("damage", ["truncated", "not json", "empty", "missing"])
def test_broken_manifest_stops_naming_the_file(tmp_path, speak, damage):
    rec = Recording.from_file(write_wav(tmp_path / "a.wav", speak("hello", voice="en")))
    recs = [Recording(id=f"{rec.id}{i}", sources=rec.sources, sampling_rate=rec.sampling_rate,
                      num_samples=rec.num_samples, duration=rec.duration) for i in range(50)]
    rec_path = write_manifest_deterministic(recs, tmp_path / "recs.jsonl.gz")
    sup_path = write_manifest_deterministic([supervision_for(r) for r in recs], tmp_path / "sups.jsonl.gz")
    data = rec_path.read_bytes()
    if damage == "truncated":
        rec_path.write_bytes(data[: len(data) // 2])
    elif damage == "not json":
        rec_path.write_bytes(gzip.compress(b'{"id": "x", "sources": [\n'))
    elif damage == "empty":
        rec_path.write_bytes(b"")
    else:
        rec_path.unlink()
    with pytest.raises(ManifestError, match="recs.jsonl.gz"):
        prepare_cuts(rec_path, sup_path, tmp_path / "cuts.jsonl.gz")


def test_language_list_is_whispers_99():
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    # transformers also lists "yue", which only large-v3 has.
    assert set(WHISPER_LANGUAGES) == set(LANGUAGES) - {"yue"}
    assert len(WHISPER_LANGUAGES) == 99
    assert check_language("sw", "x") == "sw"
    with pytest.raises(UdistilError, match=r"text:3: language 'en-US'.*did you mean 'en'"):
        check_language("en-US", "text:3")
    with pytest.raises(UdistilError, match="here"):
        check_language(None, "here")
