"""`udistil transcribe`: long files, directories, mp3, bad files and SRT, on real whisper-base."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf

from udistil.bin.main import main

SENTENCES = [
    "the weather is nice today and the children are playing in the park",
    "please open the window because it is very hot in this room",
    "my brother bought a new car last week",
    "we will meet at the library after lunch",
]


def _padded(samples):
    # Half a second of silence either side, as in a recording (Whisper dislikes a clipped onset).
    pad = np.zeros(8000, np.float32)
    return np.concatenate([pad, samples, pad])


def _wer(ref: str, hyp: str) -> float:
    from udistil.evaluate.scoring import count_errors, normalise_pairs

    return count_errors(*normalise_pairs([ref], [hyp], ["en"])).rate() / 100


@pytest.fixture(scope="module")
def long_speech(speak):
    """About 40 s: the four sentences twice, with pauses of 0.6-1.4 s; and its reference."""
    rng = np.random.default_rng(0)
    parts, words = [], []
    for _ in range(2):
        for sentence in SENTENCES:
            parts += [speak(sentence), np.zeros(int(rng.uniform(0.6, 1.4) * 16000), np.float32)]
            words.append(sentence)
    audio = np.concatenate(parts)
    assert len(audio) > 32 * 16000
    return audio, " ".join(words)


def test_segments_cut_long_audio_at_pauses(long_speech):
    from udistil.transcribe.segments import SegmentOptions, split_at_pauses

    audio, _ = long_speech
    assert [s.pieces for s in split_at_pauses(audio[:16000 * 20])] == [((0, 16000 * 20),)]  # short: as it is
    loud = np.flatnonzero(np.abs(audio) > 1e-3)
    windows = {}
    for drop_pauses in (True, False):
        for max_seconds in (30.0, 12.0):
            segments = split_at_pauses(audio, SegmentOptions(max_seconds=max_seconds, drop_pauses=drop_pauses))
            windows[drop_pauses, max_seconds] = len(segments)
            assert len(segments) >= (1 if (drop_pauses, max_seconds) == (True, 30.0) else 2)
            assert all(0 < s.num_samples <= max_seconds * 16000 for s in segments)
            assert all(len(s.audio(audio)) == s.num_samples for s in segments)
            pieces = [p for s in segments for p in s.pieces]
            assert all(a[1] < b[0] for a, b in zip(pieces, pieces[1:]))  # in order, apart
            if not drop_pauses:
                assert all(len(s.pieces) == 1 for s in segments)
            # Every cut lies in a pause: the audio around each boundary is silent.
            for _, end in pieces[:-1]:
                assert np.abs(audio[end - 800:end + 800]).max() < 1e-3
            # No speech is lost.
            covered = np.zeros(len(audio), bool)
            for start, end in pieces:
                covered[start:end] = True
            assert covered[loud].all()
            if drop_pauses:
                # What is dropped is the long pauses: within a segment, no silence outlasts 2 x 0.2 s.
                for s in segments:
                    quiet = np.abs(s.audio(audio)) < 1e-3
                    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(int), [0]])))
                    assert (edges[1::2] - edges[::2]).max() <= 0.42 * 16000
    # The 32 s file holds about 27 s of speech: one window once its 0.6-1.4 s pauses are shortened.
    assert windows[True, 30.0] == 1 < windows[False, 30.0]


def test_segments_of_speech_without_pauses_and_of_two_distant_words():
    """70 s of sound with no pause is cut into pieces of at most 30 s that cover all of it; a
    45 s file with sound only at its two ends is one segment of two pieces, timed end to end."""
    from udistil.transcribe.segments import SegmentOptions, split_at_pauses

    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(70 * 16000) * 0.3).astype(np.float32)  # never quiet for 0.3 s
    for drop_pauses in (True, False):
        segments = split_at_pauses(noise, SegmentOptions(drop_pauses=drop_pauses))
        assert len(segments) >= 3 and all(s.num_samples <= 30 * 16000 for s in segments)
        pieces = [p for s in segments for p in s.pieces]
        assert pieces[0][0] == 0 and pieces[-1][1] == len(noise)
        assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))  # nothing dropped

    burst = (rng.standard_normal(3 * 16000) * 0.3).astype(np.float32)
    ends = np.concatenate([burst, np.zeros(39 * 16000, np.float32), burst])
    (segment,) = split_at_pauses(ends)
    assert len(segment.pieces) == 2 and segment.num_samples < 7 * 16000
    assert segment.start == 0 and segment.end == len(ends)
    assert len(split_at_pauses(ends, SegmentOptions(drop_pauses=False))[0].pieces) == 1


@pytest.mark.slow
def test_transcribe_long_file_to_srt(long_speech, whisper_base_ct2_dir, tmp_path, capsys):
    audio, reference = long_speech
    wav = tmp_path / "long.wav"
    sf.write(str(wav), audio, 16000)
    rc = main(["transcribe", "--model", str(whisper_base_ct2_dir), "--format", "srt", "--language", "en",
               "--max-segment", "10", str(wav)])
    out = capsys.readouterr().out
    assert rc == 0
    cues = re.findall(r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)\n(.+)\n", out)
    assert len(cues) >= 3, out
    times = []
    for cue in cues:
        h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, cue[1:9])
        times.append((h1 * 3600 + m1 * 60 + s1 + ms1 / 1000, h2 * 3600 + m2 * 60 + s2 + ms2 / 1000))
    assert [int(c[0]) for c in cues] == list(range(1, len(cues) + 1))
    assert all(0 <= start < end <= len(audio) / 16000 + 1e-3 for start, end in times)
    assert all(a[1] <= b[0] for a, b in zip(times, times[1:]))
    text = " ".join(c[9] for c in cues)
    print(f"long file: {text!r}")
    assert _wer(reference, text) <= 0.2, text


@pytest.mark.slow
def test_transcribe_directory_mp3_and_bad_files(speak, whisper_base_ct2_dir, tmp_path, capsys):
    folder = tmp_path / "audio"
    (folder / "sub").mkdir(parents=True)
    sf.write(str(folder / "a.wav"), _padded(speak(SENTENCES[0])), 16000)
    # An mp3 at 22.05 kHz in a subdirectory: decoded, resampled, found recursively.
    from scipy.signal import resample_poly

    sf.write(str(folder / "sub" / "b.mp3"), resample_poly(_padded(speak(SENTENCES[1])), 441, 320).astype(np.float32), 22050)
    (folder / "notes.txt").write_text("not audio")                 # ignored in a directory
    (folder / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunk")
    (folder / "empty.flac").write_bytes(b"")
    missing = tmp_path / "missing.ogg"
    rc = main(["transcribe", "--model", str(whisper_base_ct2_dir), "--format", "jsonl", str(folder), str(missing)])
    captured = capsys.readouterr()
    assert rc == 1
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["path"] for r in rows] == [str(folder / "a.wav"), str(folder / "sub" / "b.mp3")]
    for row, sentence in zip(rows, SENTENCES):
        assert row["language"] == "en"  # detected
        assert _wer(sentence, row["text"]) <= 0.2, row
        assert row["segments"][0]["start"] == 0.0 and row["segments"][-1]["end"] == pytest.approx(row["duration"])
    skipped = [line for line in captured.err.splitlines() if line.lstrip().startswith("udistil transcribe: SKIPPED")]
    assert len(skipped) == 3, captured.err
    assert any("corrupt.wav: cannot decode audio" in line for line in skipped)
    assert any("empty.flac: empty file" in line for line in skipped)
    assert any("missing.ogg: file not found" in line for line in skipped)
    assert "3 of 5 files failed" in captured.err


@pytest.mark.slow
def test_transcribe_with_the_torch_engine(speak, whisper_base_dir, tmp_path, capsys):
    wav = tmp_path / "a.flac"
    sf.write(str(wav), _padded(speak(SENTENCES[2])), 16000)
    rc = main(["transcribe", "--model", str(whisper_base_dir), "--num-threads", "2", "--no-progress", str(wav)])
    out = capsys.readouterr().out
    assert rc == 0
    path, text = out.rstrip("\n").split("\t")
    assert path == str(wav) and _wer(SENTENCES[2], text) <= 0.2, text


def test_transcribe_refuses_bad_arguments(tmp_path, capsys, whisper_base_ct2_dir):
    assert main(["transcribe", "--model", str(whisper_base_ct2_dir), str(tmp_path)]) == 1
    assert "no audio files (.wav, .flac, .mp3" in capsys.readouterr().err  # the audio kinds it looks for
    assert main(["transcribe", "--model", str(whisper_base_ct2_dir), "--language", "xx", "x.wav"]) == 1
    assert "not supported" in capsys.readouterr().err
    # No GPU here: the torch engine on cuda is refused with the reason, not run on the CPU.
    assert main(["transcribe", "--model", "packaged:whisper-base", "--device", "cuda", "x.wav"]) == 1
    assert "no CUDA device" in capsys.readouterr().err
    assert main(["transcribe", "--model", str(whisper_base_ct2_dir), "--dtype", "float16", "x.wav"]) == 1
    assert "--compute-type" in capsys.readouterr().err
