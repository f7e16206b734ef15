"""Stage 3 end to end on real files: contract fields, bad input, kill and resume, CLI."""
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from lhotse import Recording, SupervisionSegment

import udistil.teacher.pseudo_label as pl
from udistil.data.manifests import read_cuts, write_cuts
from udistil.models.spec import load_whisper
from udistil.teacher.transcriber import DecodeOptions, Transcriber

CONTRACT_KEYS = ("teacher_text", "teacher_tokens", "teacher_logprobs", "teacher_entropy")


def make_cut(path, cut_id, language="en", text=""):
    rec = Recording.from_file(str(path), recording_id=cut_id)
    sup = SupervisionSegment(id=cut_id, recording_id=cut_id, start=0.0, duration=rec.duration,
                             channel=rec.channel_ids[0] if len(rec.channel_ids) == 1 else rec.channel_ids,
                             language=language, text=text)
    cut = rec.to_cut()
    cut.supervisions = [sup]
    return cut


@pytest.fixture(scope="module")
def tiny_transcriber(tiny_whisper_dir):
    model, processor = load_whisper(str(tiny_whisper_dir))
    return Transcriber(model, processor, DecodeOptions(budget_base=4, budget_per_second=2, batch_size=4))


@pytest.fixture(scope="module")
def speech_cuts(tmp_path_factory, speak):
    d = tmp_path_factory.mktemp("speech")
    texts = [("good morning everyone", "en"), ("habari za asubuhi", "sw"), ("صباح الخير", "ar"),
             ("the train leaves at noon", "en"), ("karibu nyumbani", "sw"), ("the sun is hot", "en")]
    cuts = []
    for i, (text, lang) in enumerate(texts):
        path = d / f"utt{i}.wav"
        speak(text, voice=lang, path=path)
        cuts.append(make_cut(path, f"utt{i}", lang, text))
    path = d / "cuts.jsonl.gz"
    write_cuts(cuts, path)
    return path


def test_labels_follow_the_data_contract(tiny_transcriber, speech_cuts, tmp_path):
    out = tmp_path / "labelled.jsonl.gz"
    summary = pl.pseudo_label(speech_cuts, out, tiny_transcriber)
    cuts = read_cuts(out)
    assert list(cuts.ids) == list(read_cuts(speech_cuts).ids)  # input order kept
    for cut in cuts:
        custom = cut.supervisions[0].custom
        assert all(k in custom for k in CONTRACT_KEYS)
        n = len(custom["teacher_tokens"])
        assert len(custom["teacher_logprobs"]) == len(custom["teacher_entropy"]) == n
        assert custom["teacher_language"] == cut.supervisions[0].language
        assert custom["teacher_stop"] in ("eot", "budget", "loop")
        assert cut.supervisions[0].text  # ground truth untouched
    assert summary["labelled"] == len(cuts)
    assert not (out.parent / (out.name + ".partial.jsonl")).exists()


def test_bad_inputs_are_skipped_counted_and_named(tiny_transcriber, speech_cuts, tmp_path, caplog, speak):
    good = list(read_cuts(speech_cuts))[:2]
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000 * 2, dtype=np.float32), 16000)
    missing = tmp_path / "missing.wav"
    sf.write(missing, 0.1 * np.ones(16000, dtype=np.float32), 16000)
    low_rate = tmp_path / "narrowband.wav"
    sf.write(low_rate, speak("hello there", voice="en")[::2], 8000)
    stereo = tmp_path / "stereo.wav"
    mono = speak("good night", voice="en")
    sf.write(stereo, np.stack([mono, mono], axis=1), 16000)
    unknown = tmp_path / "klingon.wav"
    sf.write(unknown, mono, 16000)
    corrupt_cut = make_cut(silent, "corrupt")  # make it from a readable file, then point it at garbage
    corrupt_cut.recording.sources[0].source = str(corrupt)
    cuts = good + [corrupt_cut, make_cut(silent, "silent"), make_cut(missing, "missing"),
                   make_cut(low_rate, "narrowband"), make_cut(stereo, "stereo"),
                   make_cut(unknown, "klingon", language="tlh")]
    missing.unlink()
    in_path = tmp_path / "in.jsonl.gz"
    write_cuts(cuts, in_path)
    out = tmp_path / "out.jsonl.gz"
    with caplog.at_level("WARNING"):
        summary = pl.pseudo_label(in_path, out, tiny_transcriber)
    labelled = set(read_cuts(out).ids)
    assert labelled == {good[0].id, good[1].id, "narrowband", "stereo"}
    assert sum(summary["skipped"].values()) == 4
    assert set(summary["skipped_ids"]) == {"corrupt", "silent", "missing", "klingon"}
    log = caplog.text
    for name in ("corrupt.wav", "silent.wav", "missing.wav", "klingon.wav"):
        assert name in log


def test_a_killed_run_resumes_without_redoing_finished_cuts(tiny_transcriber, speech_cuts, tmp_path, monkeypatch):
    reference = tmp_path / "uninterrupted.jsonl.gz"
    pl.pseudo_label(speech_cuts, reference, tiny_transcriber)

    monkeypatch.setattr(pl, "CHUNK_CUTS", 2)
    calls = []
    real_transcribe = tiny_transcriber.transcribe

    def dies_on_second_chunk(audios, langs):
        calls.append(len(audios))
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real_transcribe(audios, langs)

    out = tmp_path / "resumed.jsonl.gz"
    monkeypatch.setattr(tiny_transcriber, "transcribe", dies_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        pl.pseudo_label(speech_cuts, out, tiny_transcriber)
    partial = out.parent / (out.name + ".partial.jsonl")
    assert not out.exists() and len(partial.read_text().splitlines()) == 2
    # A kill in the middle of a write leaves half a line: it must be dropped, not crash.
    with open(partial, "a") as fh:
        fh.write('{"id": "half a li')

    calls.clear()
    monkeypatch.setattr(tiny_transcriber, "transcribe", lambda a, l: (calls.append(len(a)), real_transcribe(a, l))[1])
    pl.pseudo_label(speech_cuts, out, tiny_transcriber)
    assert sum(calls) == 4  # only the 4 cuts that were not finished
    got = {c.id: c.supervisions[0].custom["teacher_tokens"] for c in read_cuts(out)}
    want = {c.id: c.supervisions[0].custom["teacher_tokens"] for c in read_cuts(reference)}
    assert got == want


def test_cli_skips_finished_output_and_reports_missing_manifest(tiny_whisper_dir, speech_cuts, tmp_path):
    out = tmp_path / "cli.jsonl.gz"
    cmd = [sys.executable, "-m", "udistil.bin.main", "pseudo-label", "--model", str(tiny_whisper_dir),
           "--in", str(speech_cuts), "--out", str(out), "--budget-per-second", "2"]
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert len(read_cuts(out)) == 6
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0 and "skipping" in again.stdout
    bad = subprocess.run(cmd[:-2] + ["--in", str(tmp_path / "nope.jsonl.gz"), "--out", str(tmp_path / "o.jsonl.gz")],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert "nope.jsonl.gz" in bad.stderr and "Traceback" not in bad.stderr
