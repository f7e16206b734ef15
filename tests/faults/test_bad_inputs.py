"""A corpus of bad inputs, each met with a one-line message naming the file (and the cut
id), a documented skip or stop, and nothing already written lost.

Kinds (KINDS below counts them): audio that is corrupt, truncated, empty, silent,
NaN-filled, 8 kHz, 48 kHz stereo, over 30 s, missing, unreadable; manifests with a broken
gzip, a garbage line, duplicate cut ids, non-UTF-8 text; unknown and missing language
codes; labels beginning with '-' or holding shell metacharacters; an unreadable and a
truncated checkpoint; a full disk; a teacher directory with a wrong config.
"""
from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import Recording, SupervisionSegment

import udistil.teacher.pseudo_label as pl
from udistil.data.manifests import custom, iter_cuts, read_cuts, write_cuts
from udistil.errors import ManifestError, UdistilError
from udistil.filters import create_filter
from udistil.filters.runner import score_cuts
from udistil.teacher.transcriber import DecodeOptions, Transcriber

KINDS = ["corrupt", "truncated", "empty", "silent", "nan", "8khz", "48khz_stereo", "over_30s", "missing",
         "unreadable", "broken_gzip", "garbage_line", "duplicate_ids", "non_utf8", "unknown_language",
         "missing_language", "label_dash", "label_shell", "checkpoint_unreadable", "checkpoint_truncated",
         "full_disk", "teacher_wrong_config"]
# Audio kinds stage 3 skips (the reason it records), and kinds it labels after fixing them.
SKIPPED = {"corrupt": "cannot decode audio", "truncated": "cannot decode audio", "empty": "audio file is empty",
           "silent": "silent", "nan": "NaN", "over_30s": "longer than Whisper", "missing": "not found",
           "unknown_language": "not supported by the teacher"}
LABELLED = {"8khz": "resampled to 16 kHz", "48khz_stereo": "down-mixed and resampled",
            "missing_language": "language detected by the teacher"}


def tone_speech(speak, text="the river is near the bridge"):
    return np.concatenate([np.zeros(4000, np.float32), speak(text, "en")])


def make_cut(path: Path, cut_id: str, language="en", duration=None, rate=16000, channels=1) -> object:
    """A cut for `path` whose metadata is given (the file may be broken or absent)."""
    from lhotse.audio import AudioSource

    duration = duration or 2.0
    rec = Recording(id=cut_id, sources=[AudioSource(type="file", channels=list(range(channels)), source=str(path))],
                    sampling_rate=rate, num_samples=int(duration * rate), duration=duration)
    cut = rec.to_cut()
    cut.id = cut_id
    cut.supervisions = [SupervisionSegment(cut_id, cut_id, 0, duration, text="", language=language)]
    return cut


@pytest.fixture(scope="module")
def bad_audio_corpus(tmp_path_factory, speak):
    d = tmp_path_factory.mktemp("bad_audio")
    good = tone_speech(speak)
    cuts = {}

    def wav(name, samples, rate=16000, subtype=None):
        path = d / f"{name}.wav"
        sf.write(str(path), samples, rate, subtype=subtype)
        return path

    cuts["good"] = make_cut(wav("good", good), "good")
    path = d / "corrupt.wav"
    path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" + os.urandom(2000))
    cuts["corrupt"] = make_cut(path, "corrupt")
    full = wav("truncated", good)
    full.write_bytes(full.read_bytes()[:60])  # header promises far more than is there
    cuts["truncated"] = make_cut(full, "truncated", duration=len(good) / 16000)
    (d / "empty.wav").write_bytes(b"")
    cuts["empty"] = make_cut(d / "empty.wav", "empty")
    cuts["silent"] = make_cut(wav("silent", np.zeros(32000, np.float32)), "silent")
    nan = good.copy()
    nan[1000:2000] = np.nan
    cuts["nan"] = make_cut(wav("nan", nan, subtype="FLOAT"), "nan", duration=len(nan) / 16000)
    from udistil.tts.espeak import resample

    s8 = resample(good, 16000, 8000)
    cuts["8khz"] = make_cut(wav("8khz", s8, 8000), "8khz", duration=len(s8) / 8000, rate=8000)
    s48 = resample(good, 16000, 48000)
    stereo = np.stack([s48, 0.5 * s48], axis=1)
    cuts["48khz_stereo"] = make_cut(wav("48k", stereo, 48000), "48khz_stereo", duration=len(s48) / 48000,
                                    rate=48000, channels=2)
    long = np.tile(good, int(31 * 16000 / len(good)) + 1)
    cuts["over_30s"] = make_cut(wav("long", long), "over_30s", duration=len(long) / 16000)
    cuts["missing"] = make_cut(d / "does_not_exist.wav", "missing")
    cuts["unknown_language"] = make_cut(wav("xx", good), "unknown_language", language="xx")
    cuts["missing_language"] = make_cut(wav("nolang", good), "missing_language", language=None)
    write_cuts(cuts.values(), d / "cuts.jsonl.gz")
    return d / "cuts.jsonl.gz"


@pytest.fixture(scope="module")
def transcriber(tiny_whisper_dir):
    from udistil.models.spec import load_whisper

    model, processor = load_whisper(str(tiny_whisper_dir))
    return Transcriber(model, processor, DecodeOptions(budget_base=4, budget_per_second=2), name=str(tiny_whisper_dir))


def test_bad_audio_is_skipped_named_and_counted_the_rest_labelled(bad_audio_corpus, transcriber, tmp_path, caplog):
    out = tmp_path / "labels.jsonl.gz"
    with caplog.at_level(logging.WARNING):
        summary = pl.pseudo_label(bad_audio_corpus, out, transcriber)
    labelled = {c.id for c in read_cuts(out)}
    assert labelled == {"good", *LABELLED}, summary["skipped_ids"]
    for kind, why in SKIPPED.items():
        assert why in summary["skipped_ids"][kind], (kind, summary["skipped_ids"][kind])
        line = next(r.getMessage() for r in caplog.records if f"(cut {kind})" in r.getMessage())
        assert "\n" not in line and ".wav" in line, line  # one line, naming the file and the cut
    detected = custom(next(c for c in read_cuts(out) if c.id == "missing_language"))["teacher_language"]
    assert detected  # the teacher identified a language


def test_unreadable_audio_is_skipped(tmp_path, speak, transcriber):
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod 000 does not stop root from reading, so this kind cannot be made")
    path = tmp_path / "locked.wav"
    sf.write(str(path), tone_speech(speak), 16000)
    path.chmod(0)
    write_cuts([make_cut(path, "locked"), make_cut(tmp_path / "also_missing.wav", "gone")], tmp_path / "c.jsonl.gz")
    with pytest.raises(pl.NothingLabelledError, match="locked"):
        pl.pseudo_label(tmp_path / "c.jsonl.gz", tmp_path / "o.jsonl.gz", transcriber)


# ---- manifests -------------------------------------------------------------------------

def _good_lines(tmp_path, speak, n=3) -> list[bytes]:
    path = tmp_path / "g.wav"
    sf.write(str(path), tone_speech(speak), 16000)
    return [json.dumps(make_cut(path, f"g{i}").to_dict()).encode() + b"\n" for i in range(n)]


@pytest.mark.parametrize("kind, damage, message", [
    ("broken_gzip", lambda ls: gzip.compress(b"".join(ls))[:-30], r"m\.jsonl\.gz: cannot read manifest after line \d"),
    ("garbage_line", lambda ls: gzip.compress(b"".join(ls[:2]) + b"}{ not json\n" + ls[2]),
     r"m\.jsonl\.gz:3: not a lhotse cut"),
    ("duplicate_ids", lambda ls: gzip.compress(b"".join(ls) + ls[1]), r"m\.jsonl\.gz: cut id g1 appears more than once"),
    ("non_utf8", lambda ls: gzip.compress(ls[0] + ls[1].replace(b'"g1"', b'"g\xff1"') + ls[2]),
     r"m\.jsonl\.gz:2: not a lhotse cut \(UnicodeDecodeError"),
])
def test_a_damaged_manifest_stops_naming_the_file_and_line(kind, damage, message, tmp_path, speak, transcriber):
    path = tmp_path / "m.jsonl.gz"
    path.write_bytes(damage(_good_lines(tmp_path, speak)))
    with pytest.raises(ManifestError, match=message) as err:
        list(iter_cuts(path))
    assert "\n" not in str(err.value)
    # The stage stops the same way, and keeps what an earlier run finished.
    out = tmp_path / "o.jsonl.gz"
    with pytest.raises(ManifestError, match=message):
        pl.pseudo_label(path, out, transcriber)
    assert not out.exists()


def test_a_stop_midway_keeps_the_labels_already_written(tmp_path, speak, transcriber, monkeypatch):
    lines = _good_lines(tmp_path, speak, 5)
    path = tmp_path / "m.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(lines[:4]) + b"garbage\n"))
    monkeypatch.setattr(pl, "WINDOW_CUTS", 2)
    monkeypatch.setattr(pl, "CHUNK_CUTS", 2)
    out = tmp_path / "o.jsonl.gz"
    with pytest.raises(ManifestError, match=r"m\.jsonl\.gz:5"):
        pl.pseudo_label(path, out, transcriber)
    partial = out.with_name(out.name + ".partial.jsonl")
    assert [json.loads(line)["id"] for line in partial.read_text().splitlines()] == ["g0", "g1", "g2", "g3"]


# ---- labels that look like code -------------------------------------------------------

def test_hostile_labels_are_scored_as_text(tmp_path, speak):
    path = tmp_path / "a.wav"
    sf.write(str(path), tone_speech(speak), 16000)
    labels = {"label_dash": "-f/etc/passwd --stdout", "label_shell": "'; rm -rf ~ $(id) `uname` | cat > /tmp/x &"}
    cuts = []
    for kind, text in labels.items():
        cut = make_cut(path, kind)
        custom(cut).update(teacher_text=text, teacher_tokens=[1], teacher_logprobs=[-0.1], teacher_entropy=[0.1],
                           teacher_language="en", teacher_stop="eot")
        cuts.append(cut)
    write_cuts(cuts, tmp_path / "in.jsonl.gz")
    score_cuts([create_filter("confidence")], tmp_path / "in.jsonl.gz", tmp_path / "s.jsonl.gz")
    score_cuts(create_filter("pesq"), tmp_path / "s.jsonl.gz", tmp_path / "p.jsonl.gz")
    out = {c.id: custom(c) for c in read_cuts(tmp_path / "p.jsonl.gz")}
    assert set(out) == set(labels)
    assert all(v["teacher_text"] == labels[k] for k, v in out.items())  # stored as they came


# ---- checkpoints, teacher directory -----------------------------------------------------

@pytest.mark.parametrize("kind", ["checkpoint_unreadable", "checkpoint_truncated"])
def test_a_bad_checkpoint_stops_naming_it(kind, tmp_path):
    import torch

    from udistil.student.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

    save_checkpoint(tmp_path, 5, {"step": 5, "w": torch.zeros(1000)}, 0, 1, lambda: None)
    state = tmp_path / "checkpoints" / "step-0000005" / "state.pt"
    if kind == "checkpoint_unreadable":
        state.write_bytes(b"not a checkpoint")
    else:
        state.write_bytes(state.read_bytes()[:len(state.read_bytes()) // 2])
    with pytest.raises(UdistilError, match=r"step-0000005: unreadable checkpoint .*delete this directory") as err:
        load_checkpoint(latest_checkpoint(tmp_path), 0)
    assert "\n" not in str(err.value)


def test_a_teacher_dir_with_a_wrong_config_stops_naming_it(tmp_path, tiny_whisper_dir):
    import shutil

    from udistil.models.spec import load_whisper

    bad = tmp_path / "teacher"
    shutil.copytree(tiny_whisper_dir, bad)
    config = json.loads((bad / "config.json").read_text())
    config["d_model"] = config["d_model"] * 2  # weights no longer fit the config
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(UdistilError, match=str(bad)):
        load_whisper(str(bad))
    (bad / "config.json").write_text("{ truncated")
    with pytest.raises(UdistilError, match=r"config\.json: unreadable model config"):
        load_whisper(str(bad))


# ---- a full disk -------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here (needs root): {proc.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_stops_in_one_line_and_keeps_what_was_written(small_disk, tmp_path, speak):
    path = tmp_path / "a.wav"
    sf.write(str(path), tone_speech(speak), 16000)
    cuts = []
    for i in range(60):
        cut = make_cut(path, f"c{i:03d}")
        custom(cut).update(teacher_text="x " * 200, teacher_tokens=list(range(100)), teacher_logprobs=[-0.1] * 100,
                           teacher_entropy=[0.1] * 100, teacher_language="en", teacher_stop="eot")
        cuts.append(cut)
    write_cuts(cuts, tmp_path / "in.jsonl.gz")
    out = small_disk / "scored.jsonl.gz"
    from udistil.bin.main import main

    import io
    import contextlib

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["score", "confidence", "--batch-size", "4", "--in", str(tmp_path / "in.jsonl.gz"), "--out", str(out)])
    assert rc == 1
    line = err.getvalue().strip().splitlines()[-1]
    assert "No space left on device" in line and str(small_disk) in line, line
    partial = out.with_name(out.name + ".partial.jsonl")
    done = [json.loads(x)["id"] for x in partial.read_text().splitlines() if x.endswith("}")]
    assert done, "nothing was written before the disk filled"
    # Make room: the rerun resumes from what was kept and finishes.
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    assert main(["score", "confidence", "--batch-size", "4", "--in", str(tmp_path / "in.jsonl.gz"),
                 "--out", str(out)]) == 0
    assert [c.id for c in read_cuts(out)] == [c.id for c in cuts]


def test_the_corpus_has_at_least_20_kinds():
    assert len(set(KINDS)) >= 20
