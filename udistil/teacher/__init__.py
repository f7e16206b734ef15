"""Teacher pseudo-labelling: fast batched Whisper decoding that keeps per-token statistics."""
