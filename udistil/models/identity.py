"""A short identity for a model directory: what "made by this teacher" means in a store.

It hashes the config and, for each weight file, its size and its first and last MiB: cheap
(milliseconds on a 300 MB checkpoint) and different for any two checkpoints that differ in
practice (another model, another training step, a re-conversion to another dtype).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from udistil.errors import UdistilError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
_SAMPLE = 1 << 20


def model_identity(model_dir) -> str:
    path = Path(model_dir)
    config = path / "config.json"
    if not config.is_file():
        raise UdistilError(f"{path}: no config.json; not a model directory")
    digest = hashlib.sha256(config.read_bytes())
    weights = sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    if not weights:
        raise UdistilError(f"{path}: no weight file (*.safetensors, *.bin)")
    for file in weights:
        size = file.stat().st_size
        digest.update(f"{file.name}:{size}".encode())
        with open(file, "rb") as fh:
            digest.update(fh.read(_SAMPLE))
            if size > _SAMPLE:
                fh.seek(max(_SAMPLE, size - _SAMPLE))
                digest.update(fh.read(_SAMPLE))
    return digest.hexdigest()[:16]
