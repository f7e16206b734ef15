"""Hole 1: pseudo-labels and transcripts are untrusted data, never command-line options,
and one cut that a filter cannot handle is one null, never a dead shard."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from lhotse import Recording, SupervisionSegment

from udistil.data.manifests import custom, read_cuts, write_cuts
from udistil.filters import create_filter
from udistil.filters.runner import score_cuts
from udistil.tts.espeak import synthesize

HOSTILE = ["- Yes. - No.", "--help", "-v xx", "$(touch pwned) `id` ; rm -rf / | cat &", "-- --stdout"]


@pytest.mark.parametrize("label", HOSTILE)
def test_a_label_that_looks_like_an_option_is_spoken(label, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    samples = synthesize(label, "en")
    assert samples.dtype == np.float32 and len(samples) > 1600
    assert not (tmp_path / "pwned").exists()


def test_a_label_cannot_make_espeak_read_a_file(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(" ".join(["confidential"] * 60))
    spoken_file = synthesize(secret.read_text(), "en")
    spoken_label = synthesize(f"-f{secret}", "en")
    # Speaking the label (a path) takes a few seconds; speaking the file takes far longer.
    assert len(spoken_label) < len(spoken_file) / 3


def test_a_voice_that_is_an_option_is_refused():
    from udistil.errors import UdistilError

    with pytest.raises(UdistilError, match="voice"):
        synthesize("hello", voice="--help")


def _cuts(tmp_path, speak, labels):
    cuts = []
    for i, label in enumerate(labels):
        path = tmp_path / f"c{i}.wav"
        sf.write(str(path), np.concatenate([np.zeros(8000, np.float32), speak("the river is near", "en")]), 16000)
        cut = Recording.from_file(str(path), recording_id=f"c{i}").to_cut()
        cut.id = f"c{i}"
        cut.supervisions = [SupervisionSegment(cut.id, cut.id, 0, cut.duration, text="", language="en")]
        custom(cut).update(teacher_text=label, teacher_tokens=[1, 2], teacher_logprobs=[-0.1, -0.2],
                           teacher_entropy=[0.3, 0.1], teacher_language="en", teacher_stop="eot")
        cuts.append(cut)
    return cuts


def test_hostile_labels_do_not_kill_the_pesq_shard(tmp_path, speak):
    write_cuts(_cuts(tmp_path, speak, ["the river is near", "--help", "- Yes. - No."]), tmp_path / "in.jsonl.gz")
    score_cuts(create_filter("pesq"), tmp_path / "in.jsonl.gz", tmp_path / "out.jsonl.gz")
    out = [custom(c) for c in read_cuts(tmp_path / "out.jsonl.gz")]
    assert len(out) == 3 and out[0]["pesq"] is not None


def test_one_cut_that_breaks_a_filter_is_one_null(tmp_path, speak, caplog):
    cuts = _cuts(tmp_path, speak, ["a", "b", "c"])
    custom(cuts[1])["teacher_logprobs"] = ["not a number"]  # written by someone else's tool
    write_cuts(cuts, tmp_path / "in.jsonl.gz")
    summary = score_cuts(create_filter("confidence"), tmp_path / "in.jsonl.gz", tmp_path / "out.jsonl.gz")
    out = {c.id: custom(c)["confidence"] for c in read_cuts(tmp_path / "out.jsonl.gz")}
    assert out["c1"] is None and out["c0"] is not None and out["c2"] is not None
    assert summary["null"]["confidence"] == 1
    assert "c1" in caplog.text and "ValueError" in caplog.text


def test_a_filter_failing_on_every_cut_stops_instead_of_nulling_the_set(tmp_path, speak):
    cuts = _cuts(tmp_path, speak, ["a", "b", "c"])
    for cut in cuts:
        custom(cut)["teacher_logprobs"] = ["x"]
    write_cuts(cuts, tmp_path / "in.jsonl.gz")
    with pytest.raises(ValueError):
        score_cuts(create_filter("confidence"), tmp_path / "in.jsonl.gz", tmp_path / "out.jsonl.gz")
