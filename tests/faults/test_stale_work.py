"""Holes 2, 3, 9 and 11: no stale work reused silently, one writer per output, a set whose
every cut is skipped ends in one clear line, and the shell asks the package about filters."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import Recording, SupervisionSegment

from udistil.data.manifests import custom, read_cuts, write_cuts
from udistil.errors import UdistilError
from udistil.filters import create_filter
from udistil.filters.runner import score_cuts
from udistil.parallel.shards import merge_cuts, split_cuts
from udistil.teacher.pseudo_label import pseudo_label
from udistil.teacher.transcriber import DecodeOptions, Transcriber

REPO = Path(__file__).resolve().parents[2]
WORDS = ["river", "market", "window", "garden", "morning", "yellow", "teacher", "bridge"]


def udistil(*args, cwd=None, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "udistil.bin.main", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def speech_cuts(d: Path, speak, n: int, relative: bool = False, labelled: bool = False) -> Path:
    """n espeak clips in d/wav and a manifest d/cuts.jsonl.gz (relative paths on request)."""
    (d / "wav").mkdir(parents=True, exist_ok=True)
    cuts = []
    for i in range(n):
        text = f"the {WORDS[i % 8]} is near the {WORDS[(i + 3) % 8]}"
        path = d / "wav" / f"c{i}.wav"
        sf.write(str(path), np.concatenate([np.zeros(8000, np.float32), speak(text, "en")]), 16000)
        rec = Recording.from_file(str(path), recording_id=f"c{i}")
        if relative:
            rec.sources[0].source = f"wav/c{i}.wav"
        cut = rec.to_cut()
        cut.id = f"c{i}"
        cut.supervisions = [SupervisionSegment(cut.id, cut.id, 0, cut.duration, text=text, language="en")]
        if labelled:
            custom(cut).update(teacher_text=text, teacher_tokens=[1, 2], teacher_logprobs=[-0.1, -0.2 * (i + 1)],
                               teacher_entropy=[0.3, 0.1], teacher_language="en", teacher_stop="eot")
        cuts.append(cut)
    write_cuts(cuts, d / "cuts.jsonl.gz")
    return d / "cuts.jsonl.gz"



def transcriber_with(tiny, **opts):
    model, processor = tiny
    base = dict(budget_base=4, budget_per_second=2)
    base.update(opts)
    return Transcriber(model, processor, DecodeOptions(**base))


def transcriber(tiny):
    return transcriber_with(tiny)


# ---- hole 2: fingerprints ------------------------------------------------------------

def test_labels_made_with_other_options_are_not_reused_silently(tiny, tmp_path, speak):
    cuts = speech_cuts(tmp_path / "in", speak, 3)
    out = tmp_path / "labels.jsonl.gz"
    pseudo_label(cuts, out, transcriber(tiny))
    with pytest.raises(UdistilError, match=r"labels\.jsonl\.gz: made from other inputs or options "
                                           r"\(budget_per_second 2.*-> 3.*--redo-stale"):
        pseudo_label(cuts, out, transcriber_with(tiny, budget_per_second=3))
    assert len(read_cuts(out)) == 3  # nothing already written is lost by the refusal
    summary = pseudo_label(cuts, out, transcriber_with(tiny, budget_per_second=3), redo_stale=True)
    assert summary["labelled"] == 3


def test_a_partial_file_from_another_input_is_not_continued(tiny, tmp_path, speak):
    first = speech_cuts(tmp_path / "a", speak, 3)
    out = tmp_path / "labels.jsonl.gz"
    partial = out.with_name(out.name + ".partial.jsonl")
    pseudo_label(first, out, transcriber(tiny))
    # Turn the finished output back into the partial file a killed run leaves.
    partial.write_text("".join(json.dumps(c.to_dict()) + "\n" for c in read_cuts(out)))
    out.unlink()
    other = speech_cuts(tmp_path / "b", speak, 4)
    with pytest.raises(UdistilError, match=r"labels\.jsonl\.gz: made from other inputs.*input .*b/cuts\.jsonl\.gz changed"):
        pseudo_label(other, out, transcriber(tiny))
    assert partial.exists()


def test_scores_of_another_input_stop_and_can_be_redone(tmp_path, speak):
    a = speech_cuts(tmp_path / "a", speak, 2, labelled=True)
    out = tmp_path / "scored.jsonl.gz"
    score_cuts(create_filter("confidence"), a, out)
    b = speech_cuts(tmp_path / "a", speak, 3, labelled=True)  # the same path, new content
    with pytest.raises(UdistilError, match="scored.jsonl.gz: made from other inputs"):
        score_cuts(create_filter("confidence"), b, out)
    score_cuts(create_filter("confidence"), b, out, redo_stale=True)
    assert len(read_cuts(out)) == 3


def test_scores_with_other_filter_options_stop(tmp_path, speak):
    a = speech_cuts(tmp_path / "a", speak, 2, labelled=True)
    custom_cut = read_cuts(a)
    for c in custom_cut:
        custom(c)["confidence"] = 0.5
    write_cuts(custom_cut, a)
    out = tmp_path / "fused.jsonl.gz"
    score_cuts(create_filter("fusion", language_prior=0.5), a, out)
    with pytest.raises(UdistilError, match=r"fused.jsonl.gz: .*fusion.language_prior 0.5 -> 0.0"):
        score_cuts(create_filter("fusion", language_prior=0.0), a, out)


def test_a_split_of_another_input_is_redone(tmp_path, speak):
    split = tmp_path / "split2"
    split_cuts(speech_cuts(tmp_path / "x", speak, 4), 2, split)
    speech_cuts(tmp_path / "x", speak, 6)  # the same path, new content
    paths = split_cuts(tmp_path / "x" / "cuts.jsonl.gz", 2, split)
    assert sum(len(read_cuts(p)) for p in paths) == 6


def test_merge_of_the_same_shards_is_kept_and_of_new_ones_redone(tmp_path, speak):
    paths = split_cuts(speech_cuts(tmp_path / "x", speak, 4), 2, tmp_path / "split2")
    out = merge_cuts(paths, tmp_path / "merged.jsonl.gz")
    stamp = out.stat().st_mtime_ns
    time.sleep(0.01)
    merge_cuts(paths, out)
    assert out.stat().st_mtime_ns == stamp
    write_cuts(list(read_cuts(paths[1]))[:1], paths[1])
    merge_cuts(paths, out)
    assert len(read_cuts(out)) == 3


def test_cli_names_the_stale_file_in_one_line(tiny_whisper_dir, tmp_path, speak):
    from udistil.models.spec import load_whisper

    cuts = speech_cuts(tmp_path / "in", speak, 2)
    out = tmp_path / "labels.jsonl.gz"
    model, processor = load_whisper(str(tiny_whisper_dir))
    # What `udistil pseudo-label --model DIR --budget-per-second 2` writes (in-process: faster).
    pseudo_label(cuts, out, Transcriber(model, processor, DecodeOptions(budget_per_second=2),
                                        name=str(tiny_whisper_dir)))
    again = udistil("pseudo-label", "--model", tiny_whisper_dir, "--in", cuts, "--out", out,
                    "--budget-per-second", "3")
    assert again.returncode == 1
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and str(out) in lines[0] and "--redo-stale" in lines[0], again.stderr


# ---- hole 3: one writer per output ---------------------------------------------------

def test_a_second_run_on_the_same_output_stops_and_the_first_is_untouched(tmp_path, speak):
    n = 6
    cuts = speech_cuts(tmp_path / "in", speak, n, labelled=True)
    out = tmp_path / "scored.jsonl.gz"
    partial = out.with_name(out.name + ".partial.jsonl")
    cmd = ["score", "pesq", "--batch-size", "1", "--in", cuts, "--out", out]
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    first = subprocess.Popen([sys.executable, "-m", "udistil.bin.main", *map(str, cmd)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (partial.exists() and partial.read_text().count("\n") >= 1):
        assert first.poll() is None, first.communicate()
        time.sleep(0.05)
    # Freeze the first run mid-shard, so the second surely starts while it holds the output.
    first.send_signal(signal.SIGSTOP)
    try:
        second = udistil(*cmd)
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    if second.returncode == 0:
        pytest.fail("the second run was not stopped: " + second.stderr[-500:])
    assert second.returncode == 1
    line = second.stderr.strip().splitlines()[-1]
    assert f"{out} is being written by another run (pid {first.pid} on host " in line
    final = read_cuts(out)
    assert list(final.ids) == [f"c{i}" for i in range(n)]
    assert all(custom(c)["pesq"] is not None for c in final)


def test_checkpoint_temp_dirs_are_per_process(tmp_path):
    from udistil.student.checkpoint import save_checkpoint

    other = tmp_path / "checkpoints" / ".step-0000005.tmp"  # the name every run used to share
    other.mkdir(parents=True)
    (other / "state.pt").write_text("another run is writing this")
    save_checkpoint(tmp_path, 5, {"step": 5}, rank=0, world_size=1, barrier=lambda: None)
    assert (other / "state.pt").read_text() == "another run is writing this"
    assert (tmp_path / "checkpoints" / "step-0000005" / "state.pt").is_file()


# ---- hole 9: every cut skipped; relative paths ---------------------------------------

def test_a_set_whose_every_cut_is_skipped_ends_in_one_clear_line(tiny_whisper_dir, tmp_path, speak):
    cuts = speech_cuts(tmp_path / "in", speak, 3)
    shutil.rmtree(tmp_path / "in" / "wav")
    proc = udistil("pseudo-label", "--model", tiny_whisper_dir, "--in", cuts, "--out", tmp_path / "o.jsonl.gz")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr
    assert last.startswith("udistil pseudo-label: ERROR: ")
    assert "no cut could be labelled: 3 of 3 skipped (audio file not found: 3)" in last
    assert not (tmp_path / "o.jsonl.gz").exists()


def test_relative_audio_paths_are_read_beside_the_manifest_in_every_stage(tiny, tmp_path, speak, monkeypatch):
    cuts = speech_cuts(tmp_path / "corpus", speak, 2, relative=True)
    monkeypatch.chdir(tmp_path)  # anywhere but the manifest's directory
    out = tmp_path / "labels.jsonl.gz"
    assert pseudo_label(cuts, out, transcriber(tiny))["labelled"] == 2
    scored = tmp_path / "scored.jsonl.gz"
    score_cuts(create_filter("pesq"), out, scored)
    assert all(custom(c)["pesq"] is not None for c in read_cuts(scored))
    from udistil.data.source_manifests import read_recordings
    from udistil.data.source_manifests import write_manifest_deterministic

    rec = Recording.from_file(str(tmp_path / "corpus" / "wav" / "c0.wav"), recording_id="c0")
    rec.sources[0].source = "wav/c0.wav"
    write_manifest_deterministic([rec], tmp_path / "corpus" / "recs.jsonl.gz")
    (loaded,) = read_recordings(tmp_path / "corpus" / "recs.jsonl.gz")
    assert loaded.sources[0].source == str(tmp_path / "corpus" / "wav" / "c0.wav")


# ---- hole 11: the shell asks the package ---------------------------------------------

def test_score_list_gives_every_filters_facts():
    from udistil.filters import FILTERS, filter_class

    proc = udistil("score", "--list")
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.strip().splitlines()
    assert header.split("\t") == ["#name", "needs", "direction", "default_threshold", "label_free", "whole_set"]
    table = {r.split("\t")[0]: r.split("\t") for r in rows}
    assert set(table) == set(FILTERS)
    for name, row in table.items():
        cls = filter_class(name)
        assert row[1].split(",") == list(cls.needs)
        assert (row[2] == "higher_is_worse") == cls.higher_is_worse
        assert row[3] == ("none" if cls.default_threshold is None else str(cls.default_threshold))


def test_run_sh_keeps_no_list_of_filters():
    text = (REPO / "run.sh").read_text()
    for hard_coded in ("proxy_wer|consistency", "nll_sum|sonar_sim", "pesq|sonar_sim"):
        assert hard_coded not in text
    assert "udistil score --list" in text


def test_a_stage_marker_made_with_other_options_stops(tmp_path):
    from udistil.parallel.fingerprint import check_marker, write_marker

    marker = tmp_path / "manifests" / ".done"
    assert check_marker(marker, {"seed": "1"}) is False  # not done yet
    marker.parent.mkdir()
    write_marker(marker, {"seed": "1"})
    assert check_marker(marker, {"seed": "1"}) is True
    with pytest.raises(UdistilError, match=r"manifests/\.done: the stage was run with other options \(seed '1' -> '2'\)"):
        check_marker(marker, {"seed": "2"})
    assert check_marker(marker, {"seed": "2"}, redo=True) is False
    marker.write_text("")  # a marker from `touch`, as run.sh wrote them before
    with pytest.raises(UdistilError, match="records no fingerprint"):
        check_marker(marker, {"seed": "1"})


def test_a_selection_with_another_rule_is_redone_not_reused(tmp_path, speak):
    from udistil.select.selection import select_cuts

    scored = tmp_path / "scored.jsonl.gz"
    score_cuts(create_filter("confidence"), speech_cuts(tmp_path / "in", speak, 4, labelled=True), scored)
    out = tmp_path / "select" / "cuts.jsonl.gz"
    assert select_cuts(scored, out, "confidence", threshold=0.0)["kept"] == 4
    assert select_cuts(scored, out, "confidence", threshold=0.0) == {"skipped_existing": True}
    assert select_cuts(scored, out, "confidence", threshold=0.75)["kept"] == 2
