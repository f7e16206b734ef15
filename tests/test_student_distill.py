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
    with pytest.raises(UdistilError, match="--dropout"):
        set_decoder_dropout(decoder, 1.0)


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
