"""Stage 5: choosing the training subset from filter scores (see selection.py)."""
