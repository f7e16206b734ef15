"""The scoring runner: nulls for unusable audio, and a killed shard that resumes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from lhotse import Recording, SupervisionSegment

from udistil.data.manifests import custom, read_cuts, write_cuts
from udistil.filters import create_filter
from udistil.filters.runner import score_cuts

REPO = Path(__file__).resolve().parents[1]
WORDS = ["river", "market", "window", "garden", "morning", "yellow", "teacher", "bridge"]


def labelled_cuts(tmp_path, speak, n):
    """n short espeak clips whose pseudo-label is their own text (stage-3 fields filled)."""
    cuts = []
    for i in range(n):
        text = f"the {WORDS[i % len(WORDS)]} is near the {WORDS[(i + 3) % len(WORDS)]}"
        path = tmp_path / f"c{i}.wav"
        samples = np.concatenate([np.zeros(8000, np.float32), speak(text, "en")])
        import soundfile as sf
        sf.write(str(path), samples, 16000)
        cut = Recording.from_file(str(path), recording_id=f"c{i}").to_cut()
        cut.id = f"c{i}"
        cut.supervisions = [SupervisionSegment(cut.id, cut.id, 0, cut.duration, text=text, language="en")]
        custom(cut).update(teacher_text=text, teacher_tokens=[1, 2], teacher_logprobs=[-0.1, -0.2],
                           teacher_entropy=[0.3, 0.1], teacher_language="en", teacher_stop="eot")
        cuts.append(cut)
    return cuts


def test_missing_audio_gives_null_and_keeps_the_cut(tmp_path, speak):
    cuts = labelled_cuts(tmp_path, speak, 3)
    os.remove(tmp_path / "c1.wav")
    write_cuts(cuts, tmp_path / "in.jsonl.gz")
    summary = score_cuts(create_filter("pesq"), tmp_path / "in.jsonl.gz", tmp_path / "out.jsonl.gz")
    out = {c.id: custom(c) for c in read_cuts(tmp_path / "out.jsonl.gz")}
    assert list(out) == ["c0", "c1", "c2"]
    assert out["c1"]["pesq"] is None and out["c0"]["pesq"] is not None
    assert summary["null"]["pesq"] == 1 and "unusable audio" in next(iter(summary["null_reasons"]["pesq"]))
    assert "pesq" in out["c0"]["filter_seconds"]


def test_killed_shard_resumes_without_redoing_finished_cuts(tmp_path, speak):
    n = 8
    write_cuts(labelled_cuts(tmp_path, speak, n), tmp_path / "in.jsonl.gz")
    out = tmp_path / "out.jsonl.gz"
    partial = tmp_path / "out.jsonl.gz.partial.jsonl"
    cmd = [sys.executable, "-m", "udistil.bin.main", "score", "pesq", "--batch-size", "1",
           "--in", str(tmp_path / "in.jsonl.gz"), "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if partial.exists() and partial.read_text().count("\n") >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the scorer finished before it could be killed"
    assert not out.exists()
    done_before = {json.loads(line)["id"]: line for line in partial.read_text().splitlines()}
    assert 3 <= len(done_before) < n
    # A kill mid-write leaves half a line; the resumed run must drop it.
    with open(partial, "a") as fh:
        fh.write('{"id": "c7", "supervisions": [{"trunc')
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(done_before)} cuts already done" in resumed.stderr
    assert "truncated last line" in resumed.stderr
    final = {c.id: c for c in read_cuts(out)}
    assert sorted(final) == [f"c{i}" for i in range(n)]
    assert all(custom(c)["pesq"] is not None for c in final.values())
    # Finished cuts were carried over, not scored again: their stored timing is unchanged.
    for cut_id, line in done_before.items():
        before = json.loads(line)["supervisions"][0]["custom"]["filter_seconds"]["pesq"]
        assert custom(final[cut_id])["filter_seconds"]["pesq"] == before
    assert not partial.exists()


def test_several_cheap_filters_in_one_pass(tmp_path, speak):
    from udistil.bin.main import main

    write_cuts(labelled_cuts(tmp_path, speak, 2), tmp_path / "in.jsonl.gz")
    assert main(["score", "confidence,entropy,nll", "--in", str(tmp_path / "in.jsonl.gz"),
                 "--out", str(tmp_path / "out.jsonl.gz")]) == 0
    fields = custom(read_cuts(tmp_path / "out.jsonl.gz")[0])
    assert fields["confidence"] > 0.8 and fields["entropy"] == 0.2 and abs(fields["nll"] - 0.15) < 1e-6
    assert set(fields["filter_seconds"]) == {"confidence", "entropy", "nll"}
    assert main(["score", "nll,fusion", "--in", str(tmp_path / "out.jsonl.gz"),
                 "--out", str(tmp_path / "x.jsonl.gz")]) == 1


def _scored_manifest(tmp_path, speak, n: int, tokens: int):
    """n cuts of one espeak clip, each with stage-3 per-token lists of `tokens` entries, an
    array manifest as stage 3 writes, and a confidence score: what fusion reads at scale."""
    import soundfile as sf

    path = tmp_path / "one.wav"
    sf.write(str(path), speak("the river is near the bridge", "en"), 16000)
    recording = Recording.from_file(str(path), recording_id="one")
    rng = np.random.default_rng(0)

    def cuts():
        for i in range(n):
            cut = recording.to_cut()
            cut.id = f"c{i:06d}"
            cut.supervisions = [SupervisionSegment(cut.id, "one", 0, cut.duration, language=("en", "sw")[i % 2])]
            custom(cut).update(teacher_text="the river is near the bridge", teacher_tokens=list(range(tokens)),
                               teacher_logprobs=[-0.1] * tokens, teacher_entropy=[0.2] * tokens,
                               teacher_language="en", teacher_stop="eot", confidence=float(rng.uniform(0, 100)),
                               entropy=None if i % 7 == 0 else float(rng.uniform(0, 5)))
            cut.custom = {"kd_topk_ids": {"storage_type": "udistil_chunks", "storage_path": "/x/cuts.1.chunks",
                                          "storage_key": f"{i * 512}:256:<i4:00000000:1x64", "shape": [1, 64]}}
            yield cut
    return write_cuts(cuts(), tmp_path / "scored.jsonl.gz")


def test_a_whole_set_filter_holds_columns_of_scores_not_the_cuts(tmp_path, speak):
    """Fusion scores the whole set at once; what it holds per cut must stay far below a lhotse
    cut's few KB (a 500K-cut pool held as cuts is gigabytes), and its scores must be those it
    gives the same cuts held whole."""
    import tracemalloc

    import scipy.stats  # noqa: F401  (fusion imports it on first use: a constant, not per cut)

    from udistil.filters.runner import WholeSetColumns

    n = 3000
    manifest = _scored_manifest(tmp_path, speak, n, tokens=30)
    fusion = create_filter("fusion")
    tracemalloc.start()
    try:
        score_cuts(fusion, manifest, tmp_path / "fused.jsonl.gz")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak / n < 1200, f"{peak / n:.0f} bytes held per cut while fusing"
    fused = [custom(c)["fusion"] for c in read_cuts(tmp_path / "fused.jsonl.gz")]
    whole = [s.value for s in create_filter("fusion").score(list(read_cuts(manifest)), [None] * n)]
    assert fused == pytest.approx(whole, abs=1e-5) and len(set(fused)) > n // 2
    columns = WholeSetColumns(read_cuts(manifest))
    assert columns[0].custom.get("entropy") is None and columns[1].custom.get("entropy") is not None
    assert [c.supervisions[0].language for c in columns][:2] == ["en", "sw"]
