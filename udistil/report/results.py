"""Stage 8: the recipe's RESULTS.md, generated from the decode folders under exp/.

Rows are models: the teacher (exp/teacher, model exp/models/teacher) first, then every
student exp/student_<E>-<D>_<filter>/ (model in its best/ export), in name order, then the
students of each later round of self-training, exp/round<R>/student_*/ (named
round<R>/student_*), round by round.
Columns are test sets: every decode_<set>/ folder of those models.  A cell is "WER / CER" from that
folder's wer.json (one decimal, "-" where the set has no references).  Besides that:

  * params (M), counted from the model directory's safetensors headers (nothing is
    loaded), or from config.json on the meta device when there are no safetensors;
  * encoder-decoder layers from config.json, the filter from the directory name, and the
    training steps from training_summary.json;
  * decoding speed relative to the teacher: sum(audio_s) / sum(wall_s) of the model's
    decodes divided by the teacher's, over the sets both decoded (like is compared with like);
  * a per-language WER table, links to every decode folder, and the filter-quality reports
    when they exist: the dev set's (exp/report/filter_quality.md) and the training pool's
    (exp/report_pool/filter_quality.md, written when the pool has references, which serve
    evaluation only: how much each filter keeps of what the students learn from, and the
    true WER of what it keeps);
  * at the top, the command line, the git commit, the date and the machine, so a number
    can be traced back to the code and the run that made it (icefall's RESULTS.md habit).

A decode folder whose wer.json is missing is an unfinished decode (shown as such, with a
warning); one whose wer.json is unreadable or malformed is an error naming the file.
"""
from __future__ import annotations

import datetime
import json
import logging
import math
import os
import platform
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from udistil.errors import UdistilError
from udistil.data.manifests import write_text_atomic
from udistil.evaluate.decode_outputs import WER_NAME, read_decode_dir
from udistil.evaluate.summary import one_decimal
from udistil.report.filter_quality import MARKDOWN_NAME as FILTER_QUALITY_NAME

logger = logging.getLogger(__name__)

TEACHER_EXP = "teacher"
TEACHER_MODEL = Path("models") / "teacher"
STUDENT_BEST = "best"
TRAINING_SUMMARY = "training_summary.json"
# The filter-quality reports RESULTS.md includes: (the set's role, its report directory under
# exp/, section title, what the section says about its set).  Stage 8 asks for the directories
# (`udistil report --filter-report-dirs`) and writes each role's report there.
FILTER_QUALITY_SECTIONS = (
    ("dev", "report", "Filter quality (dev set)", ""),
    ("pool", "report_pool", "Filter quality (training pool)",
     "The unlabelled pool the students are trained on, scored against its references, which "
     "serve this evaluation only: what each filter keeps (kept @thr) and the true WER of what it "
     "keeps (WER @thr); fusion's row is what the fusion student learnt from. "),
)
COMMAND_ENV = "UDISTIL_RUN_COMMAND"
DECODE_PREFIX = "decode_"
NOT_DECODED = "not decoded"
SIZE_ROW = "(clips / reference words)"
UNFINISHED = "unfinished"
_STUDENT_DIR = re.compile(r"^student_(\d+)-(\d+)_(.+)$")
# A student's initialisation (teacher layers, untrained), decoded so learning is visible.
_INIT_DIR = re.compile(r"^init_student_(\d+)-(\d+)$")
INIT_FILTER = "(init, untrained)"


# Round 1 of self-training is exp/ itself; round R > 1 (labelled by round R-1's student) has
# this directory under exp/, with its own labels, scores, selections, students and decodes.
_ROUND_DIR = re.compile(r"^round(\d+)$")


def round_dir(exp, round_number: int) -> Path:
    """Where round `round_number` of self-training keeps its outputs (run.sh asks for it)."""
    if round_number < 1:
        raise UdistilError(f"round {round_number}: rounds are numbered from 1")
    return Path(exp) if round_number == 1 else Path(exp) / f"round{round_number}"


def later_rounds(exp: Path) -> list[tuple[int, Path]]:
    """[(R, exp/round<R>)] of every later round found, in round order."""
    found = ((_ROUND_DIR.match(d.name), d) for d in exp.glob("round*") if d.is_dir())
    return sorted((int(m.group(1)), d) for m, d in found if m and int(m.group(1)) > 1)


def filter_report_dirs(exp) -> str:
    """One "<role>\t<directory>" line per filter-quality report, for stage 8 to write them."""
    return "\n".join(f"{role}\t{Path(exp) / directory}" for role, directory, _, _ in FILTER_QUALITY_SECTIONS)


@dataclass
class ModelRow:
    """One row of RESULTS.md: a model and its decodes (set -> wer.json, or None if unfinished)."""
    name: str
    exp_dir: Path
    model_dir: Path
    filter: str | None = None
    layers: tuple[int, int] | None = None
    params: int | None = None
    steps: int | None = None
    finished: bool | None = None
    decodes: dict[str, dict | None] = field(default_factory=dict)

    def speed_totals(self, sets) -> tuple[float, float]:
        """(audio seconds, wall seconds) summed over this model's finished decodes of `sets`."""
        done = [self.decodes[s] for s in sets if self.decodes.get(s) is not None]
        return sum(d["audio_s"] for d in done), sum(d["wall_s"] for d in done)


# ---------------------------------------------------------------- reading exp/

def _read_json(path: Path, what: str) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UdistilError(f"{path}: cannot read the {what} ({e})") from e
    if not isinstance(value, dict):
        raise UdistilError(f"{path}: the {what} should be a JSON object, found {type(value).__name__}")
    return value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_decode_summary(decode_dir: Path) -> dict:
    """wer.json of a finished decode folder, checked for the fields the report uses."""
    summary = read_decode_dir(decode_dir).summary  # also checks hyps.jsonl agrees with it
    wer_path = decode_dir / WER_NAME
    if not isinstance(summary, dict):
        raise UdistilError(f"{wer_path}: should be a JSON object; re-run the decode")
    problems = [k for k in ("wer", "cer") if summary.get(k) is not None and not _is_number(summary[k])]
    problems += [k for k in ("audio_s", "wall_s") if not _is_number(summary.get(k))]
    per_language = summary.get("per_language", {})
    if not isinstance(per_language, dict) or not all(isinstance(v, dict) for v in per_language.values()):
        problems.append("per_language")
    if problems:
        raise UdistilError(f"{wer_path}: missing or malformed {', '.join(problems)}; re-run the decode")
    return summary


def find_decodes(exp_dir: Path) -> dict[str, dict | None]:
    """{set: wer.json contents, or None for an unfinished decode} for exp_dir/decode_<set>/."""
    decodes = {}
    for d in sorted(exp_dir.glob(DECODE_PREFIX + "*")):
        if not d.is_dir():
            continue
        name = d.name[len(DECODE_PREFIX):]
        if (d / WER_NAME).exists():
            decodes[name] = read_decode_summary(d)
        else:
            logger.warning("%s has no %s: decode unfinished, reported as such", d, WER_NAME)
            decodes[name] = None
    return decodes


def count_parameters(model_dir: Path) -> int | None:
    """Parameters of a transformers model directory, without loading its weights.

    Safetensors headers list every stored tensor once (tied weights are stored once), so
    their sum equals sum(p.numel() for p in model.parameters()) of the loaded model.
    """
    files = sorted(model_dir.glob("*.safetensors"))
    if files:
        from safetensors import safe_open

        total = 0
        for path in files:
            try:
                with safe_open(str(path), framework="pt") as f:
                    total += sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
            except Exception as e:  # safetensors raises its own error types
                raise UdistilError(f"{path}: not a readable safetensors file ({e})") from e
        return total
    if (model_dir / "config.json").exists():
        # No safetensors (e.g. a pytorch_model.bin export): build the model on the meta
        # device from its config, which allocates nothing.
        import torch
        from transformers import AutoConfig, AutoModelForSpeechSeq2Seq

        config = AutoConfig.from_pretrained(str(model_dir))
        with torch.device("meta"):
            model = AutoModelForSpeechSeq2Seq.from_config(config)
        return sum(p.numel() for p in model.parameters())
    return None


def model_layers(model_dir: Path) -> tuple[int, int] | None:
    path = model_dir / "config.json"
    if not path.exists():
        return None
    config = _read_json(path, "model config")
    try:
        return int(config["encoder_layers"]), int(config["decoder_layers"])
    except (KeyError, TypeError, ValueError) as e:
        raise UdistilError(f"{path}: no encoder_layers/decoder_layers; is this a Whisper model?") from e


def parse_student_dir(name: str) -> tuple[int, int, str] | None:
    """'student_3-2_proxy_wer' -> (3, 2, 'proxy_wer'); None for any other name."""
    match = _STUDENT_DIR.match(name)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), match.group(3)


def _describe_model(row: ModelRow) -> ModelRow:
    if row.model_dir.is_dir():
        row.params = count_parameters(row.model_dir)
        row.layers = model_layers(row.model_dir) or row.layers
    else:
        logger.warning("%s: model directory not found; params and layers left blank", row.model_dir)
    return row


def find_models(exp: Path) -> list[ModelRow]:
    """The teacher (when exp/teacher exists), the decoded initialisations, every
    exp/student_<E>-<D>_<filter>/ and every later round's students."""
    rows = []
    if (exp / TEACHER_EXP).is_dir():
        rows.append(_describe_model(ModelRow("teacher", exp / TEACHER_EXP, exp / TEACHER_MODEL,
                                             decodes=find_decodes(exp / TEACHER_EXP))))
    for d in sorted(exp.glob("init_student_*")):
        match = _INIT_DIR.match(d.name)
        if match is None or not d.is_dir() or not find_decodes(d):
            continue
        rows.append(_describe_model(ModelRow(d.name, d, d, filter=INIT_FILTER, steps=0,
                                             layers=(int(match.group(1)), int(match.group(2))),
                                             decodes=find_decodes(d))))
    rows += find_students(exp)
    for number, directory in later_rounds(exp):
        rows += find_students(directory, prefix=f"{directory.name}/")
    return rows


def find_students(directory: Path, prefix: str = "") -> list[ModelRow]:
    """Every directory/student_<E>-<D>_<filter>/, named prefix + its directory's name."""
    rows = []
    for d in sorted(directory.glob("student_*")):
        parsed = parse_student_dir(d.name) if d.is_dir() else None
        if parsed is None:
            continue
        encoder, decoder, filter_name = parsed
        row = ModelRow(prefix + d.name, d, d / STUDENT_BEST, filter=filter_name, layers=(encoder, decoder),
                       decodes=find_decodes(d))
        if (d / TRAINING_SUMMARY).exists():
            summary = _read_json(d / TRAINING_SUMMARY, "training summary")
            row.steps, row.finished = summary.get("steps"), summary.get("finished")
        rows.append(_describe_model(row))
    return rows


def relative_speeds(rows: list[ModelRow]) -> dict[str, float | None]:
    """{model: (audio_s / wall_s of the model) / (that of the teacher)} over shared sets."""
    teacher = next((r for r in rows if r.name == "teacher"), None)
    speeds = {}
    for row in rows:
        speeds[row.name] = None
        if teacher is None:
            continue
        shared = [s for s, d in row.decodes.items() if d is not None and teacher.decodes.get(s) is not None]
        audio, wall = row.speed_totals(shared)
        t_audio, t_wall = teacher.speed_totals(shared)
        # A decode re-run that found its labels already done records wall_s ~ 0: no speed.
        if shared and wall > 0 and t_wall > 0 and t_audio > 0:
            speeds[row.name] = (audio / wall) / (t_audio / t_wall)
    return speeds


# ---------------------------------------------------------------- provenance

def udistil_checkout() -> Path:
    import udistil

    return Path(udistil.__file__).resolve().parent.parent


def git_revision(repo: Path | None = None) -> str:
    """Short commit of the udistil checkout, '+dirty' when tracked files changed; 'unknown'
    outside a git checkout."""
    repo = repo or udistil_checkout()

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        # Untracked files (data/, exp/ of a recipe run inside the checkout) are not code changes.
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def machine_description() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (f"{platform.node() or 'unknown host'}: {os.cpu_count()} CPUs, {torch.get_num_threads()} torch "
            f"threads, GPU {gpu}; Python {platform.python_version()}, torch {torch.__version__}")


def run_command(command: str | None, cwd: Path | None = None) -> str:
    """The command to record: --command, else $UDISTIL_RUN_COMMAND (run.sh sets it), else argv.

    Its program (run.sh or a recipe's) is written relative to the directory the run was made
    in when that lies inside the checkout (`./run.sh`, `../run.sh` from egs/ammi/ar), else
    relative to the checkout (`egs/mgb2/run.sh`): no path of the machine it ran on, so the
    command reruns from any clone."""
    words = shlex.split(command or os.environ.get(COMMAND_ENV) or shlex.join(sys.argv))
    if words and os.path.isabs(words[0]):
        program, checkout = Path(words[0]).resolve(), udistil_checkout()
        cwd = (cwd or Path.cwd()).resolve()
        if program.is_relative_to(checkout) and cwd.is_relative_to(checkout):
            relative = os.path.relpath(program, cwd)
            words[0] = relative if relative.startswith(".") else f"./{relative}"
        elif program.is_relative_to(checkout):
            words[0] = os.path.relpath(program, checkout)
    return shlex.join(words)


# ---------------------------------------------------------------- rendering

def _link(target: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(target, out_dir)).as_posix()


def _params(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f}"


def _context(row: ModelRow) -> str:
    """'30 s' for Whisper's window, 'clip+M' for a student encoding the clip plus M positions."""
    config = row.model_dir / "config.json"
    if not config.is_file():
        return "-"
    from udistil.models.audio_context import CONFIG_KEY, AudioContext

    try:
        context = AudioContext.from_dict(json.loads(config.read_text(encoding="utf-8")).get(CONFIG_KEY))
    except (ValueError, UdistilError):
        return "?"
    return f"clip+{context.margin}" if context.is_dynamic else "30 s"


def _steps(row: ModelRow) -> str:
    if row.steps is None:
        return "-"
    return f"{row.steps}" + ("" if row.finished in (None, True) else " (stopped early)")


def _column_size(rows: list[ModelRow], test_set: str, language: str | None) -> str:
    """`clips / reference words` of one set and language, from the first model that decoded it
    (every model decodes the same cuts)."""
    for row in rows:
        summary = (row.decodes.get(test_set) or {}).get("per_language", {}).get(language)
        if summary and summary.get("ref_words") is not None:
            return f"{summary.get('n')} / {summary['ref_words']}"
    return "-"


def _cell(row: ModelRow, test_set: str, key: str | None = None, language: str | None = None) -> str:
    if not row.decodes:
        return NOT_DECODED
    if test_set not in row.decodes:
        return "-"
    summary = row.decodes[test_set]
    if summary is None:
        return UNFINISHED
    if language is not None:
        summary = summary.get("per_language", {}).get(language)
        if summary is None:
            return "-"
    if key is not None:
        return one_decimal(summary.get(key))
    return f"{one_decimal(summary.get('wer'))} / {one_decimal(summary.get('cer'))}"


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(cells) + " |" for cells in body])


def _demote_headings(markdown: str, levels: int) -> str:
    """Nest an included report under our heading: '# X' -> '### X' for levels=2."""
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + levels) + " ", markdown, flags=re.M)


def render_results(rows: list[ModelRow], exp: Path, out_path: Path, command: str,
                   commit: str, date: str, machine: str) -> str:
    out_dir = out_path.parent
    sets = sorted({s for r in rows for s in r.decodes})
    speeds = relative_speeds(rows)
    lines = ["# Results", "",
             "Generated by `udistil report` from the decode folders under "
             f"`{_link(exp, out_dir)}/`; do not edit by hand, re-run the command instead.", "",
             f"- command: `{command}`",
             f"- commit: `{commit}`",
             f"- date: {date}",
             f"- machine: {machine}", ""]
    if not rows:
        lines += [f"No teacher or student folders found under `{exp}`.", ""]
        return "\n".join(lines)

    lines += ["## WER / CER (%)", "",
              "Cells are WER / CER in percent over normalised text (`-`: the set has no references). "
              "Speed: audio seconds decoded per wall second, summed over the sets that both the model "
              "and the teacher decoded, divided by the teacher's; all decodes come from stage 7 of the "
              "same run on the machine above, with the same batch settings.", ""]
    header = (["model", "params (M)", "enc-dec layers", "audio context", "filter", "train steps"]
              + sets + ["speed × teacher"])
    body = []
    for row in rows:
        layers = "-" if row.layers is None else f"{row.layers[0]}-{row.layers[1]}"
        speed = speeds[row.name]
        body.append([row.name, _params(row.params), layers, _context(row), row.filter or "-", _steps(row)]
                    + [_cell(row, s) for s in sets]
                    + ["-" if speed is None else f"{speed:.2f}"])
    lines += _table(header, body) + [""]

    columns = [(s, lang) for s in sets
               for lang in sorted({lang for r in rows if r.decodes.get(s)
                                   for lang in r.decodes[s].get("per_language", {})})]
    if columns:
        lines += ["## WER per language (%)", "",
                  f"The last row, `{SIZE_ROW}`, says what each column weighs: one word error moves its "
                  "cells by 100 / words points, and a few clips can decide which of two close models "
                  "looks better.  `benchmarks/larger_test.sh` scores English on a larger draw of the "
                  "mini corpus, with paired-bootstrap intervals against the teacher.", ""]
        header = ["model"] + [f"{s} {lang or '?'}" for s, lang in columns]
        body = [[row.name] + [_cell(row, s, "wer", lang) for s, lang in columns] for row in rows]
        body.append([SIZE_ROW] + [_column_size(rows, s, lang) for s, lang in columns])
        lines += _table(header, body) + [""]

    lines += ["## Decode folders", "",
              "Each holds hyps.jsonl (reference and hypothesis per cut), per_utt.txt (Kaldi-style "
              "alignments) and wer.json.", ""]
    for row in rows:
        links = [f"[{s}]({_link(row.exp_dir / (DECODE_PREFIX + s), out_dir)})" for s in row.decodes]
        lines.append(f"- {row.name}: " + (", ".join(links) if links else NOT_DECODED))
    lines.append("")

    for _, directory, title, about in FILTER_QUALITY_SECTIONS:
        filter_quality = exp / directory / FILTER_QUALITY_NAME
        if filter_quality.exists():
            lines += [f"## {title}", "",
                      f"{about}From [`{_link(filter_quality, out_dir)}`]({_link(filter_quality, out_dir)}) "
                      "(`udistil filter-report`; plots beside it).", "",
                      _demote_headings(filter_quality.read_text(encoding="utf-8").strip(), 2), ""]
    return "\n".join(lines)


def write_results(exp, out=None, command: str | None = None) -> Path:
    """Write RESULTS.md (default: beside exp/, the recipe root) from exp/; returns its path."""
    exp = Path(exp)
    if not exp.is_dir():
        raise UdistilError(f"{exp}: experiment directory not found")
    out_path = Path(out) if out else exp.parent / "RESULTS.md"
    rows = find_models(exp)
    if not any(r.name == "teacher" for r in rows):
        logger.warning("%s: no teacher folder; speeds relative to the teacher are left blank", exp)
    text = render_results(rows, exp, out_path, run_command(command), git_revision(),
                          datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                          machine_description())
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(text, out_path)
    logger.info("%s: %d models, %d test sets", out_path, len(rows), len({s for r in rows for s in r.decodes}))
    return out_path
