"""ALFFA Swahili as published (getalp/ALFFA_PUBLIC, ASR/SWAHILI/data): an ALFFA-only run of
egs/swahili stages 1-2 with a by-speaker dev set, the release's placeholder paths, "._*"
files and tags, missing and corrupt wavs skipped and counted, a non-UTF-8 text named as the
user's file, and import-kaldi-dir pointing to prepare-alffa on the raw release."""
from __future__ import annotations

from collections import Counter

import pytest

from recipe_fixtures import cuts_by_id, make_alffa, run_recipe
from udistil.errors import UdistilError

TRAIN = [  # (utt, speaker, spoken, text as written)
    ("16k-emission_swahili_05h30_-_06h00_tu_20101106_part10", "SWH-05-20101106", "rais wa tanzania", "rais wa tanzania"),
    ("16k-emission_swahili_05h30_-_06h00_tu_20101106_part11", "SWH-05-20101106", "leo ni siku nzuri", "<music> leo ni siku nzuri"),
    ("16k-emission_swahili_05h30_-_06h00_tu_20101106_part12", "SWH-05-20101106", "muziki", "<music>"),
    ("16k-emission_swahili_15h00_-_16h00_tu_20101107_part1", "SWH-15-20101107", "habari za asubuhi", "habari za asubuhi <UNK>"),
    ("16k-emission_swahili_15h00_-_16h00_tu_20101107_part2", "SWH-15-20101107", "karibu sana", "karibu sana"),
    ("16k-emission_swahili_15h00_-_16h00_tu_20101107_part3", "SWH-15-20101107", "gone", "hii haipo"),
    ("16k-emission_swahili_05h30_-_06h00_tu_20101108_part1", "SWH-05-20101108", "watoto wanacheza", "watoto wanacheza"),
    ("16k-emission_swahili_05h30_-_06h00_tu_20101108_part2", "SWH-05-20101108", "broken", "hii imeharibika"),
    ("16k-emission_swahili_05h30_-_06h00_tu_20101108_part3", "SWH-05-20101108", "asante", "asante"),
]
TEST = [("16k-emission_swahili_05h30_-_06h00_tu_20101124_part001g", "SWH-05-20101124", "karibu nyumbani", "karibu nyumbani")]
MISSING = {TRAIN[5][0]}
CORRUPT = {TRAIN[7][0]}


@pytest.fixture(scope="module")
def alffa(tmp_path_factory, speak):
    root = tmp_path_factory.mktemp("alffa") / "ALFFA_PUBLIC" / "ASR" / "SWAHILI" / "data"
    return make_alffa(root, {"train": TRAIN, "test": TEST}, speak, missing=MISSING, corrupt=CORRUPT)


def test_alffa_only_run_splits_dev_by_speaker_and_skips_bad_audio(alffa, tmp_path):
    proc = run_recipe("swahili", tmp_path, "--alffa-dir", str(alffa), "--test-sets", "test_alffa",
                      "--alffa-dev-fraction", "0.2", "--prep-num-jobs", "1")
    log = proc.stdout + proc.stderr
    train, dev = cuts_by_id(tmp_path, "train"), cuts_by_id(tmp_path, "dev")
    usable = {u for u, *_ in TRAIN} - MISSING - CORRUPT
    assert set(train) | set(dev) == usable and not set(train) & set(dev)
    speakers = lambda cuts: {c.supervisions[0].speaker for c in cuts.values()}  # noqa: E731
    assert dev and train and not speakers(train) & speakers(dev)
    # Deterministic: the rule, applied to the speakers' counts, names the same dev speakers.
    from udistil.recipes.alffa import dev_speakers

    counts = Counter(spk for u, spk, *_ in TRAIN if u in usable)
    assert speakers(dev) == dev_speakers(counts, 0.2)
    # One line per skipped file, and the count.
    assert sum(f"recording {u}" in log for u in MISSING | CORRUPT) == 2
    assert "skipped 1 recordings with missing audio and 1 with unreadable audio" in log
    # Tags stay in the reference as written (scoring removes them).
    every = {**train, **dev}
    assert every[TRAIN[2][0]].supervisions[0].text == "<music>"
    assert every[TRAIN[3][0]].supervisions[0].text == "habari za asubuhi <UNK>"
    # test's "/my_dir/wav/<spk>/..." found under test/wav5/<spk>/.
    (cut,) = cuts_by_id(tmp_path, "test_alffa").values()
    assert cut.id == TEST[0][0] and "/test/wav5/SWH-05-20101124/" in cut.recording.sources[0].source
    assert all(c.supervisions[0].language == "sw" for c in every.values())


def test_bad_audio_stops_without_skip_naming_the_file(alffa, tmp_path):
    proc = run_recipe("swahili", tmp_path, "--alffa-dir", str(alffa), "--test-sets", "test_alffa",
                      "--skip-bad-audio", "false", "--prep-num-jobs", "1", check=False)
    assert proc.returncode != 0
    assert f"recording {next(iter(MISSING))}" in proc.stderr and "--skip-bad-audio" in proc.stderr


def test_non_utf8_text_names_the_users_file(tmp_path, speak):
    root = make_alffa(tmp_path / "data", {"train": [(u, s, sp, "cote d'ivoire ndiyo" if i == 1 else w)
                                                   for i, (u, s, sp, w) in enumerate(TRAIN[:2])]},
                      speak, latin1_text=True)
    text = root / "train" / "text"
    text.write_bytes(text.read_bytes().replace(b"cote d'ivoire", "côte d'ivoire".encode("latin-1")))
    from udistil.recipes.alffa import prepare_alffa_split

    with pytest.raises(UdistilError, match=rf"{text}:2: not UTF-8"):
        prepare_alffa_split(root, "train", tmp_path / "m", "sw", "train", work_dir=tmp_path / "work")


def test_import_kaldi_dir_on_the_release_points_to_prepare_alffa(alffa, tmp_path):
    from udistil.data.kaldi_dir import import_kaldi_dir

    for skip in (False, True):
        with pytest.raises(UdistilError, match="udistil prepare-alffa"):
            import_kaldi_dir(alffa / "test", "sw", tmp_path / "m", "alffa", skip_bad_audio=skip)


def test_prepare_alffa_cli_skips_and_counts(alffa, tmp_path, caplog):
    from udistil.bin.main import main

    assert main(["prepare-alffa", "--corpus-dir", str(alffa), "--split", "train", "--set", "train",
                 "--prefix", "sw", "--out-dir", str(tmp_path / "m"), "--work-dir", str(tmp_path / "w"),
                 "--skip-bad-audio"]) == 0
    assert main(["prepare-alffa", "--corpus-dir", str(alffa), "--split", "train", "--set", "train",
                 "--prefix", "sw", "--out-dir", str(tmp_path / "m2"), "--work-dir", str(tmp_path / "w2")]) == 1
