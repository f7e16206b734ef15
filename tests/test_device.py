"""--device / --dtype (udistil/models/device.py) and tensor placement, checked on a CPU.

There is no GPU here and none is used: the CUDA path has not run on a GPU.  Placement is
checked in ways that fail when a tensor is made on the wrong device:
  * with torch's default device set to "meta", every tensor the decoding code creates
    without device= lands on meta, where it cannot meet the CPU model's tensors nor be read
    back (.tolist()), so the decode raises; placed correctly, it gives the same tokens;
  * a model moved to the meta device must get its encoder input (and its token masks) there.
"""
from __future__ import annotations

import argparse
import copy
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from udistil.errors import UdistilError
from udistil.models import device as dev
from udistil.models.device import DEVICES, DTYPES, Placement, resolve_dtype
from udistil.models.spec import load_whisper
from udistil.teacher.kd_targets import TargetSpec
from udistil.teacher.transcriber import DecodeOptions, Transcriber

REPO = Path(__file__).resolve().parents[1]


# --- the options ----------------------------------------------------------------------------

def test_auto_is_cuda_in_float16_when_a_gpu_is_visible_else_cpu_in_float32(monkeypatch):
    monkeypatch.setattr(dev, "cuda_available", lambda: True)
    assert Placement.resolve("auto", "auto") == Placement(torch.device("cuda"), torch.float16)
    assert Placement.resolve("cpu", "auto") == Placement(torch.device("cpu"), torch.float32)
    assert Placement.resolve("cuda", "bfloat16").dtype == torch.bfloat16
    monkeypatch.setattr(dev, "cuda_available", lambda: False)
    assert Placement.resolve("auto", "auto") == Placement(torch.device("cpu"), torch.float32)
    assert Placement.resolve("auto", "bfloat16").dtype == torch.bfloat16  # runs on a CPU
    with pytest.raises(UdistilError, match="no CUDA device"):
        Placement.resolve("cuda", "auto")
    with pytest.raises(UdistilError, match="float16 is not supported on the CPU"):
        resolve_dtype("float16", "cpu")
    with pytest.raises(UdistilError, match="unknown device"):
        Placement.resolve("tpu", "auto")


def _parser(action):
    from udistil.bin.main import load_action

    parser = argparse.ArgumentParser()
    load_action(action).add_arguments(parser)
    return {a.dest: a for a in parser._actions}


@pytest.mark.parametrize("action", ["pseudo-label", "decode", "score", "transcribe", "distill"])
def test_every_model_action_takes_the_shared_options(action):
    options = _parser(action)
    assert tuple(options["device"].choices) == DEVICES and options["device"].default == "auto"
    if action == "distill":
        # Training keeps float32 weights; its precision is the autocast --precision.
        assert "dtype" not in options and "precision" in options
    else:
        assert tuple(options["dtype"].choices) == DTYPES and options["dtype"].default == "auto"


def test_no_action_defines_its_own_device_option():
    for path in sorted((REPO / "udistil" / "bin").glob("*.py")):
        assert not re.search(r"""["']--(device|dtype)["']""", path.read_text()), path


# --- loading and placement ------------------------------------------------------------------


def test_load_whisper_takes_the_device_and_dtype(tiny_whisper_dir, tiny):
    model, _ = tiny
    assert model.dtype == torch.float32 and model.device.type == "cpu"  # the CPU default
    half, _ = load_whisper(str(tiny_whisper_dir), "cpu", "bfloat16")
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    with pytest.raises(UdistilError, match="float16 is not supported on the CPU"):
        load_whisper(str(tiny_whisper_dir), "cpu", torch.float16)


def _clips():
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(16000 * n)).astype(np.float32) for n in (1, 2, 3)]


def _summary(transcripts):
    return [(t.tokens, np.round(t.logprobs, 4).tolist(), t.language, t.stop,
             [np.round(r[1], 4).tolist() for r in t.targets]) for t in transcripts]


@pytest.mark.parametrize("options", [
    DecodeOptions(batch_size=2),
    DecodeOptions(batch_size=2, pack=True),
    DecodeOptions(batch_size=2, targets=TargetSpec(topk=4)),
    DecodeOptions(batch_size=2, beam=2),
], ids=["greedy", "packed", "targets", "beam"])
def test_decoding_makes_every_tensor_on_the_model_device(tiny, options, monkeypatch):
    model, processor = tiny
    options.budget_base, options.budget_per_second = 4, 2.0  # a few steps prove it
    transcriber = Transcriber(model, processor, options)
    clips, languages = _clips(), [None, "en", "ar"]
    if options.pack:
        languages = ["en", "en", "ar"]
    reference = _summary(transcriber.transcribe(clips, languages))
    generate = model.generate

    def generate_on_cpu(*args, **kwargs):
        # transformers' own generate() builds tensors without a device; not ours to check.
        with torch.device("cpu"):
            return generate(*args, **kwargs)

    monkeypatch.setattr(model, "generate", generate_on_cpu)
    torch.set_default_device("meta")
    try:
        placed = _summary(transcriber.transcribe(clips, languages))
    finally:
        torch.set_default_device(None)
    assert placed == reference


def test_encoder_input_and_token_masks_follow_the_model_device(tiny):
    model, processor = tiny
    transcriber = Transcriber(copy.deepcopy(model).to("meta"), processor, DecodeOptions())
    assert transcriber.rules.suppress.device.type == "meta"
    assert transcriber.rules.language_ids().device.type == "meta"
    # CPU features given to a meta encoder raise; moved to the model's device they run.
    hidden = transcriber.encode(_clips()[:2])
    assert hidden.device.type == "meta" and hidden.shape == (2, 1500, model.config.d_model)


def test_decoding_follows_the_model_dtype(tiny_whisper_dir):
    model, processor = load_whisper(str(tiny_whisper_dir), "cpu", "bfloat16")
    seen = []
    model.get_encoder().conv1.register_forward_pre_hook(lambda m, args: seen.append(args[0].dtype))
    transcriber = Transcriber(model, processor, DecodeOptions(batch_size=2, budget_base=4, budget_per_second=2,
                                                              targets=TargetSpec(topk=4)))
    out = transcriber.transcribe(_clips()[:2], ["en", "ar"])
    assert seen and set(seen) == {torch.bfloat16}
    assert all(t.tokens and np.isfinite(t.logprobs).all() and len(t.targets) >= len(t.tokens) for t in out)


# --- fingerprints: the device never matters, a precision other than float32 does --------------

def test_precision_enters_fingerprints_only_when_not_float32(tmp_path):
    from udistil.filters.runner import scoring_fingerprint
    from udistil.teacher.pseudo_label import labelling_fingerprint

    cuts = tmp_path / "cuts.jsonl.gz"
    cuts.write_bytes(b"x")
    options = DecodeOptions()
    before = labelling_fingerprint(cuts, "packaged:whisper-base", options)
    assert labelling_fingerprint(cuts, "packaged:whisper-base", options, dtype=torch.float32) == before
    assert labelling_fingerprint(cuts, "packaged:whisper-base", options, dtype=torch.float16) != before

    def scores(name, **opts):
        return scoring_fingerprint({name: opts}, cuts)

    proxy = {"proxy": "packaged:whisper-tiny.en"}
    assert scores("proxy_wer", **proxy, device="cuda", dtype="float32") == scores("proxy_wer", **proxy)
    assert scores("proxy_wer", **proxy, dtype="float16") != scores("proxy_wer", **proxy)
    # nll reads stage 3's numbers unless it runs a language model.
    assert scores("nll", dtype="float16") == scores("nll")
    assert scores("nll", nll_lm="lm", dtype="float16") != scores("nll", nll_lm="lm")


# --- training: one process, one device ------------------------------------------------------

def test_distill_process_device(monkeypatch):
    from udistil.student.distributed import process_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert process_device("auto") == torch.device("cpu")
    with pytest.raises(UdistilError, match="no CUDA device"):
        process_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert process_device("auto", local_rank=1) == torch.device("cuda", 1)
    assert process_device("cpu", local_rank=1) == torch.device("cpu")
    with pytest.raises(UdistilError, match="LOCAL_RANK 2 has no GPU"):
        process_device("cuda", local_rank=2)


# --- training on a GPU (marked gpu: skipped without CUDA; benchmarks/gpu_check.sh runs them) ---
# and the data loader with worker processes, which runs on a CPU too.

from test_student_distill import corpus, student_dir  # noqa: E402,F401  (fixtures)

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _train_tiny(tiny_whisper_dir, student, corpus, exp, steps=3, num_workers=0, **run):
    from udistil.student.config import DataOptions, DistillConfig, OptimOptions, RunOptions
    from udistil.student.trainer import train

    return train(DistillConfig(
        teacher=str(tiny_whisper_dir), student=str(student), train=str(corpus["train"]),
        dev=str(corpus["dev"]), exp=str(exp), data=DataOptions(batch_size=2, num_workers=num_workers),
        optim=OptimOptions(lr=2e-3, warmup_steps=1, max_steps=steps),
        run=RunOptions(checkpoint_every=steps, valid_every=100, **run)))


def _losses(exp):
    import json

    return [json.loads(l)["loss"] for l in (Path(exp) / "log" / "metrics.jsonl").read_text().splitlines()]


def _scaler_state(exp):
    from udistil.student.checkpoint import list_checkpoints

    return torch.load(list_checkpoints(exp)[-1] / "state.pt", map_location="cpu", weights_only=False)["scaler"]


def test_data_loader_workers_give_the_same_training(tiny_whisper_dir, student_dir, corpus, tmp_path):  # noqa: F811
    """num_workers=2 (the GPU default) reads the same batches as the in-process loader."""
    _train_tiny(tiny_whisper_dir, student_dir, corpus, tmp_path / "w0", device="cpu")
    _train_tiny(tiny_whisper_dir, student_dir, corpus, tmp_path / "w2", device="cpu", num_workers=2)
    assert _losses(tmp_path / "w2") == pytest.approx(_losses(tmp_path / "w0"), rel=1e-5)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_gpu_training_places_the_student_and_autocasts(tiny_whisper_dir, student_dir, corpus,  # noqa: F811
                                                       tmp_path, precision):
    summary = _train_tiny(tiny_whisper_dir, student_dir, corpus, tmp_path / precision,
                          device="auto", precision=precision)
    assert summary["device"].startswith("cuda") and summary["finished"]
    losses = _losses(tmp_path / precision)
    assert len(losses) == 3 and all(np.isfinite(losses))
    # The GradScaler runs for float16 only (bf16 has float32's range): its state is empty otherwise.
    assert bool(_scaler_state(tmp_path / precision)) == (precision == "fp16")


@pytest.mark.gpu
@needs_gpu
def test_gpu_decoding_in_float16_keeps_the_model_on_the_gpu(tiny_whisper_dir):
    model, processor = load_whisper(str(tiny_whisper_dir), "cuda", "float16")
    assert model.device.type == "cuda" and model.dtype == torch.float16
    out = Transcriber(model, processor, DecodeOptions(batch_size=2, budget_base=4, budget_per_second=2)
                      ).transcribe(_clips()[:2], ["en", "ar"])
    assert all(np.isfinite(t.logprobs).all() for t in out)
