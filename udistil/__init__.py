"""udistil: label-free distillation of Whisper (uDistil-Whisper recipes)."""
