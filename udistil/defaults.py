"""The package's defaults, printed for the shell: `python3 -m udistil.defaults`.

run.sh reads its decoding, selection and distillation option defaults from here, so what
stage 6 trains is what `udistil distill` trains with no options, and `./run.sh --help` shows
the same values as `udistil distill --help` and `udistil decode --help`.  Each line is a bash
associative-array assignment, `default[GROUP.FIELD]=VALUE`, for run.sh to `eval`.

Only torch-free modules are imported: run.sh asks before the venv exists (e.g. `--help` on a
fresh clone), with the system's python3.
"""
from __future__ import annotations

import shlex
from dataclasses import fields

from udistil.student.config import AugmentOptions, DataOptions, LossWeights, OptimOptions, RunOptions
from udistil.select.options import FALLBACK_KEEP_FRACTION
from udistil.teacher.options import DecodeOptions

GROUPS = {"data": DataOptions, "optim": OptimOptions, "run": RunOptions, "loss": LossWeights,
          "augment": AugmentOptions, "decode": DecodeOptions}


def shell_value(value) -> str:
    """How run.sh spells a default: booleans as true/false, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def defaults() -> dict[str, str]:
    table = {}
    for group, options in GROUPS.items():
        instance = options()
        for f in fields(options):
            value = getattr(instance, f.name)
            if value is None or isinstance(value, (bool, int, float, str)):
                table[f"{group}.{f.name}"] = shell_value(value)
    table["select.fallback_keep_fraction"] = shell_value(FALLBACK_KEEP_FRACTION)
    return table


def main() -> None:
    for key, value in defaults().items():
        print(f"default[{key}]={shlex.quote(value)}")


if __name__ == "__main__":
    main()
