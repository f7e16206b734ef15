"""The pesq filter on real recorded speech (LJSpeech clips), not espeak scored against espeak.

The set lives outside the repository (../shared/real-speech, see its README); without it
this test skips and says so.  Measured here: with espeak-ng as the renderer, PESQ between a
real voice and the rendering sits near its floor (about 1.03 to 1.7), and the right label
beats another clip's label on 9 of these 12 clips, a weak signal: the test asks for at
least 8, so a renderer or alignment change that removes the signal fails it.
"""
import csv
import os
from pathlib import Path

import pytest
import soundfile as sf

from udistil.filters.pesq import pesq_wb
from udistil.filters.tts_render import EspeakRenderer

# Beside the checkout, as tests/conftest.py expects it; UDISTIL_REAL_SPEECH overrides (worktrees).
REAL = Path(os.environ.get("UDISTIL_REAL_SPEECH", Path(__file__).resolve().parents[2] / "shared" / "real-speech")) / "en"


def test_the_right_label_scores_better_than_a_wrong_one_on_real_speech():
    if not (REAL / "en.tsv").exists():
        pytest.skip(f"real speech not found at {REAL} (outside the repository; optional)")
    rows = list(csv.DictReader(open(REAL / "en.tsv", encoding="utf-8"), delimiter="\t"))[:12]
    renderer = EspeakRenderer()
    wins = 0
    for i, row in enumerate(rows):
        audio, rate = sf.read(str(REAL / row["file"]), dtype="float32")
        assert rate == 16000
        right = pesq_wb(audio, renderer.render(row["text"], "en"))
        wrong = pesq_wb(audio, renderer.render(rows[(i + 5) % len(rows)]["text"], "en"))
        assert right.value is not None and wrong.value is not None, (row["id"], right, wrong)
        wins += right.value > wrong.value
    assert wins >= 8, f"the right label won on only {wins} of {len(rows)} real clips"
