"""kill -9 at seeded random moments inside stages 3, 4 and 7, rerun, and compare with an
uninterrupted run: identical manifests (stage 3, 4) and decodes (stage 7), no cut lost.

Stage 6 (training) has its own kill test with the trainer.  The longer version, with more
kills per stage, is benchmarks/faults.py.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
from lhotse import Recording, SupervisionSegment

from killing import command, decode_rows, kill_and_resume, manifest_rows, run_in_process
from udistil.data.manifests import write_cuts

# One kill per stage here (CI time); benchmarks/faults.py kills each stage many times.
KILLS = 1
SENTENCES = [("good morning everyone", "en"), ("habari za asubuhi", "sw"), ("صباح الخير", "ar"),
             ("the train leaves at noon", "en"), ("karibu nyumbani", "sw"), ("the sun is hot today", "en")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, speak):
    d = tmp_path_factory.mktemp("kill_corpus")
    cuts = []
    for i, (text, lang) in enumerate(SENTENCES):
        path = d / f"u{i}.wav"
        sf.write(str(path), np.concatenate([np.zeros(4000, np.float32), speak(text, lang)]), 16000)
        cut = Recording.from_file(str(path), recording_id=f"u{i}").to_cut()
        cut.id = f"u{i}"
        cut.supervisions = [SupervisionSegment(cut.id, cut.id, 0, cut.duration, text=text,
                                               language=None if i == 3 else lang)]
        cuts.append(cut)
    write_cuts(cuts, d / "cuts.jsonl.gz")
    return d / "cuts.jsonl.gz"


@pytest.fixture(scope="module")
def labelled(corpus, tiny_whisper_dir, tmp_path_factory):
    """The uninterrupted stage-3 run (the reference for stage 3, and stage 4's input)."""
    out = tmp_path_factory.mktemp("kill_ref") / "labels.jsonl.gz"
    run_in_process("pseudo-label", "--model", tiny_whisper_dir, "--in", corpus, "--out", out)
    return out


def test_stage3_killed_gives_the_uninterrupted_labels(corpus, labelled, tiny_whisper_dir, tmp_path):
    out = tmp_path / "labels.jsonl.gz"
    cmd = command("pseudo-label", "--model", tiny_whisper_dir, "--in", corpus, "--out", out)
    where = kill_and_resume(cmd, out.with_name(out.name + ".partial.jsonl"), len(SENTENCES), KILLS, seed=11)
    assert any(w.startswith("after") for w in where), where
    assert manifest_rows(out) == manifest_rows(labelled), where


def test_stage4_killed_gives_the_uninterrupted_scores(labelled, tmp_path):
    ref, out = tmp_path / "ref.jsonl.gz", tmp_path / "scored.jsonl.gz"
    args = ("score", "pesq", "--batch-size", "1", "--in", labelled)
    run_in_process(*args, "--out", ref)
    where = kill_and_resume(command(*args, "--out", out), out.with_name(out.name + ".partial.jsonl"),
                            len(SENTENCES), KILLS, seed=12)
    assert any(w.startswith("after") for w in where), where
    assert manifest_rows(out) == manifest_rows(ref), where


def test_stage7_killed_gives_the_uninterrupted_decode(corpus, tiny_whisper_dir, tmp_path):
    args = ("decode", "--model", tiny_whisper_dir, "--in", corpus)
    run_in_process(*args, "--out", tmp_path / "ref")
    out = tmp_path / "killed"
    where = kill_and_resume(command(*args, "--out", out), out / "cuts.jsonl.gz.partial.jsonl",
                            len(SENTENCES), KILLS, seed=13)
    assert any(w.startswith("after") for w in where), where
    assert decode_rows(out) == decode_rows(tmp_path / "ref"), where
    shutil.rmtree(out)
