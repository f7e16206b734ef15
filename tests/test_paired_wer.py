"""benchmarks/paired_wer.py: the WER table the README's paired figures come from."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lhotse import MonoCut, SupervisionSegment

from udistil.data.manifests import write_cuts

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "paired_wer.py"
# id: (noise, reference, baseline's hypothesis, model's hypothesis)
CLIPS = {
    "c0": ("none", "the cat sat on the mat", "the cat sat on the mat", "the cat sat on a mat"),
    "c1": ("none", "hello world", "hello world", "hello word"),
    "c2": ("babble", "one two three four", "one two", "one two three four"),
}


def decode_dir(root: Path, name: str, column: int, with_cuts: bool) -> Path:
    out = root / name
    out.mkdir()
    with open(out / "hyps.jsonl", "w", encoding="utf-8") as f:
        for cut_id, row in CLIPS.items():
            f.write(json.dumps({"id": cut_id, "lang": "en", "ref": row[1], "hyp": row[column]}) + "\n")
    if with_cuts:
        cuts = [MonoCut(id=cut_id, start=0.0, duration=1.0, channel=0, recording=None,
                        supervisions=[SupervisionSegment(id=cut_id, recording_id=cut_id, start=0.0,
                                                         duration=1.0, text=row[1], language="en",
                                                         custom={"noise": row[0]})])
                for cut_id, row in CLIPS.items()]
        write_cuts(cuts, out / "cuts.jsonl.gz")
    return out


def table(*args) -> list[str]:
    done = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_noise_keeps_only_the_clips_that_record_it(tmp_path):
    base = decode_dir(tmp_path, "teacher", 2, with_cuts=True)
    model = decode_dir(tmp_path, "student", 3, with_cuts=False)
    every = table("--baseline", f"teacher={base}", f"student={model}")
    # 12 reference words: the baseline misses 2 (c2), the student 2 (c0, c1).
    assert every[0].startswith("# 3 clips, 12 reference words")
    assert every[2].split("\t")[:3] == ["student", "16.7", "+0.0"]
    # The baseline's two errors are deletions (c2), the student's substitutions.
    assert every[0].endswith("(16.7 % of the words deleted)") and every[2].split("\t")[4] == "0.0"
    clean = table("--noise", "none", "--baseline", f"teacher={base}", f"student={model}")
    assert clean[0].startswith("# 2 clips, 8 reference words, noise none")
    assert clean[2].split("\t")[:3] == ["student", "25.0", "+25.0"]


def test_noise_needs_the_decoded_cuts(tmp_path):
    base = decode_dir(tmp_path, "teacher", 2, with_cuts=False)
    done = subprocess.run([sys.executable, str(SCRIPT), "--noise", "none", "--baseline", f"teacher={base}",
                           f"student={base}"], capture_output=True, text=True)
    assert done.returncode != 0 and "cuts.jsonl.gz: missing" in done.stderr
