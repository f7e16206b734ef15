"""Teacher and student logits for one batch, computing a shared frozen encoder only once.

When the student keeps the teacher's whole encoder and does not train it, both models
would run the same encoder on the same features: on Whisper the encoder is most of the
cost (1500 positions per 30 s window against a few dozen label tokens), so running it
once and feeding its output to both decoders nearly halves the work of a training step.
`encoders_identical` checks the precondition (same weights, not just the same shape);
otherwise a frozen student encoder still runs without autograd, and a trained one runs
normally.
"""
from __future__ import annotations

import torch
from transformers.modeling_outputs import BaseModelOutput


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


class DistillForward:
    """Callable: batch -> (student_logits, teacher_logits).

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

    def __call__(self, input_features: torch.Tensor, decoder_input_ids: torch.Tensor):
        with torch.no_grad():
            teacher_encoded = self.teacher.model.encoder(input_features).last_hidden_state
            teacher_logits = self.teacher(
                encoder_outputs=BaseModelOutput(last_hidden_state=teacher_encoded),
                decoder_input_ids=decoder_input_ids, use_cache=False).logits
        if self.share_encoder:
            student_encoded = teacher_encoded
        elif self.frozen_encoder:
            with torch.no_grad():
                student_encoded = unwrap(self.student).model.encoder(input_features).last_hidden_state
        else:
            student_encoded = None
        if student_encoded is None:
            student_logits = self.student(input_features=input_features,
                                          decoder_input_ids=decoder_input_ids, use_cache=False).logits
        else:
            student_logits = self.student(
                encoder_outputs=BaseModelOutput(last_hidden_state=student_encoded),
                decoder_input_ids=decoder_input_ids, use_cache=False).logits
        return student_logits, teacher_logits


def two_model_forward(teacher, student, input_features, decoder_input_ids):
    """Reference path: each model runs its own full forward (what sharing must equal)."""
    with torch.no_grad():
        teacher_logits = teacher(input_features=input_features, decoder_input_ids=decoder_input_ids,
                                 use_cache=False).logits
    student_logits = student(input_features=input_features, decoder_input_ids=decoder_input_ids,
                             use_cache=False).logits
    return student_logits, teacher_logits
