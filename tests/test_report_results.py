"""RESULTS.md (stage 8) generated from real decode folders of a tiny teacher and a student.

The exp/ tree is made by the real commands: `udistil decode` with the tiny random Whisper
as teacher, `udistil make-student` (1-1) and a 2-step `udistil distill` for the student,
then `udistil decode` of the exported student.  The report's numbers are then compared
with the decode folders' wer.json files and with the loaded models.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from udistil.bin.main import main
from udistil.data.manifests import write_cuts
from udistil.errors import UdistilError
from udistil.models.spec import load_whisper
from udistil.report.results import SIZE_ROW, filter_report_dirs, git_revision, write_results

from test_pseudo_label import make_cut

LABELLED = [("good morning everyone", "en"), ("habari za asubuhi", "sw"), ("the sun is hot", "en")]
UNLABELLED = ["the train leaves at noon", "karibu nyumbani"]


def udistil(*argv):
    assert main([str(a) for a in argv]) == 0, argv


@pytest.fixture(scope="module")
def exp_tree(tmp_path_factory, speak, tiny_whisper_dir):
    """recipe/exp with teacher decodes of two sets and one distilled, decoded 1-1 student."""
    root = tmp_path_factory.mktemp("recipe")
    wavs = root / "wavs"
    wavs.mkdir()

    def spoken_cut(cut_id, text, lang, reference):
        path = wavs / f"{cut_id}.wav"
        speak(text, voice=lang, path=path)
        return make_cut(path, cut_id, lang, reference)

    test_a = [spoken_cut(f"a{i}", text, lang, text) for i, (text, lang) in enumerate(LABELLED)]
    # test_b has no references: its WER and CER are null, shown as "-".
    test_b = [spoken_cut(f"b{i}", text, "en", "") for i, text in enumerate(UNLABELLED)]
    data = root / "data"
    write_cuts(test_a, data / "cuts_test_a.jsonl.gz")
    write_cuts(test_b, data / "cuts_test_b.jsonl.gz")

    exp = root / "exp"
    teacher = exp / "models" / "teacher"
    shutil.copytree(tiny_whisper_dir, teacher)
    student = exp / "student_1-1_none"
    udistil("make-student", "--teacher", teacher, "--encoder-layers", 1, "--decoder-layers", 1,
            "--out", root / "student_init")
    for part in ("test_a", "test_b"):
        udistil("decode", "--model", teacher, "--batch-size", 4, "--in", data / f"cuts_{part}.jsonl.gz",
                "--out", exp / "teacher" / f"decode_{part}")
    # The teacher's decode of test_a is a pseudo-labelled CutSet: enough to train 2 steps on.
    labelled = exp / "teacher" / "decode_test_a" / "cuts.jsonl.gz"
    udistil("distill", "--teacher", teacher, "--student", root / "student_init", "--train", labelled,
            "--dev", labelled, "--exp", student, "--max-steps", 2, "--batch-size", 2,
            "--valid-every", 1, "--warmup-steps", 1, "--num-workers", 0)
    for part in ("test_a", "test_b"):
        udistil("decode", "--model", student / "best", "--batch-size", 4,
                "--in", data / f"cuts_{part}.jsonl.gz", "--out", student / f"decode_{part}")
    return exp


def table(markdown: str, heading: str) -> dict[str, dict[str, str]]:
    """{first cell: {column: cell}} of the markdown table under `## heading`."""
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("|") and not line.startswith("|---")]
    header = rows[0]
    return {cells[0]: dict(zip(header, cells)) for cells in rows[1:]}


def wer_json(path):
    return json.loads((path / "wer.json").read_text())


def fmt(value):
    return "-" if value is None else f"{value:.1f}"


def test_results_md_matches_decodes_models_and_speeds(exp_tree, tmp_path):
    out = tmp_path / "RESULTS.md"
    udistil("report", "--exp", exp_tree, "--out", out, "--refs", "--command", "./run.sh --stage 8")
    md = out.read_text()
    student = "student_1-1_none"
    main_table = table(md, "WER / CER (%)")
    assert list(main_table) == ["teacher", student]  # teacher first

    dirs = {"teacher": exp_tree / "teacher", student: exp_tree / student}
    for name, d in dirs.items():
        for part in ("test_a", "test_b"):
            w = wer_json(d / f"decode_{part}")
            assert main_table[name][part] == f"{fmt(w['wer'])} / {fmt(w['cer'])}"
    assert main_table["teacher"]["test_b"] == "- / -"  # no references in test_b
    assert wer_json(dirs["teacher"] / "decode_test_a")["wer"] is not None

    # Params: what the loaded models hold; layers from their configs; filter and steps.
    for name, model_dir in (("teacher", exp_tree / "models" / "teacher"), (student, dirs[student] / "best")):
        model, _ = load_whisper(str(model_dir))
        assert main_table[name]["params (M)"] == f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}"
    assert main_table["teacher"]["enc-dec layers"] == "2-2"
    assert main_table[student]["enc-dec layers"] == "1-1"
    assert main_table[student]["filter"] == "none" and main_table["teacher"]["filter"] == "-"
    summary = json.loads((dirs[student] / "training_summary.json").read_text())
    assert main_table[student]["train steps"] == str(summary["steps"]) == "2"

    # Speed relative to the teacher, by hand from the four wer.json files.
    def audio_per_wall(d):
        ws = [wer_json(d / f"decode_{p}") for p in ("test_a", "test_b")]
        return sum(w["audio_s"] for w in ws) / sum(w["wall_s"] for w in ws)
    ratio = audio_per_wall(dirs[student]) / audio_per_wall(dirs["teacher"])
    assert main_table[student]["speed × teacher"] == f"{ratio:.2f}"
    assert main_table["teacher"]["speed × teacher"] == "1.00"

    # Per-language WER: one column per set and language found.
    per_language = table(md, "WER per language (%)")
    assert set(per_language["teacher"]) == {"model", "test_a en", "test_a sw", "test_b en"}
    for name, d in dirs.items():
        per = wer_json(d / "decode_test_a")["per_language"]
        assert per_language[name]["test_a en"] == fmt(per["en"]["wer"])
        assert per_language[name]["test_a sw"] == fmt(per["sw"]["wer"])
    # Its last row weighs each column: clips and reference words of that set and language.
    per = wer_json(dirs["teacher"] / "decode_test_a")["per_language"]
    assert per["en"]["ref_words"] > 0
    assert per_language[SIZE_ROW]["test_a en"] == f"{per['en']['n']} / {per['en']['ref_words']}"
    assert per_language[SIZE_ROW]["test_a sw"] == f"{per['sw']['n']} / {per['sw']['ref_words']}"
    assert list(per_language)[-1] == SIZE_ROW

    # Provenance and links.
    assert "- command: `./run.sh --stage 8`" in md
    assert f"- commit: `{git_revision()}`" in md
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=exp_tree.parent).returncode  # tmp dir: not a checkout
    assert head != 0 and git_revision(exp_tree) == "unknown"
    assert re.search(r"- machine: .*\d+ CPUs, \d+ torch threads, GPU ", md)
    for link in re.findall(r"\]\(([^)]+decode_[^)]+)\)", md):
        assert (out.parent / link / "wer.json").exists()
    assert md.count("decode_test_") >= 4


def test_teacher_only_and_student_not_decoded(exp_tree, tmp_path, monkeypatch):
    exp = tmp_path / "exp"
    shutil.copytree(exp_tree / "teacher", exp / "teacher")
    shutil.copytree(exp_tree / "models", exp / "models")
    monkeypatch.setenv("UDISTIL_RUN_COMMAND", "./run.sh --stage 8 --stop-stage 8")
    md = write_results(exp).read_text()  # default: RESULTS.md beside exp/
    assert (tmp_path / "RESULTS.md").exists()
    assert list(table(md, "WER / CER (%)")) == ["teacher"]
    assert "- command: `./run.sh --stage 8 --stop-stage 8`" in md

    # A trained student that has not been decoded yet (only its model, no decode_*).
    shutil.copytree(exp_tree / "student_1-1_none" / "best", exp / "student_1-1_proxy_wer" / "best")
    md = write_results(exp).read_text()
    row = table(md, "WER / CER (%)")["student_1-1_proxy_wer"]
    assert row["test_a"] == row["test_b"] == "not decoded" and row["speed × teacher"] == "-"
    assert row["filter"] == "proxy_wer" and row["train steps"] == "-"
    assert "- student_1-1_proxy_wer: not decoded" in md


def test_later_rounds_students_follow_round_1s_with_their_round_in_the_name(exp_tree, tmp_path, capsys):
    """Round R > 1 of self-training keeps its students in the directory `udistil report
    --round-dirs` gives run.sh (exp/roundR); RESULTS.md lists them, round by round, after round 1's."""
    exp = tmp_path / "exp"
    for part in ("teacher", "models", "student_1-1_none"):
        shutil.copytree(exp_tree / part, exp / part, symlinks=True)
    assert main(["report", "--exp", str(exp), "--round-dirs", "3"]) == 0
    dirs = capsys.readouterr().out.split()
    assert dirs == [str(exp), str(exp / "round2"), str(exp / "round3")]
    for directory in (dirs[2], dirs[1]):  # made out of order: listed in round order
        shutil.copytree(exp_tree / "student_1-1_none", Path(directory) / "student_1-1_fusion", symlinks=True)
    (exp / "round10").mkdir()  # a round with nothing in it yet adds no row
    md = write_results(exp, tmp_path / "RESULTS.md").read_text()
    main_table = table(md, "WER / CER (%)")
    assert list(main_table) == ["teacher", "student_1-1_none", "round2/student_1-1_fusion",
                                "round3/student_1-1_fusion"]
    row, first = main_table["round2/student_1-1_fusion"], main_table["student_1-1_none"]
    assert row["filter"] == "fusion" and row["test_a"] == first["test_a"] and row["train steps"] == "2"
    assert "- round2/student_1-1_fusion: [test_a](exp/round2/student_1-1_fusion/decode_test_a)" in md


def test_filter_quality_report_is_included(exp_tree, tmp_path):
    exp = tmp_path / "exp"
    shutil.copytree(exp_tree / "teacher", exp / "teacher")
    (exp / "report").mkdir()
    (exp / "report" / "filter_quality.md").write_text(
        "# Filter quality (dev)\n\n## all (4 cuts)\n\n| filter | AUROC |\n|---|---|\n| proxy_wer | 0.900 |\n")
    md = write_results(exp, tmp_path / "out" / "RESULTS.md").read_text()
    section = md.split("## Filter quality (dev set)\n", 1)[1]
    assert "### Filter quality (dev)" in section and "#### all (4 cuts)" in section
    assert "| proxy_wer | 0.900 |" in section
    assert "(../exp/report/filter_quality.md)" in section  # link relative to the output file
    assert "## Filter quality (training pool)" not in md

    # The training pool's report (stage 8 writes it when the pool has references, where
    # `udistil report --filter-report-dirs` says) follows the dev one.
    dirs = dict(line.split("\t") for line in filter_report_dirs(exp).splitlines())
    assert dirs == {"dev": str(exp / "report"), "pool": str(exp / "report_pool")}
    Path(dirs["pool"]).mkdir()
    (Path(dirs["pool"]) / "filter_quality.md").write_text(
        "# Filter quality (train)\n\n## all (9 cuts)\n\n| filter | kept @thr | WER @thr |\n|---|---|---|\n"
        "| fusion | 6 | 41.0 |\n")
    md = write_results(exp, tmp_path / "out" / "RESULTS.md").read_text()
    dev, pool = md.split("## Filter quality (dev set)\n", 1)[1].split("## Filter quality (training pool)\n", 1)
    assert "| proxy_wer | 0.900 |" in dev and "| fusion | 6 | 41.0 |" not in dev
    assert "#### all (9 cuts)" in pool and "| fusion | 6 | 41.0 |" in pool
    assert "(../exp/report_pool/filter_quality.md)" in pool


def test_corrupt_wer_json_names_the_file(exp_tree, tmp_path, capsys):
    exp = tmp_path / "exp"
    shutil.copytree(exp_tree / "teacher", exp / "teacher")
    bad = exp / "teacher" / "decode_test_a" / "wer.json"
    bad.write_text('{"wer": 12.5, "cer": ')
    with pytest.raises(UdistilError, match=re.escape(str(bad))):
        write_results(exp, tmp_path / "RESULTS.md")
    bad.write_text(json.dumps({"wer": "twelve", "cer": 1.0, "n": 3, "audio_s": 1.0, "wall_s": 1.0}))
    with pytest.raises(UdistilError, match=re.escape(str(bad)) + ".*wer"):
        write_results(exp, tmp_path / "RESULTS.md")
    assert main(["report", "--exp", str(exp), "--out", str(tmp_path / "RESULTS.md")]) == 1
    assert str(bad) in capsys.readouterr().err
    assert not (tmp_path / "RESULTS.md").exists()  # nothing half-written


def test_the_recorded_command_names_no_path_of_the_machine(repo_root, tmp_path):
    """RESULTS.md's command reruns from any clone: a recipe called by its absolute path is
    written relative to the run directory inside the checkout, else to the checkout."""
    from udistil.report.results import run_command

    recipe = repo_root / "egs" / "swahili" / "run.sh"
    typed = f"{recipe} --alffa-dir /data/alffa --stage 8"
    assert run_command(typed, cwd=repo_root / "egs" / "swahili") == "./run.sh --alffa-dir /data/alffa --stage 8"
    assert run_command(typed, cwd=repo_root / "egs" / "swahili" / "exp") == "../run.sh --alffa-dir /data/alffa --stage 8"
    assert run_command(typed, cwd=tmp_path) == "egs/swahili/run.sh --alffa-dir /data/alffa --stage 8"
    assert run_command("./run.sh --nj 4", cwd=tmp_path) == "./run.sh --nj 4"
