"""Data at scale: stores whose file count follows shards, hidden states kept only for the MSE,
training sets that are streamed, lean checkpoints, and DDP on a complete encoder cache.
Tiny random Whisper models and espeak-ng cuts."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from udistil.data.manifests import read_cuts, write_cuts
from udistil.errors import UdistilError
from udistil.student.config import DataOptions, DistillConfig, OptimOptions, RunOptions
from udistil.student.init import make_student
from udistil.student.loss import LossWeights
from udistil.teacher.kd_targets import TargetSpec
from udistil.teacher.pseudo_label import pseudo_label
from udistil.teacher.transcriber import DecodeOptions, Transcriber

from test_student_distill import make_cut

REPO = Path(__file__).resolve().parents[1]
TEXTS = ["the cat sat on the mat", "hello world", "speech recognition is fun", "one two three four",
         "small models decode fast", "good morning everyone", "we test the student", "a quiet room"]


@pytest.fixture(scope="module")
def clips(speak, tmp_path_factory):
    root = tmp_path_factory.mktemp("scale_clips")
    return root, [make_cut(root, f"c{i}", speak(t), "en", None) for i, t in enumerate(TEXTS)]


def label(teacher, cuts, root: Path, name: str, keep_hidden: bool, targets: Path) -> Path:
    raw = write_cuts(cuts, root / f"{name}.raw.jsonl.gz")
    spec = TargetSpec(topk=8, temperature=2.0, keep_hidden=keep_hidden)
    transcriber = Transcriber.from_spec(str(teacher), DecodeOptions(targets=spec, budget_per_second=4))
    out = root / f"{name}.jsonl.gz"
    pseudo_label(raw, out, transcriber, targets_dir=targets)
    return out


@pytest.fixture(scope="module")
def labelled(tiny_whisper_dir, clips, tmp_path_factory):
    """The 8 clips labelled in two shards (4 + 4) into one store, without hidden states."""
    root = tmp_path_factory.mktemp("scale_store")
    _, cuts = clips
    shards = [label(tiny_whisper_dir, cuts[:4], root, "cuts.1", False, root / "targets"),
              label(tiny_whisper_dir, cuts[4:], root, "cuts.2", False, root / "targets")]
    merged = write_cuts([c for s in shards for c in read_cuts(s)], root / "train.jsonl.gz")
    return {"root": root, "shards": shards, "cuts": merged, "targets": root / "targets"}


def test_a_targets_store_holds_one_file_per_shard_not_per_cut(tiny_whisper_dir, clips, labelled, tmp_path):
    from udistil.student.stored_targets import StoredTargets

    files = sorted(p.name for p in labelled["targets"].iterdir())
    # store.json, and per shard its chunk file and that file's lock: 8 cuts, 2 shards.
    assert files == ["cuts.1.chunks", "cuts.1.chunks.lock", "cuts.2.chunks", "cuts.2.chunks.lock", "store.json"]
    # Twice the cuts per shard: the same files.
    _, cuts = clips
    one = label(tiny_whisper_dir, cuts[:2], tmp_path, "cuts.1", False, tmp_path / "few")
    assert len(list((tmp_path / "few").iterdir())) == 3
    assert sum(1 for _ in read_cuts(one)) == 2
    # Every cut's arrays are read back through lhotse (random access into the shard's file).
    cut = read_cuts(labelled["cuts"])["c6"]
    ids = cut.load_kd_topk_ids()
    assert ids.dtype == np.int32 and ids.shape == (cut.custom["kd_targets"]["rows"], 8)
    assert "kd_decoder_hidden" not in cut.custom  # not asked for
    targets = StoredTargets(None, 2.0, "test")
    assert targets.check(read_cuts(labelled["cuts"])) == 8


def test_a_half_written_array_is_never_trusted_and_a_resumed_writer_appends_after_it(tmp_path):
    from lhotse.array import Array

    from udistil.data.array_chunks import ChunkWriter

    writer = ChunkWriter(tmp_path / "s.chunks")
    first = writer.store_array(np.arange(12, dtype=np.int32).reshape(3, 4))
    half = writer.store_array(np.ones((5, 4), dtype=np.float32))
    writer.close()
    # A kill in the middle of the second array: its bytes are cut short.
    path = tmp_path / "s.chunks"
    os.truncate(path, path.stat().st_size - 7)
    with pytest.raises(UdistilError, match="truncated or damaged"):
        Array.from_dict(half.to_dict()).load()
    resumed = ChunkWriter(path)
    third = resumed.store_array(np.full((2, 2), 7, dtype=np.float16))
    resumed.close()
    np.testing.assert_array_equal(first.load(), np.arange(12).reshape(3, 4))
    np.testing.assert_array_equal(third.load(), np.full((2, 2), 7))
    # The damaged bytes stay damaged: the checksum refuses them even with the file grown.
    with pytest.raises(UdistilError, match="truncated or damaged"):
        half.load()
    # Only one process appends to a file: a second one stops.
    holder = ChunkWriter(path)
    other = subprocess.run([sys.executable, "-c", "import sys; from udistil.data.array_chunks import ChunkWriter; "
                            "ChunkWriter(sys.argv[1])", str(path)], env=_env(), capture_output=True, text=True)
    holder.close()
    assert other.returncode != 0 and "being written by another run" in other.stderr


def student(tiny_whisper_dir, directory: Path) -> Path:
    """A 2-1 student keeping the tiny teacher's whole encoder (frozen), no dropout."""
    return make_student(str(tiny_whisper_dir), directory / "student_2-1", decoder_layers=1)


def config(teacher, student_dir, train, dev, exp, alpha_mse=0.0, data=None, optim=None, **run):
    return DistillConfig(
        teacher=str(teacher), student=str(student_dir), train=str(train), dev=str(dev), exp=str(exp),
        data=data or DataOptions(batch_size=2, num_buckets=1),
        optim=optim or OptimOptions(lr=2e-3, warmup_steps=1, max_steps=4),
        run=RunOptions(valid_every=100, **run), loss=LossWeights(alpha_mse=alpha_mse))


def test_a_store_without_hidden_states_is_refused_before_an_mse_run_starts(tiny_whisper_dir, labelled, tmp_path):
    from udistil.student.stored_targets import StoredTargets
    from udistil.student.trainer import train

    cuts = read_cuts(labelled["cuts"])
    with pytest.raises(UdistilError, match=r"cut c\d: --alpha-mse > 0 needs the teacher's decoder hidden "
                                           r"states, and the store .*targets lacks them"):
        StoredTargets(None, 2.0, "train.jsonl.gz", want_hidden=True).check(cuts)
    exp = tmp_path / "exp"
    with pytest.raises(UdistilError, match="lacks them"):
        train(config(tiny_whisper_dir, student(tiny_whisper_dir, tmp_path), labelled["cuts"], labelled["cuts"],
                     exp, alpha_mse=1.0))
    assert not (exp / "checkpoints").exists()  # stopped before the first step
    # The choice is part of the store's fingerprint: a run asking for them cannot add to it.
    from udistil.teacher.kd_targets import TargetStore

    with pytest.raises(UdistilError, match="holds distillation targets made with"):
        TargetStore(labelled["targets"], TargetSpec(topk=8, keep_hidden=True), "someid", "x")


def test_the_training_set_is_streamed_and_never_listed(tiny_whisper_dir, labelled, tmp_path, monkeypatch):
    """Every way the 8-cut list could be materialised raises (a batch, 2 cuts, may be listed);
    training still runs."""
    import lhotse

    import udistil.data.manifests as manifests
    from udistil.student.trainer import train

    def listed(*args, **kwargs):
        raise AssertionError("the training manifest was materialised")

    real_from_cuts, real_len = lhotse.CutSet.from_cuts, lhotse.CutSet.__len__

    def from_cuts(cuts):
        out = real_from_cuts(cuts)
        if real_len(out) > 2:
            listed()
        return out

    def length(self):
        if self.is_lazy:
            listed()
        return real_len(self)

    seen = []
    real_init = lhotse.dataset.DynamicCutSampler.__init__

    def sampler_init(self, *cuts, **kwargs):
        seen.append(cuts[0])
        real_init(self, *cuts, **kwargs)

    student_dir = student(tiny_whisper_dir, tmp_path)
    monkeypatch.setattr(manifests, "read_cuts", listed)
    monkeypatch.setattr(lhotse.CutSet, "from_cuts", staticmethod(from_cuts))
    monkeypatch.setattr(lhotse.CutSet, "to_eager", listed)
    monkeypatch.setattr(lhotse.CutSet, "__len__", length)
    monkeypatch.setattr(lhotse.dataset.DynamicCutSampler, "__init__", sampler_init)
    summary = train(config(tiny_whisper_dir, student_dir, labelled["cuts"], labelled["cuts"], tmp_path / "exp",
                           max_dev_cuts=3))
    assert summary["finished"] and summary["steps"] == 4
    assert seen and all(cuts.is_lazy for cuts in seen)


def test_a_lean_checkpoint_without_frozen_weights_resumes_exactly(tiny_whisper_dir, labelled, tmp_path):
    from udistil.student.checkpoint import latest_checkpoint
    from udistil.student.trainer import train

    student_dir = student(tiny_whisper_dir, tmp_path)

    def run(exp, **extra):
        return train(config(tiny_whisper_dir, student_dir, labelled["cuts"], labelled["cuts"], exp,
                            checkpoint_every=2, freeze_embeddings=True, **extra))

    run(tmp_path / "full")
    run(tmp_path / "killed", stop_after_steps=2)
    state = torch.load(latest_checkpoint(tmp_path / "killed") / "state.pt", weights_only=False)
    names = set(state["model"])
    assert not any(n.startswith("model.encoder.") for n in names)      # the frozen encoder
    assert "model.decoder.embed_tokens.weight" not in names             # and frozen embeddings
    assert "model.decoder.layers.0.fc1.weight" in names                 # what trains is kept
    assert state["frozen"]["student_init"] == str(student_dir) and state["frozen"]["names"]
    run(tmp_path / "killed", resume=True)
    full = torch.load(latest_checkpoint(tmp_path / "full") / "state.pt", weights_only=False)["model"]
    resumed = torch.load(latest_checkpoint(tmp_path / "killed") / "state.pt", weights_only=False)["model"]
    assert full.keys() == resumed.keys()
    for name in full:
        assert torch.equal(full[name], resumed[name]), name
    # best/ is still a complete transformers directory.
    from udistil.models.spec import load_whisper

    model, _ = load_whisper(str(tmp_path / "killed" / "best"))
    assert model.config.decoder_layers == 1


def test_a_lean_checkpoint_refuses_a_student_whose_frozen_weights_changed(tiny_whisper_dir, labelled, tmp_path):
    from udistil.student.trainer import train

    student_dir = student(tiny_whisper_dir, tmp_path)
    train(config(tiny_whisper_dir, student_dir, labelled["cuts"], labelled["cuts"], tmp_path / "exp",
                 checkpoint_every=2, stop_after_steps=2))
    other = make_student(str(tiny_whisper_dir), tmp_path / "other", decoder_layers=1)
    model, processor = __import__("udistil.models.spec", fromlist=["load_whisper"]).load_whisper(str(other))
    with torch.no_grad():
        model.model.encoder.layers[0].fc1.weight.add_(0.01)
    model.save_pretrained(str(other))
    with pytest.raises(UdistilError, match="frozen weights"):
        train(config(tiny_whisper_dir, other, labelled["cuts"], labelled["cuts"], tmp_path / "exp",
                     checkpoint_every=2, resume=True))


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
                PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_ddp_reads_a_complete_encoder_cache_and_matches_one_process(tiny_whisper_dir, labelled, tmp_path):
    """Stage 6's pre-step builds the cache in two sharded jobs; a 2-rank gloo run then never
    runs the encoder, its ranks end with the same weights, and those equal a 1-process run
    on the same global batch (2 cuts a rank = 2 accumulated batches of 2)."""
    from udistil.student.checkpoint import latest_checkpoint
    from udistil.student.trainer import train

    student_dir = student(tiny_whisper_dir, tmp_path)
    cache = tmp_path / "cache"
    first, second = labelled["shards"]  # as run.sh's JOB=1:2 jobs over the pool and the dev set
    for shard in (1, 2):  # every other cut of each input
        done = subprocess.run([sys.executable, "-m", "udistil.bin.main", "encoder-cache", "--teacher",
                               str(tiny_whisper_dir), "--student", str(student_dir), "--in", str(first),
                               "--in", str(second), "--shard", str(shard), "--num-shards", "2",
                               "--cache", str(cache)],
                              env=_env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    (identity,) = [p for p in cache.iterdir() if p.is_dir()]
    # One chunk file (+ its lock and index) per job, never one file per cut.
    assert len(list(identity.glob("*.chunks"))) == 2 and len(list(identity.glob("*.index.jsonl"))) == 2

    common = ["--teacher", str(tiny_whisper_dir), "--student", str(student_dir), "--train", str(labelled["cuts"]),
              "--dev", str(labelled["cuts"]), "--num-buckets", "1", "--lr", "2e-3", "--warmup-steps", "1",
              "--max-steps", "4", "--valid-every", "100", "--checkpoint-every", "4", "--encoder-cache", str(cache),
              "--alpha-mse", "0"]
    exp = tmp_path / "exp_ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "udistil.bin.main", "distill", *common, "--exp", str(exp), "--batch-size", "2"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        _, stderr = proc.communicate()
        pytest.fail(f"torchrun did not finish:\n{stderr[-3000:]}")
    assert proc.returncode == 0, stderr[-3000:]
    ddp = json.loads((exp / "training_summary.json").read_text())
    assert ddp["world_size"] == 2 and ddp["finished"] and ddp["steps"] == 4
    assert ddp["encoder_forwards"] == 0                      # no encoder ran in training
    assert ddp["encoder_cache"]["built_before_training"] == 0  # the jobs had built it all
    assert ddp["encoder_cache"]["computed"] == 0
    # 4 steps x 2 ranks x 2 cuts, plus the dev pass's 8 cuts: every one read from the cache.
    assert ddp["encoder_cache"]["loaded"] == 4 * 2 * 2 + 8
    assert len(set(ddp["rank_weight_digests"])) == 1 and len(ddp["rank_weight_digests"]) == 2

    single = train(config(tiny_whisper_dir, student_dir, labelled["cuts"], labelled["cuts"], tmp_path / "exp_1",
                          data=DataOptions(batch_size=2, num_buckets=1),
                          optim=OptimOptions(lr=2e-3, warmup_steps=1, max_steps=4, grad_accum=2),
                          checkpoint_every=4, encoder_cache=str(cache)))
    assert single["encoder_forwards"] == 0 and single["encoder_cache"]["computed"] == 0
    a = torch.load(latest_checkpoint(exp) / "state.pt", weights_only=False)["model"]
    b = torch.load(latest_checkpoint(tmp_path / "exp_1") / "state.pt", weights_only=False)["model"]
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=1e-4, atol=1e-5), name
    assert any(not torch.equal(a[n], v) for n, v in __import__("udistil.models.spec", fromlist=["x"])
               .load_whisper(str(student_dir))[0].state_dict().items() if n in a)  # it did train


def test_training_fills_what_the_jobs_left_out_before_the_first_step(tiny_whisper_dir, labelled, tmp_path):
    from udistil.student.trainer import train

    summary = train(config(tiny_whisper_dir, student(tiny_whisper_dir, tmp_path), labelled["cuts"],
                           labelled["cuts"], tmp_path / "exp", encoder_cache=str(tmp_path / "cache")))
    assert summary["encoder_cache"]["built_before_training"] == 8
    assert summary["encoder_forwards"] == 0


def test_a_store_in_the_older_per_file_layout_is_read_but_never_extended(tmp_path):
    from udistil.teacher.kd_targets import STORE_INFO, TargetStore

    spec = TargetSpec(topk=8)
    old = {"teacher": "t", "teacher_id": "abc", "topk": 8, "temperature": spec.temperature, "keep_hidden": False}
    (tmp_path / STORE_INFO).write_text(json.dumps(old))
    with pytest.raises(UdistilError, match="older layout .* delete it"):
        TargetStore(tmp_path, spec, "abc", "t", shard="cuts.1")
    assert sorted(p.name for p in tmp_path.iterdir()) == [STORE_INFO]  # nothing written


def _rewrite_manifest(src: Path, dst: Path, edit) -> Path:
    with gzip.open(src, "rt") as fin, gzip.open(dst, "wt") as fout:
        for i, line in enumerate(fin):
            cut = json.loads(line)
            edit(i, cut)
            fout.write(json.dumps(cut) + "\n")
    return dst


def test_the_scale_benchmarks_kill_check_ignores_where_arrays_live_and_sees_what_they_hold(labelled, tmp_path):
    """benchmarks/scale.py --kill-stages compares a resumed stage 3 with the uninterrupted one: a
    store at another path and offset is the same output; a changed token or array is not."""
    import random
    import shutil

    sys.path.insert(0, str(REPO / "benchmarks"))
    from scale import compare_manifests

    moved = tmp_path / "moved_targets"
    shutil.copytree(labelled["targets"], moved)

    def relocate(i, cut):
        for value in cut["custom"].values():
            if isinstance(value, dict) and "storage_path" in value:
                value["storage_path"] = str(moved / Path(value["storage_path"]).name)

    same = _rewrite_manifest(labelled["cuts"], tmp_path / "same.jsonl.gz", relocate)
    result = compare_manifests(labelled["cuts"], same, sample=8, rng=random.Random(0))
    assert result["cuts"] == 8 and result["differing"] == 0 and result["unmatched"] == 0
    assert result["sample_loaded"] == 8 and result["sample_equal"] == 8

    def other_token(i, cut):
        if i == 3:
            cut["supervisions"][0]["custom"]["teacher_tokens"][0] += 1

    def other_array(i, cut):
        if i == 5:
            offset, nbytes, dtype, crc, shape = cut["custom"]["kd_topk_logprobs"]["storage_key"].split(":")
            cut["custom"]["kd_topk_logprobs"]["storage_key"] = ":".join(
                [offset, nbytes, dtype, f"{int(crc, 16) ^ 1:08x}", shape])

    for edit, changed in ((other_token, "c3"), (other_array, "c5")):
        result = compare_manifests(labelled["cuts"], _rewrite_manifest(labelled["cuts"], tmp_path / "x.jsonl.gz", edit),
                                   sample=0, rng=random.Random(0))
        assert result["differing"] == 1 and result["first_difference"] == changed
    shorter = _rewrite_manifest(labelled["cuts"], tmp_path / "short.jsonl.gz", lambda i, cut: None)
    with gzip.open(shorter, "rt") as fh:
        kept = fh.readlines()[:-1]
    with gzip.open(shorter, "wt") as fh:
        fh.writelines(kept)
    assert compare_manifests(labelled["cuts"], shorter, sample=0, rng=random.Random(0))["unmatched"] == 1
