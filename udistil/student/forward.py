"""Teacher and student logits for one batch.

`StudentForward` is the student's side: its encoder at its own audio context (or states
from the frozen-encoder cache), then its decoder; the trainer wraps it in DDP, so every
parameter that learns goes through its forward.  When the teacher's targets are stored
(the default, teacher/kd_targets.py), that is all a training step runs.

`DistillForward` is the live-teacher path, kept for manifests without stored targets and
as the baseline the benchmark compares with: it runs the teacher at its full 30 s context
on every step, computing a shared frozen encoder only once when it can:

When the student keeps the teacher's whole encoder and does not train it, both models
would run the same encoder on the same features: on Whisper the encoder is most of the
cost (1500 positions per 30 s window against a few dozen label tokens), so running it
once and feeding its output to both decoders nearly halves the work of a training step.
`encoders_identical` checks the precondition (same weights, not just the same shape);
otherwise a frozen student encoder still runs without autograd, and a trained one runs
normally.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from udistil.models.audio_context import AudioContext, encode as encode_context


class StudentForward(torch.nn.Module):
    """(features | encoder states, decoder ids, positions) -> (logits, last decoder hidden)."""

    def __init__(self, student, frozen_encoder: bool):
        super().__init__()
        self.student = student
        self.frozen_encoder = frozen_encoder
        self.context = AudioContext.of(student)

    def encode(self, input_features: torch.Tensor, positions: int) -> torch.Tensor:
        encoder = self.student.model.encoder
        if self.frozen_encoder:
            with torch.no_grad():
                return encode_context(encoder, input_features, positions)
        return encode_context(encoder, input_features, positions)

    def forward(self, decoder_input_ids: torch.Tensor, positions: int,
                input_features: torch.Tensor | None = None,
                encoder_states: torch.Tensor | None = None):
        if encoder_states is None:
            encoder_states = self.encode(input_features, positions)
        hidden = self.student.model.decoder(input_ids=decoder_input_ids,
                                            encoder_hidden_states=encoder_states,
                                            use_cache=False).last_hidden_state
        return self.student.proj_out(hidden), hidden, encoder_states


def unwrap(model):
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


def encoders_identical(teacher, student) -> bool:
    t_state = unwrap(teacher).model.encoder.state_dict()
    s_state = unwrap(student).model.encoder.state_dict()
    if t_state.keys() != s_state.keys():
        return False
    return all(t_state[k].shape == s_state[k].shape and torch.equal(t_state[k], s_state[k].to(t_state[k]))
               for k in t_state)


def freeze_encoder(student) -> None:
    for param in unwrap(student).model.encoder.parameters():
        param.requires_grad_(False)


class LiveOutputs(NamedTuple):
    student_logits: torch.Tensor
    teacher_logits: torch.Tensor
    student_hidden: torch.Tensor  # last decoder states (after the final layer norm)
    teacher_hidden: torch.Tensor


class DistillForward:
    """Callable: batch -> LiveOutputs (both models' logits and last decoder states).

    `student` may be DDP-wrapped (its forward must be the one called so gradients are
    synchronised); `teacher` is always in eval mode and never gets gradients.
    """

    def __init__(self, teacher, student, frozen_encoder: bool, share_encoder: bool):
        if share_encoder and not frozen_encoder:
            raise ValueError("sharing the teacher's encoder needs a frozen student encoder")
        self.teacher = teacher
        self.student = student
        self.frozen_encoder = frozen_encoder
        self.share_encoder = share_encoder

    def __call__(self, input_features: torch.Tensor, decoder_input_ids: torch.Tensor,
                 positions: int | None = None, student_features: torch.Tensor | None = None,
                 student_states=None):
        """The teacher always reads `input_features`.  SpecAugment (augment.py) reaches the
        student alone through `student_features` (its own masked copy) or, when the encoder
        is shared, `student_states` (a function masking a copy of the shared states)."""
        with torch.no_grad():
            teacher_encoded = self.teacher.model.encoder(input_features).last_hidden_state
            # The decoder, then the output projection: what the teacher's forward computes,
            # keeping the state the decoder-state MSE compares (stage 3 stores the same one).
            teacher_hidden = self.teacher.model.decoder(
                input_ids=decoder_input_ids, encoder_hidden_states=teacher_encoded,
                use_cache=False).last_hidden_state
            teacher_logits = self.teacher.proj_out(teacher_hidden)
        # The student (a StudentForward, maybe DDP-wrapped) runs at its own audio context.
        positions = positions or unwrap(self.student).context.positions(10**9)
        shared = None
        if self.share_encoder:
            shared = teacher_encoded if student_states is None else student_states(teacher_encoded)
        student_logits, student_hidden, _ = self.student(
            decoder_input_ids, positions,
            input_features=input_features if student_features is None else student_features,
            encoder_states=shared)
        return LiveOutputs(student_logits, teacher_logits, student_hidden, teacher_hidden)


def two_model_forward(teacher, student, input_features, decoder_input_ids):
    """Reference path: each model runs its own full forward (what sharing must equal)."""
    with torch.no_grad():
        teacher_logits = teacher(input_features=input_features, decoder_input_ids=decoder_input_ids,
                                 use_cache=False).logits
    student_logits = student(input_features=input_features, decoder_input_ids=decoder_input_ids,
                             use_cache=False).logits
    return student_logits, teacher_logits
