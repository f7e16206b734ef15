"""Student creation from teacher layers and distillation training (stage 6).

- `init`: pick teacher layers (distil-whisper's linspace mapping) and save a student dir.
- `data`: lhotse sampler + dataset turning pseudo-labelled cuts into features and labels.
- `loss`: CE on the pseudo-label plus temperature-scaled KL to the teacher.
- `forward`: teacher and student logits for one batch, sharing the encoder when possible.
- `checkpoint`: training state save/restore (last K kept) and the transformers export.
- `trainer`: the training loop (AdamW, schedule, accumulation, AMP, DDP, dev loss).
"""
