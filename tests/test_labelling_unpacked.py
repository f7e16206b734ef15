"""Stage 3 labels each clip on its own by default: per-clip statistics must not depend on neighbours.

Packed windows (several clips in one 30 s window) make a clip's token log-probs and
entropies depend on the clips packed beside it.  Measured on 100 real Arabic AMMI val
clips (packaged whisper-base), AUROC for true WER > 80 fell from 0.885 unpacked to 0.755
packed (entropy; confidence 0.872 -> 0.760).  The filters, the fusion calibration and
the KD targets all read these statistics, so the labelling path must keep packing off
unless a user asks for it.  Decoding for WER (stage 7) may pack; it keeps no statistics.
"""
import argparse

from udistil.bin import pseudo_label
from udistil.bin._decode_args import decode_options


def test_pseudo_label_decodes_each_clip_alone_by_default():
    parser = argparse.ArgumentParser()
    pseudo_label.add_arguments(parser)
    args = parser.parse_args(["--model", "packaged:whisper-base", "--in", "in.jsonl.gz", "--out", "out.jsonl.gz"])
    assert decode_options(args).pack is False


def test_run_sh_stage3_does_not_ask_for_packing(repo_root):
    stage3 = (repo_root / "run.sh").read_text().split("pseudo_label_set() {", 1)[1].split("\n}\n", 1)[0]
    assert "udistil pseudo-label" in stage3 and "--pack" not in stage3.replace("--no-pack", "")
