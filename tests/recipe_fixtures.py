"""Helpers for the recipe tests (tests/test_recipe_*.py): run a recipe's stages, read its cuts.

Each test builds a tiny corpus in that corpus's real on-disk layout and runs
`egs/<recipe>/run.sh --stage 1 --stop-stage 2` on it from a temporary working directory,
exactly as a user would from the recipe directory (outputs go to the current directory).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from udistil.data.manifests import read_cuts

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_recipe(recipe: str, workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", cmd_backend="local")
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "egs" / recipe / "run.sh"), "--stage", "1", "--stop-stage", "2",
         "--skip-install", "true", *args],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"egs/{recipe}/run.sh failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def cuts_by_id(workdir: Path, set_name: str) -> dict:
    return {cut.id: cut for cut in read_cuts(workdir / "data" / f"cuts_{set_name}.jsonl.gz")}


def place(segments: list[np.ndarray], gap_s: float = 0.3, rate: int = 16000):
    """Concatenate speech with silence gaps; return (signal, [(start_s, end_s), ...])."""
    gap = np.zeros(int(gap_s * rate), dtype=np.float32)
    parts, times, t = [gap], [], gap_s
    for seg in segments:
        times.append((round(t, 2), round(t + len(seg) / rate, 2)))
        parts += [seg, gap]
        t += (len(seg) + len(gap)) / rate
    return np.concatenate(parts), times


def write_audio(path: Path, samples: np.ndarray, rate: int = 16000, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(samples, dtype=np.float32), rate, **kw)
    return path


CV15_COLUMNS = ["client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes",
                "age", "gender", "accents", "variant", "locale", "segment"]
# Releases before the variant column (e.g. CV 9-12).
CV_OLD_COLUMNS = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accents",
                  "locale", "segment"]


def make_common_voice(root: Path, language: str, splits: dict, speak, voice: str,
                      columns=CV15_COLUMNS, rate: int = 48000) -> Path:
    """<root>/<language>/clips/*.mp3 (48 kHz, as Common Voice ships) and <split>.tsv files.

    splits: {"train": [(clip_id, sentence_as_in_tsv, spoken_text), ...], ...}
    """
    from udistil.tts.espeak import resample

    lang_dir = root / language
    for split, rows in splits.items():
        lines = ["\t".join(columns)]
        for clip_id, sentence, spoken in rows:
            audio = resample(speak(spoken, voice=voice), 16000, rate)
            write_audio(lang_dir / "clips" / f"{clip_id}.mp3", audio, rate, format="MP3")
            values = {"client_id": f"spk{clip_id[-1]}", "path": f"{clip_id}.mp3", "sentence": sentence,
                      "sentence_id": "s" + clip_id, "up_votes": "2", "down_votes": "0", "age": "twenties",
                      "gender": "", "accents": "", "variant": "", "locale": language, "segment": "",
                      "sentence_domain": ""}
            lines.append("\t".join(values[c] for c in columns))
        (lang_dir / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def make_fleurs_repo(root: Path, config: str, splits: dict, speak, voice: str) -> Path:
    """google/fleurs repository layout: data/<config>/audio/<split>/*.wav and data/<config>/<split>.tsv.

    splits: {"test": [(prompt_id, file_stem, raw_transcription, transcription), ...], ...}
    """
    cfg = root / "data" / config
    for split, rows in splits.items():
        lines = []
        for prompt_id, stem, raw, norm in rows:
            audio = speak(raw, voice=voice)
            write_audio(cfg / "audio" / split / f"{stem}.wav", audio)
            chars = " ".join("|".join(norm.split())) + " |"
            lines.append("\t".join([prompt_id, f"{stem}.wav", raw, norm, chars, str(len(audio)), "FEMALE"]))
        (cfg / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def make_kaldi_dir(data_dir: Path, utterances: list, speak, voice: str, wav_root: Path,
                   scp_prefix: str | None = None) -> Path:
    """A Kaldi data dir (wav.scp, text, utt2spk) with one wav per utterance under wav_root/<spk>/.

    utterances: [(utt_id, speaker, text), ...]; scp_prefix replaces wav_root in wav.scp
    (ALFFA ships "/my_dir/wav/..." placeholders).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    scp, text, utt2spk = [], [], []
    for utt, spk, words in utterances:
        wav = write_audio(wav_root / spk / f"{utt}.wav", speak(words, voice=voice))
        shown = f"{scp_prefix}/{spk}/{utt}.wav" if scp_prefix else str(wav)
        scp.append(f"{utt} {shown}")
        text.append(f"{utt} {words}")
        utt2spk.append(f"{utt} {spk}")
    for name, lines in (("wav.scp", scp), ("text", text), ("utt2spk", utt2spk)):
        (data_dir / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data_dir


# macOS AppleDouble header (what a "._<name>" file starts with): magic 0x00051607, version 2.
APPLE_DOUBLE = bytes.fromhex("00051607") + bytes.fromhex("00020000") + b"Mac OS X        " + bytes(16)


def make_alffa(root: Path, splits: dict, speak, missing=(), corrupt=(), latin1_text: bool = False) -> Path:
    """ALFFA Swahili as getalp/ALFFA_PUBLIC publishes it under ASR/SWAHILI/data (its files as released):

        train/{wav.scp,text,utt2spk,spk2utt}, train/wav/<speaker>/<utt>.wav
        test/{wav.scp,text,utt2spk,spk2utt},  test/wav5/<speaker>/<utt>.wav

    with the release's quirks: train's wav.scp paths are its authors' ("/home/tan/kaldi/swahili/
    data/train/wav/<spk>/<utt>.wav " with a trailing space), test's a placeholder ("/my_dir/wav/
    <spk>/<utt>.wav", though the folder is wav5); `text` lines end in runs of spaces and hold
    <UNK> / <music> tags (some lines are only a tag); macOS "._*" AppleDouble files and .DS_Store
    lie beside the files and wavs.  Test quirks added here: ids in `missing` are listed but have
    no wav, ids in `corrupt` have a wav that is not audio, latin1_text writes train/text in
    Latin-1 with a non-ASCII character.

    splits: {"train": [(utt_id, speaker, spoken_text, text_as_written), ...], "test": [...]}
    """
    placeholders = {"train": "/home/tan/kaldi/swahili/data/train/wav", "test": "/my_dir/wav"}
    folders = {"train": "wav", "test": "wav5"}
    for split, rows in splits.items():
        split_dir = root / split
        split_dir.mkdir(parents=True, exist_ok=True)
        scp, text, utt2spk, spk2utt = [], [], [], {}
        for utt, spk, spoken, written in rows:
            wav = split_dir / folders[split] / spk / f"{utt}.wav"
            if utt in corrupt:
                wav.parent.mkdir(parents=True, exist_ok=True)
                wav.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(64))
            elif utt not in missing:
                write_audio(wav, speak(spoken, voice="sw"))
            if wav.parent.is_dir():
                (wav.parent / f"._{utt}.wav").write_bytes(APPLE_DOUBLE)
            scp.append(f"{utt} {placeholders[split]}/{spk}/{utt}.wav" + (" " if split == "train" else ""))
            text.append(f"{utt} {written}" + " " * 18)
            utt2spk.append(f"{utt} {spk}")
            spk2utt.setdefault(spk, []).append(utt)
        encoding = "latin-1" if latin1_text and split == "train" else "utf-8"
        for name, lines in (("wav.scp", scp), ("text", text), ("utt2spk", utt2spk),
                            ("spk2utt", [f"{s} {' '.join(u)}" for s, u in spk2utt.items()])):
            (split_dir / name).write_text("\n".join(lines) + "\n", encoding=encoding if name == "text" else "utf-8")
            (split_dir / f"._{name}").write_bytes(APPLE_DOUBLE)
        (split_dir / ".DS_Store").write_bytes(bytes(32))
    return root
