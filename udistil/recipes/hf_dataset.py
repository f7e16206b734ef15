"""A labelled speech set saved with Hugging Face `datasets` (`Dataset.save_to_disk`).

This is how sets without a lhotse recipe get in (SADA, Casablanca, in-house dialect sets):
whoever has them loads them once with `datasets` and saves them to disk; this module reads
that directory with `datasets.load_from_disk` (no network) and writes the stage-1 manifests.

    <dataset_dir>/dataset_dict.json + <split>/...   (a DatasetDict; choose the split)
    <dataset_dir>/dataset_info.json + data-*.arrow  (a single Dataset)

The audio column (default "audio") may be an `Audio` feature (bytes and/or a path; read
without decoding, so no torchcodec is needed) or a plain {"array", "sampling_rate"} dict.
Embedded audio is written once to files under wav_dir (original bytes, original format);
audio given as an existing path is used in place.  The text column is --text-column or the
first of TEXT_COLUMNS present; the utterance id is --id-column, else the audio file name
when those are unique, else "<set>_<row>".
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import Recording, SupervisionSegment

from udistil.errors import UdistilError
from udistil.recipes.common import require, write_set

log = logging.getLogger(__name__)

TEXT_COLUMNS = ("text", "sentence", "transcription", "transcript", "normalized_text", "raw_transcription")
LAYOUT = "a directory written by datasets' save_to_disk (dataset_dict.json or dataset_info.json inside)"


def load_split(dataset_dir: Path, split: str | None):
    try:
        import datasets
    except ImportError as e:
        raise UdistilError("reading a Hugging Face dataset directory needs the `datasets` package; "
                           "run tools/install.sh") from e
    try:
        ds = datasets.load_from_disk(str(dataset_dir))
    except FileNotFoundError as e:
        raise UdistilError(f"{dataset_dir}: not a dataset saved with save_to_disk ({e}). Expected: {LAYOUT}") from e
    if isinstance(ds, datasets.DatasetDict):
        if split is None:
            if len(ds) != 1:
                raise UdistilError(f"{dataset_dir}: holds splits {sorted(ds)}; say which with a split name")
            split = next(iter(ds))
        if split not in ds:
            raise UdistilError(f"{dataset_dir}: no split {split!r}; it has {sorted(ds)}")
        ds = ds[split]
    return ds


def write_audio(value, dest_stem: Path, where: str) -> Path:
    """The file behind one row's audio: an existing path, or the embedded audio written out."""
    if not isinstance(value, dict):
        raise UdistilError(f"{where}: audio column holds {type(value).__name__}, not an audio dict")
    if value.get("bytes"):
        suffix = Path(value.get("path") or "").suffix or ".wav"
        dest = dest_stem.with_suffix(suffix)
        if not dest.exists():
            tmp = dest.with_name(dest.name + ".tmp")
            tmp.write_bytes(value["bytes"])
            tmp.replace(dest)
        return dest
    if value.get("array") is not None:
        dest = dest_stem.with_suffix(".wav")
        if not dest.exists():
            sf.write(str(dest), np.asarray(value["array"], dtype=np.float32), int(value["sampling_rate"]))
        return dest
    if value.get("path") and Path(value["path"]).is_file():
        return Path(value["path"])
    raise UdistilError(f"{where}: no audio bytes, array or existing file (path {value.get('path')!r})")


def prepare_hf_dataset(dataset_dir, out_dir, prefix: str, set_name: str, language: str, split: str | None = None,
                       audio_column: str = "audio", text_column: str | None = None,
                       id_column: str | None = None, wav_dir=None) -> None:
    """Write the manifests of a saved `datasets` set as set `set_name` with language `language`."""
    from datasets import Audio

    dataset_dir = require(dataset_dir, "Hugging Face dataset directory", LAYOUT)
    ds = load_split(dataset_dir, split)
    columns = ds.column_names
    if audio_column not in columns:
        raise UdistilError(f"{dataset_dir}: no audio column {audio_column!r}; columns are {columns}")
    if text_column is None:
        text_column = next((c for c in TEXT_COLUMNS if c in columns), None)
        if text_column is None:
            raise UdistilError(f"{dataset_dir}: no text column among {TEXT_COLUMNS}; columns are {columns} "
                               "(name it with --text-column)")
    elif text_column not in columns:
        raise UdistilError(f"{dataset_dir}: no text column {text_column!r}; columns are {columns}")
    if id_column is not None and id_column not in columns:
        raise UdistilError(f"{dataset_dir}: no id column {id_column!r}; columns are {columns}")
    if isinstance(ds.features[audio_column], Audio):
        ds = ds.cast_column(audio_column, Audio(decode=False))

    wav_dir = Path(wav_dir or Path("data/local/hf") / set_name / "audio").resolve()
    wav_dir.mkdir(parents=True, exist_ok=True)
    texts = ds[text_column]
    if id_column is not None:
        ids = [str(x) for x in ds[id_column]]
    else:
        stems = [Path((a or {}).get("path") or "").stem for a in ds.select_columns([audio_column])[audio_column]]
        ids = stems if all(stems) and len(set(stems)) == len(stems) else [f"{set_name}_{i:06d}" for i in range(len(ds))]
    if len(set(ids)) != len(ids):
        raise UdistilError(f"{dataset_dir}: column {id_column!r} has duplicate ids")

    recordings, supervisions = [], []
    for i, (row_audio, text, utt_id) in enumerate(zip(ds[audio_column], texts, ids)):
        where = f"{dataset_dir} (row {i}, id {utt_id})"
        path = write_audio(row_audio, wav_dir / utt_id, where)
        try:
            rec = Recording.from_file(path, recording_id=utt_id)
        except Exception as e:
            raise UdistilError(f"{where}: cannot read audio {path} ({type(e).__name__}: {e})") from e
        recordings.append(rec)
        supervisions.append(SupervisionSegment(id=utt_id, recording_id=utt_id, start=0.0, duration=rec.duration,
                                               channel=0, text=(text or "").strip()))
    write_set(recordings, supervisions, out_dir, prefix, set_name, language, f"Hugging Face dataset {dataset_dir}")
