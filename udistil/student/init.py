"""Initialise a smaller Whisper student from a teacher's layers (`udistil make-student`).

distil-whisper's recipe: keep `n` of the teacher's `L` layers spread evenly over the
stack, i.e. `floor(linspace(0, L-1, n))` with the last one forced to `L-1` so the student
keeps the layer whose output the decoder (or the output projection) was trained on.
Everything that is not a layer (conv front-end, positions, token embeddings, final layer
norms) is copied as it is, together with the processor and the generation config, so
the student decodes out of the box (badly, before distillation) like its teacher.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from udistil.errors import UdistilError
from udistil.models.audio_context import record as record_context

log = logging.getLogger(__name__)

_LAYER_KEY = re.compile(r"^(model\.(?:encoder|decoder)\.layers)\.(\d+)\.(.+)$")


def spread_layer_ids(n_teacher: int, n_student: int) -> list[int]:
    """Teacher layer ids the student keeps: floor(linspace(0, L-1, n)), last forced to L-1."""
    if not 1 <= n_student <= n_teacher:
        raise UdistilError(f"cannot keep {n_student} of {n_teacher} teacher layers "
                           f"(choose 1..{n_teacher})")
    ids = [int(i) for i in np.floor(np.linspace(0, n_teacher - 1, n_student))]
    ids[-1] = n_teacher - 1
    return ids


def parse_layer_ids(text: str) -> list[int]:
    """'0,2,5' -> [0, 2, 5] (for --encoder-layer-ids / --decoder-layer-ids)."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as e:
        raise UdistilError(f"layer ids must be comma-separated integers, got {text!r}") from e


def check_layer_ids(ids: list[int], n_teacher: int, stack: str) -> list[int]:
    if not ids:
        raise UdistilError(f"no {stack} layers chosen")
    bad = [i for i in ids if not 0 <= i < n_teacher]
    if bad:
        raise UdistilError(f"{stack} layer ids {bad} out of range: the teacher has {n_teacher} "
                           f"{stack} layers (0..{n_teacher - 1})")
    if len(set(ids)) != len(ids):
        raise UdistilError(f"{stack} layer ids {ids} repeat a layer")
    return list(ids)


def choose_layers(n_teacher: int, n_layers: int | None, layer_ids: list[int] | None,
                  stack: str) -> list[int]:
    """Explicit ids win; else `n_layers` spread over the stack; else keep every layer."""
    if layer_ids:
        if n_layers is not None and n_layers != len(layer_ids):
            raise UdistilError(f"--{stack}-layers {n_layers} disagrees with the {len(layer_ids)} "
                               f"--{stack}-layer-ids given")
        return check_layer_ids(layer_ids, n_teacher, stack)
    if n_layers is None:
        return list(range(n_teacher))
    return spread_layer_ids(n_teacher, n_layers)


def student_state_dict(teacher_state: dict, encoder_ids: list[int], decoder_ids: list[int]) -> dict:
    """The teacher's tensors renamed for the student: student layer i <- teacher layer ids[i]."""
    source_of = {"model.encoder.layers": {t: s for s, t in enumerate(encoder_ids)},
                 "model.decoder.layers": {t: s for s, t in enumerate(decoder_ids)}}
    state = {}
    for key, tensor in teacher_state.items():
        match = _LAYER_KEY.match(key)
        if match is None:
            state[key] = tensor
            continue
        stack, teacher_layer, rest = match.group(1), int(match.group(2)), match.group(3)
        student_layer = source_of[stack].get(teacher_layer)
        if student_layer is not None:
            state[f"{stack}.{student_layer}.{rest}"] = tensor
    return state


def build_student(teacher, encoder_ids: list[int], decoder_ids: list[int], context=None):
    """A new WhisperForConditionalGeneration made of the chosen teacher layers.

    `context` (an AudioContext) is recorded in the config; None keeps the full 30 s."""
    import copy

    from transformers import WhisperForConditionalGeneration

    config = copy.deepcopy(teacher.config)
    config.encoder_layers = len(encoder_ids)
    config.decoder_layers = len(decoder_ids)
    # Recorded for the reader of config.json (and RESULTS.md): where the layers came from.
    config.udistil_teacher_encoder_layer_ids = list(encoder_ids)
    config.udistil_teacher_decoder_layer_ids = list(decoder_ids)
    if context is not None:
        record_context(config, context)
    student = WhisperForConditionalGeneration(config).to(dtype=next(teacher.parameters()).dtype)
    state = student_state_dict(teacher.state_dict(), encoder_ids, decoder_ids)
    missing, unexpected = student.load_state_dict(state, strict=False)
    # proj_out is tied to the token embedding; a missing key there is expected.
    missing = [k for k in missing if k != "proj_out.weight"]
    if missing or unexpected:
        raise UdistilError(f"student/teacher weight names disagree: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
    student.generation_config = copy.deepcopy(teacher.generation_config)
    return student


def make_student(teacher_spec: str, out_dir, encoder_layers: int | None = None,
                 decoder_layers: int | None = None, encoder_layer_ids: list[int] | None = None,
                 decoder_layer_ids: list[int] | None = None, context=None) -> Path:
    """Save a student built from `teacher_spec`'s layers to `out_dir`; returns the directory.

    Layer counts default to the teacher's (all layers); explicit id lists override counts.
    The directory loads with `WhisperForConditionalGeneration.from_pretrained` and in
    `transformers.pipeline("automatic-speech-recognition")`.
    """
    import torch

    from udistil.models.spec import load_whisper

    out = Path(out_dir)
    teacher, processor = load_whisper(teacher_spec)
    teacher = teacher.to(torch.float32)
    n_enc, n_dec = teacher.config.encoder_layers, teacher.config.decoder_layers
    enc_ids = choose_layers(n_enc, encoder_layers, encoder_layer_ids, "encoder")
    dec_ids = choose_layers(n_dec, decoder_layers, decoder_layer_ids, "decoder")
    student = build_student(teacher, enc_ids, dec_ids, context)
    n_teacher = sum(p.numel() for p in teacher.parameters())
    n_student = sum(p.numel() for p in student.parameters())
    log.info("student %d-%d from teacher %d-%d: encoder layers %s, decoder layers %s; "
             "%.1fM -> %.1fM parameters; %s", len(enc_ids), len(dec_ids), n_enc, n_dec, enc_ids,
             dec_ids, n_teacher / 1e6, n_student / 1e6,
             (context.describe() if context is not None else "full 30 s context"))
    save_model_dir(student, processor, out)
    return out


def save_model_dir(model, processor, out_dir, extra_json: dict | None = None) -> Path:
    """save_pretrained model + processor (+ {file name: JSON object}) into a temporary dir,
    then rename it into place, so a reader never sees a half-written model."""
    import json
    import os
    import shutil

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(str(tmp))
    processor.save_pretrained(str(tmp))
    for name, obj in (extra_json or {}).items():
        (tmp / name).write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    if out.exists():
        old = out.with_name(f".{out.name}.old{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)
    return out
