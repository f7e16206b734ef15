#!/usr/bin/env python3
"""Stage 1 of the default recipe: the embedded offline ar/sw/en mini corpus (espeak-ng).

Needs nothing on disk but espeak-ng (tools/install.sh).  Same options as
`udistil prepare-mini-corpus`; e.g.

    local/prepare_mini_corpus.py --out-dir data/manifests --num-train 160 --seed 0
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the udistil package beside local/

from udistil.bin.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["prepare-mini-corpus", *sys.argv[1:]]))
