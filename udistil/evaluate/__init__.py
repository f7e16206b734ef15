"""Evaluation: text normalisation, WER/CER scoring and the decode output folder."""
