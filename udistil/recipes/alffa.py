"""ALFFA Swahili (getalp/ALFFA_PUBLIC, ASR/SWAHILI/data; CC BY-NC-SA 3.0 as stated there).

Layout (a clone of the repository, or its ASR/SWAHILI/data directory):

    <alffa_dir>/{train,test}/{wav.scp,text,utt2spk,spk2utt}     Kaldi data dirs
    <alffa_dir>/{train,test}/**/<utterance>.wav                 the audio (test: wav5/<speaker>/)

The released wav.scp files point at a placeholder ("/my_dir/wav/<speaker>/<utt>.wav"), so
each path that does not exist is replaced by the file of the same name found under the
split's directory; a wav found nowhere is named in the error.  The fixed-up Kaldi dir goes
to work_dir and is imported with udistil's Kaldi importer (language sw).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from udistil.data.kaldi_dir import import_kaldi_dir
from udistil.errors import UdistilError
from udistil.recipes.common import require

SPLITS = ("train", "test")
LAYOUT = "<alffa_dir>/{train,test}/{wav.scp,text,utt2spk} with the .wav files somewhere under <alffa_dir>/{train,test}/"


def localise_kaldi_dir(split_dir: Path, out_dir: Path) -> Path:
    """Copy the Kaldi files of split_dir to out_dir with wav.scp paths that exist on this machine."""
    wav_scp = require(split_dir / "wav.scp", "ALFFA wav.scp", LAYOUT)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("text", "utt2spk", "segments", "reco2dur"):
        if (split_dir / name).is_file():
            shutil.copyfile(split_dir / name, out_dir / name)
    local_wavs = {p.name: p for p in split_dir.rglob("*.wav") if not p.name.startswith("._")}
    lines = []
    for number, line in enumerate(wav_scp.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise UdistilError(f"{wav_scp}:{number}: expected '<recording-id> <path>'")
        rec_id, path = parts
        if path.rstrip().endswith("|") or Path(path).is_file():
            lines.append(line)
            continue
        found = local_wavs.get(Path(path).name)
        if found is None:
            raise UdistilError(f"{wav_scp}:{number}: {path} does not exist and no {Path(path).name} "
                               f"was found under {split_dir}")
        lines.append(f"{rec_id} {found.resolve()}")
    (out_dir / "wav.scp").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out_dir


def prepare_alffa_split(alffa_dir, split: str, out_dir, prefix: str, set_name: str,
                        work_dir="data/local/alffa") -> None:
    """Write the manifests of ALFFA Swahili `split` (train or test) as set `set_name`, language sw."""
    if split not in SPLITS:
        raise UdistilError(f"ALFFA split must be one of {SPLITS}, not {split!r}")
    alffa_dir = require(alffa_dir, "ALFFA Swahili data directory", LAYOUT)
    kaldi_dir = localise_kaldi_dir(require(alffa_dir / split, f"ALFFA {split} directory", LAYOUT),
                                   Path(work_dir) / split)
    import_kaldi_dir(kaldi_dir, "sw", out_dir, prefix, split=set_name)
