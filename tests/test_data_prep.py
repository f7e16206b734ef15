"""Stage 2 (prepare-cuts): 16 kHz mono output, long-cut handling, lhotse validation, the CLI."""
from __future__ import annotations

import numpy as np
import pytest
from lhotse import Recording, SupervisionSegment
from lhotse.cut import MonoCut
from lhotse.qa import validate

from udistil.data.manifests import read_cuts
from udistil.data.prepare_cuts import prepare_cuts
from udistil.data.source_manifests import write_manifest_deterministic
from udistil.tts.espeak import resample

from conftest import write_wav


def write_source_manifests(tmp_path, recordings, supervisions):
    rec_path = write_manifest_deterministic(recordings, tmp_path / "recs.jsonl.gz")
    sup_path = write_manifest_deterministic(supervisions, tmp_path / "sups.jsonl.gz")
    return rec_path, sup_path


def sup(sup_id, rec, start=0.0, duration=None, text="hello", language="en", channel=0):
    return SupervisionSegment(id=sup_id, recording_id=rec.id, start=start, channel=channel,
                              duration=rec.duration - start if duration is None else duration,
                              text=text, language=language)


@pytest.fixture(scope="module")
def hello(speak):
    return speak("hello, this is a short test sentence", voice="en")


def test_8khz_and_stereo_become_16khz_mono(tmp_path, hello):
    narrow = write_wav(tmp_path / "narrow.wav", resample(hello, 16000, 8000), rate=8000)
    stereo = write_wav(tmp_path / "stereo.wav", np.stack([hello, 0.5 * hello], axis=1), rate=22050)
    recs = [Recording.from_file(narrow), Recording.from_file(stereo)]
    assert recs[0].sampling_rate == 8000 and recs[1].num_channels == 2
    sups = [sup("narrow-1", recs[0]), sup("stereo-1", recs[1], channel=[0, 1])]
    out = tmp_path / "cuts.jsonl.gz"

    report = prepare_cuts(*write_source_manifests(tmp_path, recs, sups), out, mono_dir=tmp_path / "mono")

    assert (report.resampled, report.downmixed, report.num_cuts) == (1, 1, 2)
    cuts = read_cuts(out)
    assert sorted(c.id for c in cuts) == ["narrow-1", "stereo-1"]
    for cut, rec in zip(sorted(cuts, key=lambda c: c.id), recs):
        assert isinstance(cut, MonoCut) and cut.sampling_rate == 16000 and cut.num_channels == 1
        audio = cut.load_audio()
        assert audio.shape[0] == 1
        assert abs(audio.shape[1] - rec.duration * 16000) <= 2
        validate(cut, read_data=True)
    # The down-mix is the mean of the two channels (0.75 of the speech), resampled 22.05 -> 16 kHz.
    got = cuts["stereo-1"].load_audio()[0]
    ref = resample(0.75 * hello, 22050, 16000)
    assert len(got) == len(ref)
    assert np.max(np.abs(got - ref)) < 2e-3  # 16-bit rounding of the stereo source only


def long_recording(tmp_path, speak, seconds=40.0):
    """A `seconds`-long wav of repeated speech (silence would be rejected as empty)."""
    speech = speak("one two three four five six seven eight", voice="en")
    samples = np.resize(speech, int(seconds * 16000))
    return Recording.from_file(write_wav(tmp_path / f"long{seconds:.0f}.wav", samples))


def test_long_cuts_split_at_supervision_boundaries_or_dropped(tmp_path, speak):
    rec = long_recording(tmp_path, speak)
    sups = [
        sup("first-half", rec, start=0.0, duration=20.0),   # two supervisions: a 40 s recording
        sup("second-half", rec, start=20.0, duration=20.0),  # becomes two cuts at their boundary
        sup("labelled-long", rec, start=0.0, duration=35.0, text="far too long"),  # dropped
        sup("unlabelled-long", rec, start=0.0, duration=40.0, text=""),  # split with --split-long
    ]
    paths = write_source_manifests(tmp_path, [rec], sups)

    report = prepare_cuts(*paths, tmp_path / "kept.jsonl.gz", max_duration=30.0, split_long=True)
    cuts = read_cuts(tmp_path / "kept.jsonl.gz")
    ids = sorted(c.id for c in cuts)
    assert ids == ["first-half", "second-half", "unlabelled-long-part000", "unlabelled-long-part001"]
    assert all(c.duration <= 30.0 for c in cuts)
    assert cuts["unlabelled-long-part001"].start == pytest.approx(20.0)
    assert (report.dropped_long, report.split_long) == (1, 1)

    report = prepare_cuts(*paths, tmp_path / "nosplit.jsonl.gz", max_duration=30.0, split_long=False)
    assert report.dropped_long == 2 and report.num_cuts == 2


def test_mini_corpus_cuts_pass_lhotse_validation(tmp_path):
    from udistil.data.mini_corpus import prepare_mini_corpus

    paths = prepare_mini_corpus(tmp_path / "manifests", num_train=4, num_dev=3, num_test=3, seed=0)
    out = tmp_path / "cuts_test_noisy.jsonl.gz"
    report = prepare_cuts(paths["test_noisy"]["recordings"], paths["test_noisy"]["supervisions"], out)
    cuts = read_cuts(out)
    assert report.num_cuts == len(cuts) == 3 and not report.skipped
    for cut in cuts:
        validate(cut, read_data=True)
        assert cut.id == cut.supervisions[0].id
        assert cut.supervisions[0].custom["noise"] != "none"  # stage-1 metadata survives


def test_cli_exit_status_and_output(tmp_path, hello):
    from udistil.bin.main import main

    rec = Recording.from_file(write_wav(tmp_path / "a.wav", hello))
    rec_path, sup_path = write_source_manifests(tmp_path, [rec], [sup("a-1", rec)])
    out = tmp_path / "cuts.jsonl.gz"
    assert main(["prepare-cuts", "--recordings", str(rec_path), "--supervisions", str(sup_path),
                 "--out", str(out)]) == 0
    assert len(read_cuts(out)) == 1
    assert main(["prepare-cuts", "--recordings", str(tmp_path / "nope.jsonl.gz"),
                 "--supervisions", str(sup_path), "--out", str(out)]) == 1


def test_a_shard_holds_its_block_not_the_corpus_and_the_shards_make_the_whole(tmp_path, hello, monkeypatch):
    """Stage 2's shards stream the manifests: one shard's memory follows its block of recordings
    (a few hundred bytes per corpus recording for the sorted ids and its own lines), where
    reading both manifests whole held several KB per recording in every shard; and the shards,
    merged, are the unsharded output, cut for cut, unknown recordings reported once."""
    import gzip
    import json
    import tracemalloc

    import udistil.data.prepare_cuts as prepare

    monkeypatch.setattr(prepare, "SUB_BLOCK", 100)
    wav = write_wav(tmp_path / "one.wav", hello)
    one = Recording.from_file(wav)
    n = 4000
    rng = np.random.default_rng(0)
    order = rng.permutation(n)  # manifests in no particular order; blocks follow the sorted ids
    recs = [Recording(id=f"r{i:05d}", sources=one.sources, sampling_rate=one.sampling_rate,
                      num_samples=one.num_samples, duration=one.duration) for i in order]
    sups = [sup(f"s{i:05d}", rec) for i, rec in zip(order, recs)]
    sups.append(SupervisionSegment("orphan", "r99999", 0, 1.0, text="x", language="en"))
    paths = write_source_manifests(tmp_path, recs, sups)

    tracemalloc.start()
    try:
        report = prepare_cuts(*paths, tmp_path / "shard1.jsonl.gz", check_audio="header", shard=(1, 8))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.num_cuts == n // 8 and report.skipped["unknown recording"] == 1
    assert peak / n < 800, f"{peak / n:.0f} bytes per corpus recording held by one shard"

    whole = prepare_cuts(*paths, tmp_path / "whole.jsonl.gz", check_audio="header")
    shards = [prepare_cuts(*paths, tmp_path / f"shard{j}.jsonl.gz", check_audio="header", shard=(j, 8))
              for j in range(2, 9)]
    assert whole.num_cuts == n and sum(r.num_cuts for r in shards) == n - n // 8
    assert all(r.skipped["unknown recording"] == 0 for r in shards)

    def lines(path):
        with gzip.open(path, "rt") as fh:
            return [json.loads(line)["id"] for line in fh]
    merged = [cut_id for j in range(1, 9) for cut_id in lines(tmp_path / f"shard{j}.jsonl.gz")]
    assert merged == lines(tmp_path / "whole.jsonl.gz") == sorted(merged)
