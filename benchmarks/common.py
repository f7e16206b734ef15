"""Shared benchmark inputs: a mini-corpus test CutSet and the real-speech sets (if present)."""
from __future__ import annotations

import csv
from pathlib import Path

from lhotse import Recording, SupervisionSegment

from udistil.data.manifests import read_cuts, write_cuts

REAL_SPEECH = Path(__file__).resolve().parents[2] / "shared" / "real-speech"


def mini_test_cuts(work_dir: Path, per_test_set: int, seed: int = 7):
    """test_clean + test_noisy of a freshly synthesised mini corpus (all three languages)."""
    from udistil.data.mini_corpus import prepare_mini_corpus
    from udistil.data.prepare_cuts import prepare_cuts

    out = work_dir / "cuts_bench.jsonl.gz"
    if not out.exists():
        manifests = prepare_mini_corpus(work_dir / "manifests", num_train=6, num_dev=3,
                                        num_test=per_test_set, seed=seed)
        cuts = []
        for split in ("test_clean", "test_noisy"):
            path = work_dir / f"cuts_{split}.jsonl.gz"
            prepare_cuts(manifests[split]["recordings"], manifests[split]["supervisions"], path)
            cuts += list(read_cuts(path))
        write_cuts(cuts, out)
    return read_cuts(out)


def real_speech_cuts(languages=("ar", "sw", "en"), limit: int | None = None, root: Path = REAL_SPEECH):
    """The real recordings in ../shared/real-speech as cuts (None when the folder is absent)."""
    if not root.is_dir():
        return None
    cuts = []
    for lang in languages:
        tsv = root / lang / f"{lang}.tsv"
        with open(tsv, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))[:limit]
        for row in rows:
            rec = Recording.from_file(str(root / lang / row["file"]), recording_id=f"{lang}-{row['id']}")
            if rec.duration > 30.0:
                continue
            cut = rec.to_cut()
            cut.supervisions = [SupervisionSegment(id=rec.id, recording_id=rec.id, start=0.0,
                                                   duration=rec.duration, channel=0, language=lang,
                                                   text=row["text"])]
            cuts.append(cut)
    return cuts
