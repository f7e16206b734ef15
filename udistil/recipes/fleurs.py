"""FLEURS (Google; CC-BY 4.0), one language config such as ar_eg or sw_ke.

Two layouts are accepted, because users have FLEURS in one of these two forms:

  lhotse's download (`lhotse download fleurs`, i.e. lhotse.recipes.fleurs.download_fleurs):
    <fleurs_dir>/<config>/{train,dev,test}/*.wav
    <fleurs_dir>/metadata/<config>/{train,dev,test}.tsv
  the google/fleurs dataset repository, with its audio tarballs extracted in place:
    <fleurs_dir>/data/<config>/audio/{train,dev,test}/*.wav   (or <fleurs_dir>/<config>/audio/...)
    <fleurs_dir>/data/<config>/{train,dev,test}.tsv

Both tsv files have the same seven columns (id, file name, raw transcription, normalised
transcription, characters, number of samples, gender).  Parsing is lhotse's
`prepare_single_fleurs_language`; the second layout is presented to it as the first with
symbolic links under work_dir.  The supervision text is FLEURS' normalised transcription
(lower case, no punctuation); the raw one is kept in custom["raw_text"].  lhotse labels the
language with the config ("ar_eg"); we write the Whisper code ("ar").
"""
from __future__ import annotations

import os
from pathlib import Path

from udistil.errors import UdistilError
from udistil.recipes.common import require, write_set

SPLITS = ("train", "dev", "test")
LAYOUT = ("<fleurs_dir>/<config>/{train,dev,test}/*.wav with <fleurs_dir>/metadata/<config>/{train,dev,test}.tsv "
          "(lhotse's download), or <fleurs_dir>/data/<config>/audio/{train,dev,test}/*.wav with "
          "<fleurs_dir>/data/<config>/{train,dev,test}.tsv (the google/fleurs repository, tarballs extracted)")


def lhotse_layout(fleurs_dir: Path, config: str, work_dir: Path) -> Path:
    """A directory in lhotse's layout for `config`: fleurs_dir itself or links under work_dir."""
    if (fleurs_dir / "metadata" / config).is_dir() and (fleurs_dir / config).is_dir():
        for split in SPLITS:
            require(fleurs_dir / "metadata" / config / f"{split}.tsv", f"FLEURS {config} {split}.tsv", LAYOUT)
            require(fleurs_dir / config / split, f"FLEURS {config} {split} audio directory", LAYOUT)
        return fleurs_dir / config
    for repo_dir in (fleurs_dir / "data" / config, fleurs_dir / config):
        if (repo_dir / "audio").is_dir():
            break
    else:
        raise UdistilError(f"{fleurs_dir}: no FLEURS config {config} found. Expected layout: {LAYOUT}")
    root = work_dir / "fleurs"
    (root / config).mkdir(parents=True, exist_ok=True)
    (root / "metadata" / config).mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        tsv = require(repo_dir / f"{split}.tsv", f"FLEURS {config} {split}.tsv", LAYOUT)
        audio = repo_dir / "audio" / split
        if not audio.is_dir():
            tarball = audio.with_suffix(".tar.gz")
            hint = f" (extract {tarball} there first)" if tarball.exists() else ""
            raise UdistilError(f"{audio}: FLEURS {config} {split} audio directory not found{hint}. "
                               f"Expected layout: {LAYOUT}")
        for link, target in ((root / config / split, audio), (root / "metadata" / config / f"{split}.tsv", tsv)):
            if link.is_symlink() or link.exists():
                link.unlink()
            os.symlink(target.resolve(), link)
    return root / config


def prepare_fleurs_split(fleurs_dir, config: str, split: str, out_dir, prefix: str, set_name: str, language: str,
                         num_jobs: int = 1, work_dir="data/local") -> None:
    """Write the manifests of FLEURS `config` (e.g. ar_eg) `split` as set `set_name`, language `language`."""
    from lhotse.recipes.fleurs import prepare_single_fleurs_language

    if split not in SPLITS:
        raise UdistilError(f"FLEURS split must be one of {SPLITS}, not {split!r}")
    fleurs_dir = require(fleurs_dir, "FLEURS directory", LAYOUT)
    lang_dir = lhotse_layout(fleurs_dir, config, Path(work_dir))
    try:
        manifests = prepare_single_fleurs_language(lang_dir, language=config, num_jobs=num_jobs)
    except FileNotFoundError as e:
        raise UdistilError(f"{e.filename}: listed in the FLEURS {config} tsv but not found "
                           f"(audio tarball not fully extracted?)") from e
    except ValueError as e:
        raise UdistilError(f"{lang_dir.parent / 'metadata' / config}: a FLEURS tsv line does not have the "
                           f"seven tab-separated columns ({e})") from e
    part = manifests[split]
    write_set(part["recordings"], part["supervisions"], out_dir, prefix, set_name, language,
              f"FLEURS {config} {split} ({fleurs_dir})")
