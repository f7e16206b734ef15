"""Encoder adaptation (`--train-encoder-layers K`): only the top K encoder layers and the
encoder's layer_norm train, the frozen bottom runs without autograd (or from the encoder
cache, which then holds the bottom's states).  Tiny random Whisper (2 encoder layers) and a
few espeak-ng cuts labelled with stored teacher targets."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from udistil.errors import UdistilError
from udistil.student.config import DataOptions, DistillConfig, OptimOptions, RunOptions
from udistil.student.init import make_student
from udistil.student.loss import LossWeights

from test_data_scale import label
from test_student_distill import losses, make_cut

TEXTS = ["the cat sat on the mat", "hello world", "speech recognition is fun", "one two three four"]
TOP = ("model.encoder.layers.1.", "model.encoder.layer_norm.")  # what K = 1 of 2 trains


def load(path):
    from udistil.models.spec import load_whisper

    return load_whisper(str(path))


@pytest.fixture(scope="module")
def cuts(tiny_whisper_dir, speak, tmp_path_factory):
    """4 cuts labelled by the tiny teacher, with stored targets (train and dev alike)."""
    root = tmp_path_factory.mktemp("adapt_cuts")
    raw = [make_cut(root, f"a{i}", speak(t), "en", None) for i, t in enumerate(TEXTS)]
    return label(tiny_whisper_dir, raw, root, "cuts", False, root / "targets")


@pytest.fixture(scope="module")
def student_dir(tiny_whisper_dir, tmp_path_factory):
    """A 2-1 student (the teacher's whole 2-layer encoder) with dropout 0.1 everywhere, so a
    frozen part left in train mode, or a resume without the random generators, shows."""
    out = make_student(str(tiny_whisper_dir), tmp_path_factory.mktemp("adapt") / "student_2-1",
                       decoder_layers=1)
    config = json.loads((out / "config.json").read_text())
    config["dropout"] = 0.1
    (out / "config.json").write_text(json.dumps(config))
    return out


def config(teacher, student_dir, cuts, exp, optim=None, **run):
    return DistillConfig(
        teacher=str(teacher), student=str(student_dir), train=str(cuts), dev=str(cuts), exp=str(exp),
        data=DataOptions(batch_size=2, num_buckets=1),
        optim=optim or OptimOptions(lr=2e-3, warmup_steps=1, max_steps=4),
        run=RunOptions(valid_every=100, checkpoint_every=2, **run), loss=LossWeights(alpha_mse=0.0))


def is_top(name: str) -> bool:
    return name.startswith(TOP)


def test_the_bottom_then_the_top_is_the_whole_encoder(tiny):
    from udistil.models.audio_context import encode, encode_bottom, encode_top

    model, _ = tiny
    encoder = model.model.encoder.eval()
    features = torch.randn(2, 80, 3000)
    with torch.no_grad():
        stock = encoder(features).last_hidden_state
        assert torch.allclose(encode(encoder, features), stock, atol=1e-5)  # the split changed nothing
        for positions in (128, 1500):
            whole = encode(encoder, features, positions)
            for bottom in range(len(encoder.layers) + 1):
                states = encode_bottom(encoder, features, positions, bottom)
                assert states.shape == (2, positions, model.config.d_model)
                assert torch.allclose(encode_top(encoder, states, bottom), whole, atol=1e-6), (positions, bottom)
        # The bottom's states are not the output: the top layer and the layer_norm still apply.
        assert not torch.allclose(encode_bottom(encoder, features, 128, 1), encode(encoder, features, 128), atol=1e-2)


def test_the_frozen_bottom_has_no_dropout_and_the_trained_top_has(student_dir):
    from udistil.models.audio_context import encode_bottom, encode_top
    from udistil.student.forward import frozen_encoder_parts_to_eval, set_encoder_training

    student, _ = load(student_dir)
    set_encoder_training(student, 1)
    trained = sorted(n for n, p in student.model.encoder.named_parameters() if p.requires_grad)
    assert trained and all(n.startswith(("layers.1.", "layer_norm.")) for n in trained)
    assert {"layer_norm.weight", "layers.1.fc1.weight"} <= set(trained)
    student.train()
    frozen_encoder_parts_to_eval(student)
    encoder = student.model.encoder
    features = torch.randn(1, 80, 3000)
    torch.manual_seed(0)
    with torch.no_grad():
        bottom = encode_bottom(encoder, features, 64, 1)
        assert torch.equal(bottom, encode_bottom(encoder, features, 64, 1))  # front end and layer 0: eval
        assert not torch.equal(encode_top(encoder, bottom, 1), encode_top(encoder, bottom, 1))  # layer 1: train


def test_the_number_of_trained_layers_and_its_refusals(tiny_whisper_dir, student_dir, cuts, tmp_path):
    from transformers import WhisperConfig

    from udistil.student.trainer import trained_encoder_layers, train

    teacher, full = str(tiny_whisper_dir), WhisperConfig.from_pretrained(student_dir)
    assert trained_encoder_layers(teacher, full, None) == 0  # today's rule: keeps every layer -> frozen
    assert trained_encoder_layers(teacher, full, False) == 2 and trained_encoder_layers(teacher, full, True) == 0
    assert [trained_encoder_layers(teacher, full, None, k) for k in (0, 1, 2)] == [0, 1, 2]
    assert trained_encoder_layers(teacher, full, False, 2) == 2
    smaller = make_student(teacher, tmp_path / "student_1-1", encoder_layers=1, decoder_layers=1)
    assert trained_encoder_layers(teacher, WhisperConfig.from_pretrained(smaller), None) == 1
    for k in (-1, 3):
        with pytest.raises(UdistilError, match=rf"--train-encoder-layers {k}: the student's encoder has 2 layers"):
            trained_encoder_layers(teacher, full, None, k)
    with pytest.raises(UdistilError, match="disagree"):
        trained_encoder_layers(teacher, full, True, 1)
    with pytest.raises(UdistilError, match="--train-encoder trains all 2"):
        trained_encoder_layers(teacher, full, False, 1)
    # A training run refuses it before its first step.
    exp = tmp_path / "exp"
    with pytest.raises(UdistilError, match="--train-encoder-layers 3"):
        train(config(tiny_whisper_dir, student_dir, cuts, exp, train_encoder_layers=3))
    assert not (exp / "checkpoints").exists()


def test_top_k_training_changes_the_top_only_and_checkpoints_and_averages_it(
        tiny_whisper_dir, student_dir, cuts, tmp_path, caplog):
    from dataclasses import replace

    from safetensors.torch import load_file

    from udistil.student.checkpoint import latest_checkpoint
    from udistil.student.trainer import train

    init = load(student_dir)[0].state_dict()
    c = config(tiny_whisper_dir, student_dir, cuts, tmp_path / "exp", train_encoder_layers=1)
    c = replace(c, optim=replace(c.optim, average_decay=0.5))
    with caplog.at_level("INFO", logger="udistil.student.trainer"):
        summary = train(c)
    assert summary["finished"] and summary["trained_encoder_layers"] == 1 and summary["encoder_layers"] == 2
    assert not summary["frozen_encoder"]
    assert "top 1 of 2 layers (and layer_norm) trained" in caplog.text

    state = torch.load(latest_checkpoint(tmp_path / "exp") / "state.pt", weights_only=False)
    saved, frozen = set(state["model"]), set(state["frozen"]["names"])
    encoder_names = {n for n in init if n.startswith("model.encoder.")}
    top = {n for n in encoder_names if is_top(n)}
    # Lean checkpoint: the trained top is saved, the frozen bottom only referenced.
    assert top <= saved and not (encoder_names - top) & saved
    assert encoder_names - top <= frozen and not top & frozen
    assert {"model.encoder.conv1.weight", "model.encoder.embed_positions.weight",
            "model.encoder.layers.0.fc1.weight"} <= frozen
    # The weight average covers the trained top layer.
    assert top <= set(state["average"]["names"]) and not (encoder_names - top) & set(state["average"]["names"])
    for name in top:  # every trained encoder weight moved
        assert not torch.equal(state["model"][name], init[name]), name
    # best/ is a whole transformers directory: its encoder is the init's below, trained above.
    best = load_file(str(tmp_path / "exp" / "best" / "model.safetensors"))
    assert load(tmp_path / "exp" / "best")[0].config.encoder_layers == 2
    for name in encoder_names:
        if is_top(name):
            assert not torch.equal(best[name], init[name]), name
        else:
            assert torch.equal(best[name], init[name]), name


def test_a_resumed_top_k_run_ends_at_the_uninterrupted_weights(tiny_whisper_dir, student_dir, cuts, tmp_path):
    from udistil.student.checkpoint import latest_checkpoint
    from udistil.student.trainer import train

    def run(exp, **extra):
        return train(config(tiny_whisper_dir, student_dir, cuts, exp, train_encoder_layers=1, **extra))

    run(tmp_path / "full")
    assert not run(tmp_path / "killed", stop_after_steps=2)["finished"]
    assert run(tmp_path / "killed", resume=True)["finished"]
    assert losses(tmp_path / "killed") == losses(tmp_path / "full")
    full = torch.load(latest_checkpoint(tmp_path / "full") / "state.pt", weights_only=False)["model"]
    resumed = torch.load(latest_checkpoint(tmp_path / "killed") / "state.pt", weights_only=False)["model"]
    assert full.keys() == resumed.keys() and any(is_top(n) for n in full)
    for name in full:
        assert torch.equal(full[name], resumed[name]), name


def test_the_cache_holds_the_frozen_bottoms_states_and_is_read_back(tiny_whisper_dir, student_dir, cuts, tmp_path):
    from udistil.bin.main import main
    from udistil.models.audio_context import AudioContext, encode_bottom, log_mel
    from udistil.student.data import cut_num_samples
    from udistil.data.audio import load_cut_audio
    from udistil.data.manifests import read_cuts
    from udistil.student.encoder_cache import EncoderCache, encoder_identity
    from udistil.student.trainer import train

    cache = tmp_path / "cache"
    first = train(config(tiny_whisper_dir, student_dir, cuts, tmp_path / "exp1", train_encoder_layers=1,
                         encoder_cache=str(cache)))
    assert first["encoder_cache"]["built_before_training"] == 4 and first["encoder_cache"]["computed"] == 4
    assert first["encoder_forwards"] == 0  # the bottom never ran in a step: the top ran on its states
    (directory,) = [p for p in cache.iterdir() if p.is_dir()]
    assert json.loads((directory / "identity.json").read_text())["bottom_layers"] == 1

    # What is stored: the init student's states after encoder layer 0, [positions, d_model].
    student, processor = load(student_dir)
    encoder = student.model.encoder.eval()
    context = AudioContext.of(student)
    assert directory.name == encoder_identity(encoder, context, 1) != encoder_identity(encoder, context)
    reader = EncoderCache(cache, directory.name, {}, bottom_layers=1)
    cut = next(iter(read_cuts(cuts)))
    positions = context.positions(cut_num_samples(cut))
    stored = reader.get(cut.id, positions)
    assert stored.shape == (positions, student.config.d_model)
    with torch.no_grad():
        expected = encode_bottom(encoder, log_mel(processor.feature_extractor, [load_cut_audio(cut)], positions),
                                 positions, 1)[0].numpy()
    np.testing.assert_allclose(stored.astype(np.float32), expected, rtol=1e-2, atol=1e-2)

    second = train(config(tiny_whisper_dir, student_dir, cuts, tmp_path / "exp2", train_encoder_layers=1,
                          encoder_cache=str(cache)))
    assert second["encoder_cache"]["computed"] == 0 and second["encoder_forwards"] == 0
    assert second["encoder_cache"]["loaded"] >= 4

    # A sharded job with the same K finds everything cached (the same identity); without K it
    # builds the whole frozen encoder's cache beside it, never mixing the two.
    common = ["encoder-cache", "--teacher", str(tiny_whisper_dir), "--student", str(student_dir),
              "--in", str(cuts), "--cache", str(cache), "--device", "cpu"]
    assert main(common + ["--train-encoder-layers", "1", "--name", "job-k1"]) == 0
    assert not list(directory.glob("job-k1*"))  # nothing left to encode
    assert main(common + ["--name", "job-frozen"]) == 0
    others = [p for p in cache.iterdir() if p.is_dir() and p != directory]
    assert [p.name for p in others] == [encoder_identity(encoder, context)]
    assert "bottom_layers" not in json.loads((others[0] / "identity.json").read_text())
    with pytest.raises(UdistilError, match="holds the states after the first 1 encoder layers"):
        EncoderCache(cache, directory.name, {}, bottom_layers=None)
