"""Kaldi data dir import: with and without segments, piped wav.scp, and line-precise errors."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from udistil.data.kaldi_dir import import_kaldi_dir
from udistil.data.manifests import read_cuts
from udistil.data.prepare_cuts import prepare_cuts
from udistil.errors import UdistilError

from conftest import write_wav


def read_jsonl_gz(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def write_files(data_dir, **files):
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        (data_dir / name).write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
    return data_dir


@pytest.fixture(scope="module")
def audio(tmp_path_factory, speak):
    """Two Swahili wavs: a two-sentence 'session' and a single sentence."""
    root = tmp_path_factory.mktemp("kaldi_audio")
    one = speak("habari za asubuhi", voice="sw")
    two = speak("mvua kubwa inatarajiwa leo", voice="sw")
    session = np.concatenate([one, np.zeros(8000, dtype=np.float32), two])
    return {
        "session": write_wav(root / "session.wav", session), "split_at": len(one) / 16000 + 0.25,
        "single": write_wav(root / "single.wav", two), "single_s": len(two) / 16000,
    }


def test_import_with_segments_pipe_and_utt2spk(tmp_path, audio):
    t = round(audio["split_at"], 2)
    data_dir = write_files(
        tmp_path / "kaldi",
        **{"wav.scp": [f"sess {audio['session']}", f"pipe cat {audio['single']} |"],
           "segments": [f"sess-a sess 0.00 {t:.2f}", f"sess-b sess {t:.2f} -1", "pipe-a pipe 0 -1"],
           "text": ["sess-a habari za asubuhi", "sess-b mvua kubwa inatarajiwa leo"],
           "utt2spk": ["sess-a spk1", "sess-b spk1", "pipe-a spk2"]})

    result = import_kaldi_dir(data_dir, "sw", tmp_path / "manifests", "kal", split="dev")

    assert result.recordings.name == "kal_recordings_dev.jsonl.gz"
    recs = {r["id"]: r for r in read_jsonl_gz(result.recordings)}
    assert recs["pipe"]["sources"][0] == {"type": "command", "channels": [0], "source": f"cat {audio['single']}"}
    assert recs["pipe"]["duration"] == pytest.approx(audio["single_s"])
    sups = {s["id"]: s for s in read_jsonl_gz(result.supervisions)}
    assert set(sups) == {"sess-a", "sess-b", "pipe-a"}
    assert all(s["language"] == "sw" for s in sups.values())
    assert sups["sess-b"]["start"] == pytest.approx(t)
    assert sups["sess-b"]["start"] + sups["sess-b"]["duration"] == pytest.approx(recs["sess"]["duration"])
    assert sups["sess-a"]["text"] == "habari za asubuhi" and sups["pipe-a"].get("text", "") == ""
    assert sups["sess-a"]["speaker"] == "spk1" and sups["pipe-a"]["speaker"] == "spk2"

    # Stage 2 consumes it, piped recording included (decoded through the command).
    report = prepare_cuts(result.recordings, result.supervisions, tmp_path / "cuts.jsonl.gz")
    assert report.num_cuts == 3 and not report.skipped
    assert read_cuts(tmp_path / "cuts.jsonl.gz")["pipe-a"].load_audio().shape[1] == recs["pipe"]["num_samples"]


def test_import_without_segments_uses_whole_recordings(tmp_path, audio):
    data_dir = write_files(tmp_path / "kaldi", **{
        "wav.scp": [f"single {audio['single']}"], "text": ["single mvua kubwa inatarajiwa leo"],
        "reco2dur": [f"single {audio['single_s']:.4f}"]})
    result = import_kaldi_dir(data_dir, "sw", tmp_path / "m", "nos")
    assert result.recordings.name == "nos_recordings.jsonl.gz"
    (sup,) = read_jsonl_gz(result.supervisions)
    assert (sup["id"], sup["recording_id"], sup["start"]) == ("single", "single", 0.0)
    assert sup["duration"] == pytest.approx(audio["single_s"])
    assert sup["language"] == "sw" and "speaker" not in sup


@pytest.mark.parametrize("files, message", [
    ({"wav.scp": ["onlyid"]}, r"wav\.scp:1: malformed line"),
    ({"wav.scp": ["a {single}", "a {single}"]}, r"wav\.scp:2: id a already appears on line 1"),
    ({"wav.scp": ["a {single}", "b /no/such/file.wav"]}, r"wav\.scp:2: audio file /no/such/file\.wav not found"),
    ({"wav.scp": ["a false |"]}, r"wav\.scp:1: command for recording a failed"),
    ({"wav.scp": ["a {single}"], "segments": ["u1 a 0 1", "u2 a 1.5 oops"]}, r"segments:2: end 'oops' is not a number"),
    ({"wav.scp": ["a {single}"], "segments": ["u1 a 2 1"]}, r"segments:1: segment u1 has start 2\.0 and end 1\.0"),
    ({"wav.scp": ["a {single}"], "segments": ["u1 b 0 1"]}, r"segments:1: recording b of segment u1 is not in wav\.scp"),
    ({"wav.scp": ["a {single}"], "text": ["a hello", "zz hello"]}, r"text:2: utterance zz is in text but not in wav\.scp"),
])
def test_bad_data_dir_names_file_and_line(tmp_path, audio, files, message):
    files = {name: [ln.format(single=audio["single"]) for ln in lines] for name, lines in files.items()}
    data_dir = write_files(tmp_path / "kaldi", **files)
    with pytest.raises(UdistilError, match=message):
        import_kaldi_dir(data_dir, "sw", tmp_path / "m", "bad")
    assert not (tmp_path / "m").exists() or not list((tmp_path / "m").iterdir())


def test_missing_audio_can_be_skipped_and_counted(tmp_path, audio):
    data_dir = write_files(tmp_path / "kaldi", **{
        "wav.scp": [f"good {audio['single']}", "gone /no/such/file.wav"],
        "text": ["good mvua kubwa", "gone never heard"]})
    with pytest.raises(UdistilError, match="--skip-bad-audio"):
        import_kaldi_dir(data_dir, "sw", tmp_path / "m", "k")
    result = import_kaldi_dir(data_dir, "sw", tmp_path / "m", "k", skip_bad_audio=True)
    assert result.skipped == {"missing audio": 1}
    assert [s["id"] for s in read_jsonl_gz(result.supervisions)] == ["good"]


def test_unknown_language_and_missing_wav_scp(tmp_path, audio):
    data_dir = write_files(tmp_path / "kaldi", **{"wav.scp": [f"a {audio['single']}"]})
    with pytest.raises(UdistilError, match="language 'swahili'.*did you mean 'sw'"):
        import_kaldi_dir(data_dir, "swahili", tmp_path / "m", "k")
    with pytest.raises(UdistilError, match=r"empty/wav\.scp: not found"):
        import_kaldi_dir(tmp_path / "empty", "sw", tmp_path / "m", "k")


def test_cli(tmp_path, audio):
    from udistil.bin.main import main

    data_dir = write_files(tmp_path / "kaldi", **{"wav.scp": [f"a {audio['single']}"], "text": ["a mvua"]})
    assert main(["import-kaldi-dir", "--data-dir", str(data_dir), "--language", "sw",
                 "--out-dir", str(tmp_path / "m"), "--prefix", "cli"]) == 0
    assert (tmp_path / "m" / "cli_supervisions.jsonl.gz").exists()
    assert main(["import-kaldi-dir", "--data-dir", str(data_dir), "--language", "xx",
                 "--out-dir", str(tmp_path / "m"), "--prefix", "cli"]) == 1
