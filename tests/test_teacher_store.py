"""The teacher computed once (stage 3's stored targets), dynamic audio context, decoder-only
training from a frozen-encoder cache.  Tiny random Whisper models and espeak-ng cuts."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from udistil.data.manifests import read_cuts, write_cuts
from udistil.errors import UdistilError
from udistil.models.audio_context import AudioContext, encode
from udistil.student.config import DataOptions, DistillConfig, OptimOptions, RunOptions
from udistil.student.data import DistillDataset, LabelEncoder
from udistil.student.init import make_student
from udistil.student.loss import LossWeights, StoredTeacher, distillation_loss, topk_kl
from udistil.student.stored_targets import StoredTargets
from udistil.teacher.kd_targets import TargetSpec
from udistil.teacher.pseudo_label import pseudo_label
from udistil.teacher.transcriber import DecodeOptions, Transcriber

from test_student_distill import make_cut

TEXTS = ["the cat sat on the mat", "hello world", "speech recognition is fun", "one two three four"]
VOCAB = 51865


def load(path):
    from udistil.models.spec import load_whisper

    return load_whisper(str(path))


def log_softmax64(row):
    row = row.double()
    return row - torch.logsumexp(row, dim=-1, keepdim=True)


def test_topk_kl_equals_full_kl_with_the_whole_vocabulary_and_bounds_it_below():
    torch.manual_seed(0)
    teacher = torch.randn(5, 300) * 3
    student = torch.randn(5, 300) * 3
    t_logp, s_logp = log_softmax64(teacher), log_softmax64(student)
    full = (t_logp.exp() * (t_logp - s_logp)).sum(-1)  # by hand, float64
    everything = t_logp.topk(300, dim=-1)
    assert torch.allclose(topk_kl(s_logp, everything.indices, everything.values), full, atol=1e-9)
    for k in (1, 10, 100):
        top = t_logp.topk(k, dim=-1)
        truncated = topk_kl(s_logp, top.indices, top.values)
        # Collapsing the tail into one outcome never raises the KL (log-sum inequality)...
        assert (truncated <= full + 1e-9).all()
        # ...and it is computed by hand the same way: top-k terms plus one rest term.
        rest_t = 1 - top.values.exp().sum(-1)
        rest_s = 1 - s_logp.gather(1, top.indices).exp().sum(-1)
        by_hand = (top.values.exp() * (top.values - s_logp.gather(1, top.indices))).sum(-1) \
            + rest_t * (rest_t.log() - rest_s.log())
        assert torch.allclose(truncated, by_hand, atol=1e-7)
    assert (topk_kl(s_logp, *reversed(t_logp.topk(100, dim=-1))) - full).abs().max() < \
        (topk_kl(s_logp, *reversed(t_logp.topk(10, dim=-1))) - full).abs().max()


@pytest.fixture(scope="module")
def labelled(tiny_whisper_dir, speak, tmp_path_factory):
    """4 English cuts labelled by the tiny teacher, with full-vocabulary stored targets."""
    root = tmp_path_factory.mktemp("store")
    cuts = [make_cut(root, f"c{i}", speak(t), "en", None) for i, t in enumerate(TEXTS)]
    raw = write_cuts(cuts, root / "raw.jsonl.gz")
    spec = TargetSpec(topk=VOCAB, temperature=2.0, keep_hidden=True)
    transcriber = Transcriber.from_spec(str(tiny_whisper_dir), DecodeOptions(targets=spec, budget_per_second=4))
    out = root / "labelled.jsonl.gz"
    pseudo_label(raw, out, transcriber, targets_dir=root / "targets")
    return {"root": root, "cuts": out, "targets": root / "targets"}


def stored_batch(tiny_whisper_dir, cuts, teacher_id, temperature=2.0):
    from udistil.models.identity import model_identity

    _, processor = load(tiny_whisper_dir)
    labels = LabelEncoder(processor.tokenizer, multilingual=True, max_length=448)
    targets = StoredTargets(model_identity(teacher_id) if teacher_id else None, temperature, "test",
                            want_hidden=True)
    targets.check(cuts)  # as the trainer does, once, before any batch
    return DistillDataset(processor.feature_extractor, labels, targets=targets, source="test")[cuts]


def batch_teacher_and_student(tiny_whisper_dir, labelled):
    """The labelled cuts' stored batch, the tiny teacher, and a student that differs from it."""
    batch = stored_batch(tiny_whisper_dir, read_cuts(labelled["cuts"]), tiny_whisper_dir)
    teacher, _ = load(tiny_whisper_dir)
    student, _ = load(tiny_whisper_dir)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return batch, teacher, student


def test_stored_targets_give_the_live_teachers_kl_and_ce(tiny_whisper_dir, labelled):
    assert all(c.custom["kd_targets"]["rows"] >= 1 for c in read_cuts(labelled["cuts"]))
    batch, teacher, student = batch_teacher_and_student(tiny_whisper_dir, labelled)
    with torch.no_grad():
        live = teacher(input_features=batch["input_features"], decoder_input_ids=batch["decoder_input_ids"],
                       use_cache=False)
        s_logits = student(input_features=batch["input_features"],
                           decoder_input_ids=batch["decoder_input_ids"], use_cache=False).logits
    stored = StoredTeacher(batch["kd_ids"], batch["kd_logprobs"], batch["kd_mask"], batch["kd_hidden"])
    weights = LossWeights(alpha_ce=0.8, alpha_kl=1.0, temperature=2.0, alpha_mse=0.0)
    parts = distillation_loss(s_logits, None, batch["labels"], weights, stored=stored)

    mask, labels = batch["kd_mask"], batch["labels"]
    assert mask.sum() > 4
    kl_sum = n = 0
    for b, t in mask.nonzero().tolist():
        logp_t = log_softmax64(live.logits[b, t] / 2.0)
        logp_s = log_softmax64(s_logits[b, t] / 2.0)
        kl_sum += float((logp_t.exp() * (logp_t - logp_s)).sum())
        n += 1
    real = labels != -100
    ce = float(torch.nn.functional.cross_entropy(s_logits[real].double(), labels[real]))
    assert kl_sum / n > 1e-3
    assert math.isclose(float(parts.kl), kl_sum / n, rel_tol=2e-3)
    assert math.isclose(float(parts.ce), ce, rel_tol=1e-5)
    # The stored rows are the live teacher's: the same top token at every stored position.
    assert torch.equal(batch["kd_ids"][mask][:, 0], live.logits[mask].argmax(-1))


def test_the_live_teacher_gives_the_stored_decoder_state_mse(tiny_whisper_dir, labelled):
    """--alpha-mse reads the teacher's last decoder states from the store, or from the live
    teacher when a manifest has no store: the same loss on the same positions."""
    from udistil.student.forward import DistillForward, StudentForward

    batch, teacher, student = batch_teacher_and_student(tiny_whisper_dir, labelled)
    with torch.no_grad():
        live = DistillForward(teacher, StudentForward(student, frozen_encoder=False),
                              frozen_encoder=False, share_encoder=False)
        out = live(batch["input_features"], batch["decoder_input_ids"])
    # The positions that have a stored row (a clip cut at its budget stores none for the
    # end token its label still carries).
    mask = batch["kd_mask"]
    labels = batch["labels"].masked_fill(~mask, -100)
    weights = LossWeights(alpha_mse=1.0)
    live_parts = distillation_loss(out.student_logits, out.teacher_logits, labels, weights,
                                   student_hidden=out.student_hidden, teacher_hidden=out.teacher_hidden)
    stored = StoredTeacher(batch["kd_ids"], batch["kd_logprobs"], mask, batch["kd_hidden"])
    stored_parts = distillation_loss(out.student_logits, None, labels, weights, stored=stored,
                                     student_hidden=out.student_hidden)
    by_hand = float(((out.student_hidden[mask].double() - out.teacher_hidden[mask].double()) ** 2).mean())
    assert by_hand > 1e-3
    assert math.isclose(float(live_parts.mse), by_hand, rel_tol=1e-5)
    # The store keeps the states in float16.
    assert math.isclose(float(stored_parts.mse), by_hand, rel_tol=1e-2)


def test_a_store_labelled_from_a_relative_dir_reads_from_anywhere(tiny_whisper_dir, speak, tmp_path, monkeypatch):
    """run.sh labels with relative paths (exp/teacher/...); a student trained from another
    directory must still find the arrays."""
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    monkeypatch.chdir(recipe)
    raw = write_cuts([make_cut(recipe, "r0", speak(TEXTS[1]), "en", None)], Path("raw.jsonl.gz"))
    transcriber = Transcriber.from_spec(str(tiny_whisper_dir),
                                        DecodeOptions(targets=TargetSpec(topk=8, keep_hidden=True), budget_per_second=4))
    pseudo_label(raw, Path("labelled.jsonl.gz"), transcriber, targets_dir=Path("exp/targets"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cuts = read_cuts(recipe / "labelled.jsonl.gz")
    batch = stored_batch(tiny_whisper_dir, cuts, tiny_whisper_dir)
    assert batch["kd_mask"].sum() >= 1


def test_a_store_from_another_teacher_or_other_cuts_is_refused(tiny_whisper_dir, labelled, tmp_path):
    from udistil.models.tiny import build_tiny_whisper

    cuts = read_cuts(labelled["cuts"])
    other = build_tiny_whisper(tmp_path / "other_teacher", seed=7)
    with pytest.raises(UdistilError, match=r"cut c\d: its teacher targets were made by another teacher"):
        stored_batch(tiny_whisper_dir, cuts, other)
    with pytest.raises(UdistilError, match="temperature 2.0, training asks for 1.0"):
        stored_batch(tiny_whisper_dir, cuts, tiny_whisper_dir, temperature=1.0)
    # Targets attached to a cut whose label they were not computed on (another cut's store).
    a, b = list(cuts)[:2]
    for name in ("kd_topk_ids", "kd_topk_logprobs", "kd_decoder_hidden", "kd_targets"):
        a.custom[name] = b.custom[name]
    with pytest.raises(UdistilError, match="cut c0: its stored teacher targets belong to another label"):
        stored_batch(tiny_whisper_dir, [a], tiny_whisper_dir)
    # And a store directory made with other options refuses to be extended.
    from udistil.teacher.kd_targets import TargetStore

    with pytest.raises(UdistilError, match="holds distillation targets made with"):
        TargetStore(labelled["targets"], TargetSpec(topk=8), "someid", "x")


def test_dynamic_context_encoder_uses_only_the_clips_positions(tiny_whisper_dir):
    model, _ = load(tiny_whisper_dir)
    encoder = model.model.encoder.eval()
    context = AudioContext("clip", margin=32, quantum=64)
    seen = []
    handle = encoder.layers[0].register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape[1]))
    features = torch.randn(2, 80, 3000)
    positions = context.positions(3 * 16000)  # 3 s: 150 + 32 = 182 -> 192
    assert positions == 192
    with torch.no_grad():
        out = encode(encoder, features, positions)
        full = encoder(features).last_hidden_state
    handle.remove()
    assert out.shape == (2, 192, encoder.config.d_model)
    assert seen == [192, 1500]
    # The full rule reproduces the stock encoder exactly.
    with torch.no_grad():
        assert torch.equal(encode(encoder, features), full)
    assert AudioContext().positions(3 * 16000) == 1500
    assert context.positions(40 * 16000) == 1500


@pytest.fixture(scope="module")
def clip_student(tiny_whisper_dir, tmp_path_factory):
    return make_student(str(tiny_whisper_dir), tmp_path_factory.mktemp("clip") / "student_2-1",
                        decoder_layers=1, context=AudioContext("clip", 32, 64))


def test_decoding_a_clip_context_student_encodes_fewer_positions(tiny_whisper_dir, clip_student, labelled):
    from udistil.evaluate.decode import decode_cuts

    raw = labelled["root"] / "raw.jsonl.gz"
    stats = {}
    for name, model in (("teacher", tiny_whisper_dir), ("student", clip_student)):
        transcriber = Transcriber.from_spec(str(model), DecodeOptions(budget_per_second=2))
        decode_cuts(raw, labelled["root"] / f"decode_{name}", transcriber)
        stats[name] = transcriber.stats
    n = len(read_cuts(raw))
    assert stats["teacher"]["encoder_positions"] == 1500 * n
    assert 0 < stats["student"]["encoder_positions"] <= 256 * n
    assert json.loads((clip_student / "config.json").read_text())["udistil_audio_context"]["rule"] == "clip"


def test_a_finished_decode_is_reused_only_for_the_same_model(tiny_whisper_dir, clip_student, labelled):
    """Stage 7 reruns keep a decode of the same model, input and options; a decode folder
    made by another model (a student trained again) stops the run, naming the folder, and
    --redo-stale redoes it."""
    from udistil.bin.main import main
    from udistil.evaluate.decode import decode_cuts
    from udistil.parallel.fingerprint import StaleOutputError

    raw = labelled["root"] / "raw.jsonl.gz"
    out = labelled["root"] / "decode_reuse"
    first = decode_cuts(raw, out, Transcriber.from_spec(str(tiny_whisper_dir)))
    assert first["n"] == len(read_cuts(raw))
    stamp = (out / "wer.json").stat().st_mtime_ns
    assert decode_cuts(raw, out, Transcriber.from_spec(str(tiny_whisper_dir))) == {}  # reused
    assert (out / "wer.json").stat().st_mtime_ns == stamp
    with pytest.raises(StaleOutputError, match="decode_reuse.*model changed"):
        decode_cuts(raw, out, Transcriber.from_spec(str(clip_student)))
    assert (out / "wer.json").stat().st_mtime_ns == stamp  # nothing lost by the refusal
    assert main(["decode", "--model", str(clip_student), "--in", str(raw), "--out", str(out)]) == 1
    assert main(["decode", "--model", str(clip_student), "--in", str(raw), "--out", str(out),
                 "--redo-stale"]) == 0
    assert json.loads((out / "wer.json").read_text())["model"] == Transcriber.from_spec(str(clip_student)).name


def test_training_never_runs_the_teacher_and_a_resumed_run_reuses_the_stores(
        tiny_whisper_dir, clip_student, labelled, tmp_path, monkeypatch):
    import udistil.models.spec as spec
    from udistil.student.trainer import train

    real_load = spec.load_whisper

    def load_no_teacher(path, *a, **k):
        assert Path(str(path)).resolve() != Path(tiny_whisper_dir).resolve(), "the teacher was loaded"
        return real_load(path, *a, **k)

    monkeypatch.setattr(spec, "load_whisper", load_no_teacher)
    cuts = labelled["cuts"]

    def config(**run):
        return DistillConfig(
            teacher=str(tiny_whisper_dir), student=str(clip_student), train=str(cuts), dev=str(cuts),
            exp=str(tmp_path / "exp"), data=DataOptions(batch_size=4),
            optim=OptimOptions(lr=1e-3, warmup_steps=1, max_steps=4),
            run=RunOptions(checkpoint_every=1, valid_every=100, encoder_cache=str(tmp_path / "cache"), **run))

    first = train(config(stop_after_steps=2))
    assert first["teacher"] == "stored" and first["frozen_encoder"]
    assert first["encoder_cache"]["computed"] == 4  # each cut encoded once, at its clip length
    assert first["encoder_cache"]["loaded"] > 0     # later batches and the dev pass read them
    second = train(config(resume=True))
    assert second["finished"] and second["steps"] == 4
    assert second["encoder_cache"]["computed"] == 0
    assert second["encoder_cache"]["loaded"] >= 4
    rows = [json.loads(x) for x in (tmp_path / "exp" / "log" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(math.isfinite(r["kl"]) for r in rows)


def test_a_labeller_other_than_the_teacher_is_trained_from_its_own_store_only(
        tiny_whisper_dir, clip_student, labelled, tmp_path):
    """A later round of self-training: the cuts were labelled, with stored targets, by another
    model than the one the student was made from.  --labeller names it (the store is then
    accepted, and recorded); without a store it is refused, as the live teacher is not it."""
    from udistil.models.tiny import build_tiny_whisper
    from udistil.student.trainer import train
    from udistil.teacher.kd_targets import ARRAYS, INFO_KEY

    made_from = build_tiny_whisper(tmp_path / "made_from", seed=7)

    def config(data, exp, labeller=None):
        return DistillConfig(
            teacher=str(made_from), labeller=labeller, student=str(clip_student), train=str(data),
            dev=str(data), exp=str(tmp_path / exp), data=DataOptions(batch_size=4),
            optim=OptimOptions(lr=1e-3, warmup_steps=1, max_steps=1), run=RunOptions(valid_every=100))

    cuts = labelled["cuts"]
    with pytest.raises(UdistilError, match="made by another teacher"):
        train(config(cuts, "no_labeller"))
    summary = train(config(cuts, "labeller", labeller=str(tiny_whisper_dir)))
    assert summary["teacher"] == "stored" and summary["finished"]
    assert json.loads((tmp_path / "labeller/config.json").read_text())["labeller"] == str(tiny_whisper_dir)
    assert "labeller" not in config(cuts, "x").to_dict()  # a run without one writes the config it always did
    bare = list(read_cuts(cuts))
    for cut in bare:
        for key in (INFO_KEY, *ARRAYS):
            cut.custom.pop(key, None)
    bare = write_cuts(bare, tmp_path / "bare.jsonl.gz")
    with pytest.raises(UdistilError, match="--labeller .* needs the distillation targets it stored"):
        train(config(bare, "bare", labeller=str(tiny_whisper_dir)))


def test_decoding_a_set_whose_every_cut_is_unusable_still_scores_it(tiny_whisper_dir, speak, tmp_path):
    from udistil.evaluate.decode import decode_cuts

    cut = make_cut(tmp_path, "gone", speak("hello"), "en", None)
    cut.supervisions[0].text = "hello"
    manifest = write_cuts([cut], tmp_path / "test.jsonl.gz")
    Path(cut.recording.sources[0].source).unlink()
    result = decode_cuts(manifest, tmp_path / "decode", Transcriber.from_spec(str(tiny_whisper_dir)))
    assert result["wer"] == 100.0
    row = json.loads((tmp_path / "decode" / "hyps.jsonl").read_text().splitlines()[0])
    assert row["id"] == "gone" and row["hyp"] == ""
    assert json.loads((tmp_path / "decode" / "wer.json").read_text())["skipped"] == 1
