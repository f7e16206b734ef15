"""A short identity for a model directory: what "made by this teacher" means in a store.

It is the digest of udistil.parallel.fingerprint.model_identity (config and JSON files by
content, each weight file by its size and first and last MiB), without the directory's
path, so a model keeps its identity when it moves and any two checkpoints that differ in
practice get different ones.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from udistil.errors import UdistilError
from udistil.parallel.fingerprint import model_identity as model_files


def model_identity(model_dir) -> str:
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise UdistilError(f"{path}: no config.json; not a model directory")
    files = model_files(path)["files"]
    if not any(name.endswith((".safetensors", ".bin", ".pt")) for name in files):
        raise UdistilError(f"{path}: no weight file (*.safetensors, *.bin)")
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
