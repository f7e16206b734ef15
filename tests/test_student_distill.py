"""Distillation (stage 6) on a tiny random Whisper and a few espeak-ng cuts.

Covers the labels, the loss against a hand computation, the shared-encoder path against
running both full models, exact resume, the exported student in pipeline(), and a
2-process torchrun (gloo) run.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lhotse import MonoCut, Recording, SupervisionSegment

from udistil.data.manifests import read_cuts, write_cuts
from udistil.student.config import DataOptions, DistillConfig, OptimOptions, RunOptions
from udistil.student.data import IGNORE_INDEX, DistillDataset, LabelEncoder, spread_subset, usable_cuts
from udistil.student.forward import DistillForward, StudentForward, encoders_identical, two_model_forward
from udistil.student.init import make_student
from udistil.student.loss import LossWeights, distillation_loss
from conftest import generate_text

REPO = Path(__file__).resolve().parents[1]

TRAIN_TEXTS = ["the cat sat on the mat", "hello world", "speech recognition is fun",
               "one two three four", "small models decode fast", "good morning everyone"]
DEV_TEXTS = ["the weather is nice today", "we test the student"]


def make_cut(directory: Path, cut_id: str, samples, language: str, teacher_text):
    path = directory / f"{cut_id}.wav"
    import soundfile as sf

    sf.write(str(path), samples, 16000)
    recording = Recording.from_file(path, recording_id=cut_id)
    custom = {"teacher_text": teacher_text} if teacher_text is not None else {}
    sup = SupervisionSegment(id=cut_id, recording_id=cut_id, start=0.0, duration=recording.duration,
                             language=language, text="", custom=custom)
    return MonoCut(id=cut_id, start=0.0, duration=recording.duration, channel=0,
                   recording=recording, supervisions=[sup])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, speak):
    """train.jsonl.gz (6 English cuts) and dev.jsonl.gz (2), teacher_text set, no references."""
    root = tmp_path_factory.mktemp("distill_corpus")
    train = [make_cut(root, f"tr{i}", speak(t), "en", t.capitalize() + ".") for i, t in enumerate(TRAIN_TEXTS)]
    dev = [make_cut(root, f"dv{i}", speak(t), "en", t.capitalize() + ".") for i, t in enumerate(DEV_TEXTS)]
    return {"train": write_cuts(train, root / "train.jsonl.gz"), "dev": write_cuts(dev, root / "dev.jsonl.gz"),
            "root": root}


@pytest.fixture(scope="module")
def student_dir(tiny_whisper_dir, tmp_path_factory):
    """2-1 student of the 2-2 tiny teacher: whole encoder kept (shared), with decoder dropout
    so that exact resume also depends on the random generators being restored."""
    out = make_student(str(tiny_whisper_dir), tmp_path_factory.mktemp("s") / "student_2-1",
                       decoder_layers=1)
    config_file = out / "config.json"
    config = json.loads(config_file.read_text())
    config["dropout"] = 0.1
    config_file.write_text(json.dumps(config))
    return out


def load(path):
    from udistil.models.spec import load_whisper

    return load_whisper(str(path))


def first_batch(processor, cuts):
    gen_multilingual = True
    labels = LabelEncoder(processor.tokenizer, multilingual=gen_multilingual, max_length=448)
    return DistillDataset(processor.feature_extractor, labels)[cuts]


def test_labels_prefix_padding_and_skips(tiny_whisper_dir, corpus, speak, caplog):
    _, processor = load(tiny_whisper_dir)
    tok = processor.tokenizer
    root = corpus["root"]
    corrupt = make_cut(root, "corrupt", speak("broken file"), "en", "Broken file.")
    Path(corrupt.recording.sources[0].source).write_bytes(b"RIFF not really a wav")
    cuts = [make_cut(root, "arabic", speak("marhaba", voice="ar"), "ar", "مرحبا"),
            make_cut(root, "nolabel", speak("no label"), "en", None),
            make_cut(root, "emptylabel", speak("empty label"), "en", "  "),
            corrupt,
            make_cut(root, "english", speak("a longer english sentence here"), "en",
                     "A longer English sentence here.")]
    usable = usable_cuts(cuts, "test.jsonl.gz")
    assert [c.id for c in usable] == ["arabic", "corrupt", "english"]
    assert "skipped 2 of 5 cuts without a teacher_text" in caplog.text

    batch = first_batch(processor, usable)
    assert batch["cut_ids"] == ["arabic", "english"]
    assert batch["skipped"].counts == {"bad_audio": 1}
    assert batch["input_features"].shape == (2, 80, 3000)
    ids = tok.convert_tokens_to_ids
    prefix = [ids("<|startoftranscript|>"), ids("<|ar|>"), ids("<|transcribe|>"), ids("<|notimestamps|>")]
    inputs, labels = batch["decoder_input_ids"], batch["labels"]
    assert inputs[0, :4].tolist() == prefix
    assert inputs[1, 1].item() == ids("<|en|>")
    # labels are the inputs shifted by one: the start token is never a target
    english = labels[1].tolist()
    assert english[:3] == [ids("<|en|>"), ids("<|transcribe|>"), ids("<|notimestamps|>")]
    assert english[-1] == tok.eos_token_id  # the longer sentence fills the width
    assert tok.decode(english[3:-1]) == " A longer English sentence here."
    arabic = labels[0].tolist()
    n_real = arabic.index(tok.eos_token_id) + 1
    assert all(x == IGNORE_INDEX for x in arabic[n_real:]) and n_real < len(arabic)
    assert inputs[0, 1:n_real].tolist() == arabic[:n_real - 1]
    assert tok.decode(arabic[3:n_real - 1]) == " مرحبا"


def test_loss_equals_hand_computation(tiny_whisper_dir, student_dir, corpus):
    teacher, processor = load(tiny_whisper_dir)
    student, _ = load(student_dir)
    batch = first_batch(processor, read_cuts(corpus["train"]).subset(first=3))
    with torch.no_grad():
        s_logits, t_logits = two_model_forward(teacher, student, batch["input_features"],
                                               batch["decoder_input_ids"])
    weights = LossWeights(alpha_ce=0.7, alpha_kl=1.3, temperature=3.0, alpha_mse=0.0)
    parts = distillation_loss(s_logits, t_logits, batch["labels"], weights)

    def log_softmax(row):  # log p_v = x_v - log sum_u exp(x_u), max-shifted, in float64
        row = row.double()
        shift = row.max()
        return row - shift - torch.log(torch.exp(row - shift).sum())

    ce_sum = kl_sum = 0.0
    n = 0
    labels = batch["labels"]
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1]):
            target = int(labels[b, t])
            if target == IGNORE_INDEX:
                continue
            n += 1
            ce_sum += -float(log_softmax(s_logits[b, t])[target])
            logp_s = log_softmax(s_logits[b, t] / 3.0)
            logp_t = log_softmax(t_logits[b, t] / 3.0)
            kl_sum += float((torch.exp(logp_t) * (logp_t - logp_s)).sum())
    assert n == parts.n_tokens == int((labels != IGNORE_INDEX).sum())
    ce, kl = ce_sum / n, kl_sum / n
    assert kl > 1e-4  # the two models really differ, so the KL term is exercised
    assert math.isclose(float(parts.ce), ce, rel_tol=1e-5)
    # The library sums 51865 float32 terms of a small KL; float64 here: ~1e-4 relative apart.
    assert math.isclose(float(parts.kl), kl, rel_tol=1e-3)
    assert math.isclose(float(parts.total), 0.7 * ce + 1.3 * 9.0 * kl, rel_tol=1e-5)


def test_shared_encoder_gives_the_two_model_loss(tiny_whisper_dir, student_dir, corpus):
    teacher, processor = load(tiny_whisper_dir)
    student, _ = load(student_dir)
    assert encoders_identical(teacher, student)
    batch = first_batch(processor, read_cuts(corpus["train"]).subset(first=3))
    features, inputs, labels = batch["input_features"], batch["decoder_input_ids"], batch["labels"]
    shared = DistillForward(teacher, StudentForward(student, frozen_encoder=True),
                            frozen_encoder=True, share_encoder=True)
    plain = LossWeights(alpha_mse=0.0)  # KL + CE: what the two paths must agree on
    with torch.no_grad():
        out = shared(features, inputs)
        loss_shared = distillation_loss(out.student_logits, out.teacher_logits, labels, plain).total
        loss_full = distillation_loss(*two_model_forward(teacher, student, features, inputs), labels, plain).total
    assert torch.allclose(loss_shared, loss_full, rtol=1e-6, atol=1e-6)
    # Sharing is only allowed when the encoders really are the same.
    with torch.no_grad():
        student.model.encoder.layers[0].fc1.weight.add_(0.01)
    assert not encoders_identical(teacher, student)


def distill_config(teacher, student, corpus, exp, **run):
    return DistillConfig(
        teacher=str(teacher), student=str(student), train=str(corpus["train"]), dev=str(corpus["dev"]),
        exp=str(exp), data=DataOptions(batch_size=2),
        optim=OptimOptions(lr=2e-3, warmup_steps=2, max_steps=6, schedule="cosine"),
        run=RunOptions(checkpoint_every=2, keep_checkpoints=2, valid_every=100, **run))


def losses(exp) -> list[float]:
    rows = [json.loads(line) for line in (Path(exp) / "log" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1))
    return [r["loss"] for r in rows]


@pytest.fixture(scope="module")
def uninterrupted(tiny_whisper_dir, student_dir, corpus, tmp_path_factory):
    from udistil.student.trainer import train

    exp = tmp_path_factory.mktemp("run") / "exp_full"
    summary = train(distill_config(tiny_whisper_dir, student_dir, corpus, exp))
    return exp, summary


def test_resume_continues_the_same_loss_curve(tiny_whisper_dir, student_dir, corpus, uninterrupted, tmp_path):
    from udistil.errors import UdistilError
    from udistil.student.checkpoint import list_checkpoints
    from udistil.student.trainer import train

    full_exp, full_summary = uninterrupted
    assert full_summary["finished"] and full_summary["shared_encoder"] and full_summary["steps"] == 6
    full = losses(full_exp)
    assert len(full) == 6 and len(set(full)) == 6

    # 6 cuts / batch 2 = 3 batches an epoch: stopping after step 4 is mid-way through epoch 1.
    exp = tmp_path / "exp_killed"
    first = train(distill_config(tiny_whisper_dir, student_dir, corpus, exp, stop_after_steps=4))
    assert not first["finished"] and first["steps"] == 4
    assert [p.name for p in list_checkpoints(exp)] == ["step-0000002", "step-0000004"]
    # A stray row the killed run logged after its checkpoint must be dropped on resume.
    with open(exp / "log" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 5, "loss": -1.0}) + "\n")
    with pytest.raises(UdistilError, match="--resume"):
        train(distill_config(tiny_whisper_dir, student_dir, corpus, exp))
    second = train(distill_config(tiny_whisper_dir, student_dir, corpus, exp, resume=True))
    assert second["finished"] and second["steps"] == 6
    resumed = losses(exp)
    assert resumed[:4] == full[:4]
    assert resumed == pytest.approx(full, rel=1e-6, abs=0)
    # Keep-last-K pruning.
    assert [p.name for p in list_checkpoints(exp)] == ["step-0000004", "step-0000006"]


def test_exported_best_student_loads_in_pipeline(uninterrupted, speak):
    from transformers import pipeline

    exp, summary = uninterrupted
    best = exp / "best"
    info = json.loads((best / "udistil_training.json").read_text())
    assert info["dev_loss"] == pytest.approx(summary["best_dev_loss"])
    asr = pipeline("automatic-speech-recognition", model=str(best), device="cpu")
    assert asr.model.config.decoder_layers == 1
    audio = speak("good evening")
    out = asr(audio, generate_kwargs={"language": "en", "task": "transcribe", "max_new_tokens": 5, "num_beams": 1})
    # The trained student's own greedy text: the pipeline loaded these weights and this tokenizer.
    assert out["text"] == generate_text(best, audio, max_new_tokens=5)


def test_torchrun_two_process_gloo(tiny_whisper_dir, student_dir, corpus, tmp_path):
    exp = tmp_path / "exp_ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "udistil.bin.main", "distill",
           "--teacher", str(tiny_whisper_dir), "--student", str(student_dir),
           "--train", str(corpus["train"]), "--dev", str(corpus["dev"]), "--exp", str(exp),
           "--batch-size", "1", "--max-steps", "2", "--warmup-steps", "1", "--checkpoint-every", "2"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)  # torchrun and both workers: a hung collective must not linger
        _, stderr = proc.communicate()
        pytest.fail(f"torchrun did not finish in 240 s:\n{stderr[-3000:]}")
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads((exp / "training_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2 and summary["finished"]
    rows = [json.loads(line) for line in (exp / "log" / "metrics.jsonl").read_text().splitlines()]
    # Each step trained on one cut from each rank.
    assert [r["cuts"] for r in rows] == [2, 2]
    assert sorted(p.name for p in (exp / "checkpoints" / "step-0000002").iterdir()) == \
        ["rng-rank0.pt", "rng-rank1.pt", "state.pt"]
    assert (exp / "best" / "model.safetensors").is_file()


def test_kill_9_mid_training_then_resume_gives_the_same_loss_curve(tiny_whisper_dir, student_dir, corpus,
                                                                   uninterrupted, tmp_path):
    """A real kill (SIGKILL, no clean exit) after the first checkpoint, then --resume."""
    import signal
    import time

    exp = tmp_path / "exp_sigkill"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "udistil.bin.main", "distill",
           "--teacher", str(tiny_whisper_dir), "--student", str(student_dir),
           "--train", str(corpus["train"]), "--dev", str(corpus["dev"]), "--exp", str(exp),
           "--batch-size", "2", "--lr", "2e-3", "--warmup-steps", "2", "--max-steps", "6",
           "--schedule", "cosine", "--checkpoint-every", "2", "--keep-checkpoints", "2",
           "--valid-every", "100"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while not (exp / "checkpoints" / "step-0000002" / "state.pt").is_file():
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    full_exp, _ = uninterrupted
    assert losses(exp) == pytest.approx(losses(full_exp), rel=1e-6, abs=0)


def test_best_export_is_swapped_by_one_rename_and_always_loadable(tiny_whisper_dir, tmp_path, monkeypatch):
    """Every os.replace that touches EXP/best must leave it pointing at a complete model."""
    from udistil.student.checkpoint import export_student

    model, processor = load(tiny_whisper_dir)
    best = tmp_path / "exp" / "best"
    seen = []
    real_replace = os.replace

    def checked_replace(src, dst):
        real_replace(src, dst)
        if Path(dst) == best:
            seen.append((best / "config.json").is_file() and (best / "model.safetensors").is_file())

    monkeypatch.setattr(os, "replace", checked_replace)
    export_student(model, processor, best, {"step": 3})
    first_target = best.resolve()
    export_student(model, processor, best, {"step": 7})
    assert seen == [True, True]
    assert best.is_symlink() and best.resolve().name == ".best-step-0000007"
    assert not first_target.exists()  # the previous export is removed after the swap
    assert json.loads((best / "udistil_training.json").read_text())["step"] == 7


def test_decoder_dropout_is_set_for_training_only(tiny_whisper_dir, tmp_path):
    """--dropout reaches every rate of the decoder (two train-mode passes differ, eval passes
    agree) and leaves config.json, hence the export, as it was."""
    from udistil.errors import UdistilError
    from udistil.student.config import DistillConfig, OptimOptions
    from udistil.student.trainer import set_decoder_dropout

    model, _ = load(tiny_whisper_dir)
    assert model.config.dropout == 0.0
    decoder = model.model.decoder
    n_layers = len(decoder.layers)
    # Per layer: the layer's dropout and activation_dropout, and its two attentions'; plus the decoder's own.
    assert set_decoder_dropout(decoder, 0.3) == 4 * n_layers + 1
    states = torch.randn(1, 20, model.config.d_model)
    ids = torch.tensor([[50258, 50259, 50359, 50363, 440, 1002]])

    def run():
        return decoder(input_ids=ids, encoder_hidden_states=states).last_hidden_state

    decoder.train()
    torch.manual_seed(0)
    a = run()
    assert not torch.allclose(a, run())
    decoder.eval()
    assert torch.equal(run(), run())
    assert model.config.dropout == 0.0 and model.config.attention_dropout == 0.0
    # A rate of 1 is refused where every option is checked, before the model loads.
    with pytest.raises(UdistilError, match="--dropout"):
        DistillConfig(teacher="t", student="s", train="x", dev="y", exp="e", optim=OptimOptions(dropout=1.0))


def test_weight_average_gives_the_dev_loss_and_export_and_survives_a_resume(
        tiny_whisper_dir, student_dir, corpus, uninterrupted, tmp_path):
    """--average-decay: the same training curve as without it (the live weights train), a
    different dev loss and best/ (the averaged weights), and a resumed run ends with the
    uninterrupted run's average."""
    from dataclasses import replace

    from safetensors.torch import load_file

    from udistil.student.trainer import train

    def config(exp, **run):
        c = distill_config(tiny_whisper_dir, student_dir, corpus, exp, **run)
        return replace(c, optim=replace(c.optim, average_decay=0.5))

    full_exp, full_summary = uninterrupted
    averaged = train(config(tmp_path / "avg_full"))
    assert losses(tmp_path / "avg_full") == pytest.approx(losses(full_exp), rel=1e-6, abs=0)
    assert averaged["best_dev_loss"] != pytest.approx(full_summary["best_dev_loss"], rel=1e-6)
    train(config(tmp_path / "avg_resumed", stop_after_steps=4))
    resumed = train(config(tmp_path / "avg_resumed", resume=True))
    assert resumed["best_dev_loss"] == pytest.approx(averaged["best_dev_loss"], rel=1e-6)
    a = load_file(str(tmp_path / "avg_full" / "best" / "model.safetensors"))
    b = load_file(str(tmp_path / "avg_resumed" / "best" / "model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_export_every_epoch_leaves_a_loadable_student_per_epoch(tiny_whisper_dir, student_dir, corpus,
                                                                uninterrupted, tmp_path):
    """--export-every-epoch: EXP/epochs/epoch-NNN after each epoch, with the dev loss of that
    step, and the training curve untouched by the extra dev passes."""
    from safetensors.torch import load_file

    from udistil.student.trainer import train

    full_exp, _ = uninterrupted
    exp = tmp_path / "exp_epochs"
    summary = train(distill_config(tiny_whisper_dir, student_dir, corpus, exp, export_every_epoch=True))
    assert summary["steps"] == 6 and summary["epoch"] == 2  # 3 batches an epoch
    assert losses(exp) == pytest.approx(losses(full_exp), rel=1e-6, abs=0)
    dev = {row["step"]: row["dev_loss"] for row in map(json.loads, (exp / "log" / "dev.jsonl").read_text().splitlines())}
    for epoch, step in ((1, 3), (2, 6)):
        info = json.loads((exp / "epochs" / f"epoch-{epoch:03d}" / "udistil_training.json").read_text())
        assert (info["epoch"], info["step"]) == (epoch, step)
        assert info["dev_loss"] == pytest.approx(dev[step])
    first = load_file(str(exp / "epochs" / "epoch-001" / "model.safetensors"))
    last = load_file(str(exp / "epochs" / "epoch-002" / "model.safetensors"))
    assert any(not torch.equal(first[k], last[k]) for k in first)
    assert load(exp / "epochs" / "epoch-002")[0].config.decoder_layers == 1


def test_a_live_teacher_run_adds_the_decoder_state_mse_to_its_loss(tiny_whisper_dir, student_dir, corpus,
                                                                    tmp_path):
    """run.sh turns --alpha-mse on; a manifest without stored targets (the live teacher)
    still gets it, from the teacher's states of the same forward pass."""
    import dataclasses

    from udistil.student.trainer import train

    config = distill_config(tiny_whisper_dir, student_dir, corpus, tmp_path / "exp")
    config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, max_steps=1),
                                 loss=dataclasses.replace(config.loss, alpha_mse=2.0))
    summary = train(config)
    assert summary["teacher"] == "live" and summary["finished"]
    row = json.loads((tmp_path / "exp" / "log" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["mse"] > 0
    weights = config.loss
    without_mse = weights.alpha_ce * row["ce"] + weights.alpha_kl * weights.temperature ** 2 * row["kl"]
    assert math.isclose(row["loss"], without_mse + 2.0 * row["mse"], rel_tol=1e-5)


def test_the_dev_subset_is_spread_over_a_sorted_manifest():
    """--max-dev-cuts takes cuts at even intervals: a manifest sorted by language gives every
    language its share (the first N of the mini dev set were 12 Arabic and 4 English)."""
    cuts = [MonoCut(id=f"{lang}-{i}", start=0.0, duration=1.0, channel=0, recording=None,
                    supervisions=[SupervisionSegment(id=f"{lang}-{i}", recording_id=f"{lang}-{i}", start=0.0,
                                                     duration=1.0, language=lang)])
            for lang, n in (("ar", 12), ("en", 18), ("sw", 10)) for i in range(n)]
    subset = list(spread_subset(cuts, 16))
    ids = [c.id for c in subset]
    assert len(set(ids)) == 16
    by_language = {lang: sum(c.supervisions[0].language == lang for c in subset) for lang in ("ar", "en", "sw")}
    assert by_language == {"ar": 5, "en": 7, "sw": 4}, by_language
    assert ids == sorted(ids, key=[c.id for c in cuts].index)  # the manifest's order is kept
    assert [c.id for c in spread_subset(cuts, None)] == [c.id for c in cuts]
    assert [c.id for c in spread_subset(cuts, 400)] == [c.id for c in cuts]


# ----- SpecAugment on the student's input (student/augment.py) ---------------------------

def spec_options(**kw):
    from udistil.student.config import AugmentOptions

    return AugmentOptions(**{"spec_augment": True, "freq_masks": 2, "freq_mask_width": 20, "time_masks": 2,
                             "time_mask_width": 60, "time_mask_max_fraction": 0.5, **kw})


def test_spec_augment_masks_only_real_frames_with_the_cut_mean_and_repeats_with_the_seed():
    from udistil.student.augment import SpecAugment

    features = torch.randn(2, 80, 600, generator=torch.Generator().manual_seed(0))
    clean = features.clone()
    samples, ids = [16000, 48000], ["a", "b"]  # 1 s = 100 real frames, 3 s = 300 (of 600)
    augment = SpecAugment(spec_options(), seed=1)
    out = augment.mask_features(features, samples, ids, epoch=0)
    assert torch.equal(features, clean)  # a copy is masked, never the input
    for row, real in ((0, 100), (1, 300)):
        changed = out[row] != clean[row]
        assert changed.any()
        assert not changed[:, real:].any()  # padding frames are never masked
        fill = clean[row, :, :real].mean()
        assert torch.allclose(out[row][changed], fill.expand(int(changed.sum())))
    # Same (seed, epoch, cut): the same masks; another epoch or seed: other masks.
    assert torch.equal(out, augment.mask_features(features, samples, ids, epoch=0))
    assert torch.equal(out, SpecAugment(spec_options(), seed=1).mask_features(features, samples, ids, epoch=0))
    assert not torch.equal(out, augment.mask_features(features, samples, ids, epoch=1))
    assert not torch.equal(out, SpecAugment(spec_options(), seed=2).mask_features(features, samples, ids, epoch=0))
    # A cut's masks do not depend on its batch neighbours.
    assert torch.equal(out[1:], augment.mask_features(features[1:], samples[1:], ids[1:], epoch=0))

    states = torch.randn(2, 192, 8, generator=torch.Generator().manual_seed(1))
    masked = augment.mask_states(states, samples, ids, epoch=0)  # real positions: 50 and 150
    for row, real in ((0, 50), (1, 150)):
        zeroed = (masked[row] != states[row]).any(-1)
        assert zeroed.any() and not zeroed[real:].any()
        assert (masked[row][zeroed] == 0).all()  # whole positions, every dimension
        assert int(zeroed.sum()) <= 2 * int(0.5 * real)  # at most p x real per mask


def student_inputs_recorder(trainer):
    """Hooks recording (training?, teacher's encoder input and output, student's features and
    states) for every forward of a live-teacher trainer."""
    seen = []

    def teacher_hook(module, args):
        seen.append({"training": trainer.student.training, "teacher": args[0].detach().clone()})

    def teacher_output_hook(module, args, output):
        seen[-1]["teacher_states"] = output.last_hidden_state.detach().clone()

    def student_hook(module, args, kwargs):
        seen[-1]["features"] = kwargs.get("input_features")
        seen[-1]["states"] = kwargs.get("encoder_states")

    trainer.teacher.model.encoder.register_forward_pre_hook(teacher_hook)
    trainer.teacher.model.encoder.register_forward_hook(teacher_output_hook)
    trainer.student_forward.register_forward_pre_hook(student_hook, with_kwargs=True)
    return seen


@pytest.mark.parametrize("encoder", ["trained", "shared"])
def test_spec_augment_reaches_the_students_input_in_training_only(tiny_whisper_dir, student_dir, corpus,
                                                                    tmp_path, monkeypatch, encoder):
    """Trained encoder: the student's features are masked; frozen encoder shared with the live
    teacher: the student's copy of the shared states.  The teacher's input and logits are
    the clean ones, and the dev pass sees no mask."""
    import dataclasses

    import udistil.student.trainer as trainer_module
    from udistil.student.distributed import init_distributed

    config = distill_config(tiny_whisper_dir, student_dir, corpus, tmp_path / "exp",
                            freeze_encoder=None if encoder == "shared" else False)
    config = dataclasses.replace(config, augment=spec_options(),
                                 optim=dataclasses.replace(config.optim, max_steps=1))
    trainer = trainer_module.Trainer(config, init_distributed("cpu"))
    assert trainer.share_encoder == (encoder == "shared")
    seen = student_inputs_recorder(trainer)
    teacher_logits = []
    real_loss = trainer_module.distillation_loss

    def recording_loss(student_logits, teacher, *args, **kwargs):
        teacher_logits.append(teacher.detach().clone())
        return real_loss(student_logits, teacher, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "distillation_loss", recording_loss)
    trainer.train_loader.sampler.set_epoch(0)
    batch = next(iter(trainer.train_loader))
    clean = batch["input_features"].clone()
    with torch.no_grad():
        trainer.batch_loss(batch, augment=True)
        trainer.batch_loss(batch)
    assert torch.equal(batch["input_features"], clean)
    assert torch.equal(teacher_logits[0], teacher_logits[1])  # the teacher's targets: untouched
    augmented, plain = seen
    assert torch.equal(augmented["teacher"], clean) and torch.equal(plain["teacher"], clean)
    if encoder == "trained":
        assert not torch.equal(augmented["features"], clean)
        assert torch.equal(plain["features"], clean)
    else:
        assert not torch.equal(augmented["states"], plain["states"])
        assert ((augmented["states"] == plain["states"]).all(-1) | (augmented["states"] == 0).all(-1)).all()

    seen.clear()
    trainer.fit()  # one training step, then the dev pass
    training = [s for s in seen if s["training"]]
    dev = [s for s in seen if not s["training"]]
    assert training and dev
    clean_key, student_key = ("teacher", "features") if encoder == "trained" else ("teacher_states", "states")
    assert all(not torch.equal(s[student_key], s[clean_key]) for s in training)
    assert all(torch.equal(s[student_key], s[clean_key]) for s in dev)


@pytest.fixture(scope="module")
def stored_corpus(tiny_whisper_dir, speak, tmp_path_factory):
    """4 cuts labelled by the tiny teacher with stored top-8 targets and decoder states."""
    from udistil.teacher.kd_targets import TargetSpec
    from udistil.teacher.pseudo_label import pseudo_label
    from udistil.teacher.transcriber import DecodeOptions, Transcriber

    root = tmp_path_factory.mktemp("stored")
    cuts = [make_cut(root, f"s{i}", speak(t), "en", None) for i, t in enumerate(TRAIN_TEXTS[:4])]
    raw = write_cuts(cuts, root / "raw.jsonl.gz")
    spec = TargetSpec(topk=8, temperature=2.0, keep_hidden=True)
    transcriber = Transcriber.from_spec(str(tiny_whisper_dir), DecodeOptions(targets=spec, budget_per_second=4))
    out = root / "labelled.jsonl.gz"
    pseudo_label(raw, out, transcriber, targets_dir=root / "targets")
    return out


@pytest.fixture(scope="module")
def clip_student_dir(tiny_whisper_dir, tmp_path_factory):
    from udistil.models.audio_context import AudioContext

    return make_student(str(tiny_whisper_dir), tmp_path_factory.mktemp("clip") / "student_2-1",
                        decoder_layers=1, context=AudioContext("clip", 32, 64))


def directory_bytes(root: Path) -> dict:
    """Every file's bytes, but the writer's lock file (its pid and start time)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix != ".lock"}


def test_spec_augment_on_cached_states_leaves_the_cache_and_the_stored_targets_alone(
        tiny_whisper_dir, clip_student_dir, stored_corpus, tmp_path, monkeypatch):
    """Stored targets and a frozen-encoder cache: the decoder reads time-masked copies of the
    cached states; the cache is byte for byte the one an unaugmented run writes, the stored
    targets reach the loss unchanged, and a resumed augmented run draws the same masks."""
    import dataclasses

    import udistil.student.trainer as trainer_module
    from udistil.student.augment import SpecAugment
    from udistil.student.trainer import train

    calls = {"states": 0, "features": 0}
    real_states, real_features = SpecAugment.mask_states, SpecAugment.mask_features

    def count(kind, real):
        def wrapped(self, *args, **kwargs):
            calls[kind] += 1
            return real(self, *args, **kwargs)
        return wrapped

    monkeypatch.setattr(SpecAugment, "mask_states", count("states", real_states))
    monkeypatch.setattr(SpecAugment, "mask_features", count("features", real_features))
    targets = []
    real_loss = trainer_module.distillation_loss

    def recording_loss(*args, stored=None, **kwargs):
        targets.append([x.clone() for x in (stored.ids, stored.logprobs, stored.mask, stored.hidden)])
        return real_loss(*args, stored=stored, **kwargs)

    monkeypatch.setattr(trainer_module, "distillation_loss", recording_loss)

    def config(name, augment, **run):
        return DistillConfig(
            teacher=str(tiny_whisper_dir), student=str(clip_student_dir), train=str(stored_corpus),
            dev=str(stored_corpus), exp=str(tmp_path / name), data=DataOptions(batch_size=2, num_buckets=1),
            optim=OptimOptions(lr=2e-3, warmup_steps=1, max_steps=4),
            run=RunOptions(checkpoint_every=2, valid_every=100, encoder_cache=str(tmp_path / f"cache_{name}"), **run),
            augment=spec_options(spec_augment=augment))

    plain = train(config("plain", False))
    plain_targets, targets[:] = list(targets), []
    assert calls == {"states": 0, "features": 0}
    augmented = train(config("augmented", True))
    assert plain["teacher"] == augmented["teacher"] == "stored"
    assert augmented["encoder_cache"]["loaded"] > 0 and augmented["encoder_forwards"] == 0
    assert calls["states"] >= 4 and calls["features"] == 0  # every training batch, no dev batch
    assert directory_bytes(tmp_path / "cache_plain") == directory_bytes(tmp_path / "cache_augmented")
    assert len(targets) == len(plain_targets)
    for a, b in zip(targets, plain_targets):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert losses(tmp_path / "augmented") != pytest.approx(losses(tmp_path / "plain"), rel=1e-6, abs=0)

    # Exact resume: the masks of steps 3 and 4 are those of the uninterrupted run.
    cache_before = directory_bytes(tmp_path / "cache_augmented")
    resumed = config("augmented", True)
    train(dataclasses.replace(resumed, exp=str(tmp_path / "resumed"),
                              run=dataclasses.replace(resumed.run, stop_after_steps=2)))
    train(dataclasses.replace(resumed, exp=str(tmp_path / "resumed"),
                              run=dataclasses.replace(resumed.run, resume=True)))
    assert losses(tmp_path / "resumed") == pytest.approx(losses(tmp_path / "augmented"), rel=1e-6, abs=0)
    assert directory_bytes(tmp_path / "cache_augmented") == cache_before


# ----- soft selection: each cut's loss weighted by its filter score (student/cut_weights.py) -----

def weighted_loss_inputs(stored: bool):
    """Logits, labels (padded), teacher (live logits or stored top-k) and decoder states of 3 cuts."""
    from udistil.student.loss import StoredTeacher

    g = torch.Generator().manual_seed(0)
    batch, width, vocab, d = 3, 6, 40, 4
    student = torch.randn(batch, width, vocab, generator=g).requires_grad_(True)
    hidden = torch.randn(batch, width, d, generator=g).requires_grad_(True)
    labels = torch.randint(0, vocab, (batch, width), generator=g)
    labels[0, 4:] = IGNORE_INDEX
    labels[2, 2:] = IGNORE_INDEX
    teacher_hidden = torch.randn(batch, width, d, generator=g)
    teacher = torch.randn(batch, width, vocab, generator=g)
    if not stored:
        return student, hidden, labels, {"teacher_logits": teacher, "teacher_hidden": teacher_hidden}
    top = torch.log_softmax(teacher / 2.0, -1).topk(8, dim=-1)
    mask = labels != IGNORE_INDEX
    mask[1, 0] = False  # a prompt position: no stored row
    return student, hidden, labels, {"teacher_logits": None,
                                     "stored": StoredTeacher(top.indices, top.values, mask, teacher_hidden)}


def loss_and_grads(student, hidden, labels, teacher, rows=None, cut_weights=None):
    """distillation_loss and its gradients w.r.t. the student's logits and states; `rows`: on
    the batch of those cuts only."""
    from udistil.student.loss import StoredTeacher

    student.grad = hidden.grad = None
    s, h, lab, teacher = student, hidden, labels, dict(teacher)
    if rows is not None:
        pick = torch.tensor(rows)
        s, h, lab = student[pick], hidden[pick], labels[pick]
        teacher = {k: (v[pick] if isinstance(v, torch.Tensor) else v) for k, v in teacher.items()}
        if teacher.get("stored") is not None:
            st = teacher["stored"]
            teacher["stored"] = StoredTeacher(st.ids[pick], st.logprobs[pick], st.mask[pick], st.hidden[pick])
    weights = LossWeights(alpha_ce=0.7, alpha_kl=1.3, temperature=2.0, alpha_mse=0.5)
    parts = distillation_loss(s, teacher.pop("teacher_logits"), lab, weights, student_hidden=h,
                              cut_weights=cut_weights, **teacher)
    parts.total.backward()
    return parts, student.grad.clone(), hidden.grad.clone()


@pytest.mark.parametrize("stored", [False, True], ids=["live", "stored"])
def test_cut_weights_of_one_give_the_unweighted_loss_and_weight_zero_removes_a_cut(stored):
    student, hidden, labels, teacher = weighted_loss_inputs(stored)
    plain, plain_grad, plain_hidden_grad = loss_and_grads(student, hidden, labels, teacher)
    ones, ones_grad, ones_hidden_grad = loss_and_grads(student, hidden, labels, teacher,
                                                       cut_weights=torch.ones(3))
    for a, b in ((plain.total, ones.total), (plain.ce, ones.ce), (plain.kl, ones.kl), (plain.mse, ones.mse),
                 (plain_grad, ones_grad), (plain_hidden_grad, ones_hidden_grad)):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-9)
    assert plain.n_tokens == ones.n_tokens

    # Weight 0 on cut 1: the loss and gradients of the batch without it; no gradient reaches it.
    zero, zero_grad, zero_hidden_grad = loss_and_grads(student, hidden, labels, teacher,
                                                       cut_weights=torch.tensor([1.0, 0.0, 1.0]))
    without, without_grad, without_hidden_grad = loss_and_grads(student, hidden, labels, teacher, rows=[0, 2])
    assert torch.allclose(zero.total, without.total, rtol=1e-6, atol=1e-9)
    assert torch.allclose(zero_grad[[0, 2]], without_grad[[0, 2]], rtol=1e-6, atol=1e-9)
    assert torch.allclose(zero_hidden_grad[[0, 2]], without_hidden_grad[[0, 2]], rtol=1e-6, atol=1e-9)
    assert not zero_grad[1].any() and not zero_hidden_grad[1].any()
    assert zero.n_tokens == without.n_tokens

    # Weights scale each cut's token sum: sum_c w_c sum_t l / sum_c w_c n_c, here for the CE.
    w = torch.tensor([0.2, 0.5, 1.0])
    weighted, _, _ = loss_and_grads(student, hidden, labels, teacher, cut_weights=w)
    token_ce = torch.nn.functional.cross_entropy(student.detach().transpose(1, 2), labels, reduction="none")
    real = labels != IGNORE_INDEX
    by_hand = sum(w[c] * token_ce[c][real[c]].sum() for c in range(3)) / sum(w[c] * real[c].sum() for c in range(3))
    assert torch.allclose(weighted.ce, by_hand, rtol=1e-6)
    assert not torch.allclose(weighted.ce, plain.ce, rtol=1e-3)


def test_weight_by_takes_only_a_0_100_higher_is_worse_filter():
    from udistil.errors import UdistilError
    from udistil.student.cut_weights import check_weight_filter, cut_weight

    for name in ("fusion", "proxy_wer", "oracle_wer", "consistency"):
        check_weight_filter(name)
    with pytest.raises(UdistilError, match="--weight-by confidence: .*higher is better.*not on a 0-100 scale"):
        check_weight_filter("confidence")
    with pytest.raises(UdistilError, match="--weight-by nll: .*not on a 0-100 scale"):
        check_weight_filter("nll")
    with pytest.raises(UdistilError, match="unknown filter 'fusoin'"):
        check_weight_filter("fusoin")

    def cut(score):
        custom = {"teacher_text": "x"} if score is None else {"teacher_text": "x", "fusion": score}
        return MonoCut(id="c", start=0.0, duration=1.0, channel=0, recording=None, supervisions=[
            SupervisionSegment(id="c", recording_id="c", start=0.0, duration=1.0, custom=custom)])

    assert [cut_weight(cut(s), "fusion") for s in (0, 25.0, 100, 140.0, -3, None, float("nan"))] == \
        [1.0, 0.75, 0.0, 0.0, 1.0, None, None]


def test_a_weighted_run_logs_its_mean_weight_and_counts_cuts_without_a_score(
        tiny_whisper_dir, student_dir, corpus, tmp_path):
    """--weight-by fusion on the live-teacher path: every train batch is weighted (a cut
    without a score at 0), the dev loss is not (the dev cuts have no score at all)."""
    import dataclasses

    from udistil.errors import UdistilError
    from udistil.student.trainer import train

    scores = [10.0, 30.0, None, 50.0, 120.0, 0.0]  # weights 0.9, 0.7, 0 (missing), 0.5, 0, 1
    cuts = []
    for c, score in zip(read_cuts(corpus["train"]), scores):
        if score is not None:
            c.supervisions[0].custom["fusion"] = score
        cuts.append(c)
    scored = {**corpus, "train": write_cuts(cuts, tmp_path / "scored.jsonl.gz")}

    def config(data, exp, weight_by="fusion"):
        c = distill_config(tiny_whisper_dir, student_dir, data, tmp_path / exp)
        return dataclasses.replace(c, optim=dataclasses.replace(c.optim, max_steps=3),
                                   loss=dataclasses.replace(c.loss, weight_by=weight_by))

    summary = train(config(scored, "exp"))
    [epoch] = summary["loss_weights"]["epochs"]  # 6 cuts, batches of 2: one epoch in 3 steps
    assert epoch == {"epoch": 0, "mean_weight": pytest.approx((0.9 + 0.7 + 0.5 + 1.0) / 6), "cuts": 6,
                     "unscored_cuts": 1}
    assert math.isfinite(summary["best_dev_loss"])  # an unweighted dev loss: its cuts have no score
    unweighted = train(config(scored, "plain", weight_by=None))
    assert unweighted["loss_weights"] is None
    assert losses(tmp_path / "exp") != pytest.approx(losses(tmp_path / "plain"), rel=1e-6, abs=0)
    with pytest.raises(UdistilError, match="no cut has a fusion score"):
        train(config(corpus, "none_scored"))
    with pytest.raises(UdistilError, match="--weight-by confidence"):
        train(config(scored, "bad_filter", weight_by="confidence"))


@pytest.mark.parametrize("argv, named", [
    (["--batch-size", "0"], "--batch-size"),
    (["--lr", "-1"], "--lr"),
    (["--num-epochs", "0"], "--num-epochs"),
    (["--max-steps", "0"], "--max-steps"),
    (["--temperature", "0"], "--temperature"),
    (["--alpha-kl", "-1"], "--alpha-kl"),
])
def test_a_distillation_option_out_of_range_stops_before_anything_is_written(tmp_path, capsys, argv, named):
    # A batch of 0 or a negative learning rate was a traceback from inside training; 0 epochs or
    # steps "finished" and exported the untrained student as best/.
    from udistil.bin.main import main

    exp = tmp_path / "exp"
    rc = main(["distill", "--teacher", "t", "--student", "s", "--train", "train.jsonl.gz", "--dev", "dev.jsonl.gz",
               "--exp", str(exp), *argv])
    err = capsys.readouterr().err
    assert rc != 0 and named in err and "Traceback" not in err
    assert not exp.exists()


def test_an_encoder_cache_batch_of_zero_is_a_usage_error(tmp_path, capsys):
    from udistil.bin.main import main

    rc = main(["encoder-cache", "--teacher", "t", "--student", "s", "--in", "cuts.jsonl.gz",
               "--cache", str(tmp_path / "cache"), "--batch-size", "0"])
    err = capsys.readouterr().err
    assert rc != 0 and "--batch-size" in err and "Traceback" not in err
    assert not (tmp_path / "cache").exists()
