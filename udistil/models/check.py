"""Stage 0's check that every model a run will need can be had before hours of work start.

`missing_models` lists, for the teacher and for what the chosen filters load (the proxy
ASR of proxy_wer, the SONAR encoders of sonar_sim, the TTS of pesq, the causal LM of nll
with --nll-lm), each one that cannot be had here, with how to get it; `check_models` stops
with all of them in one message.  Which filter needs which model is said here once; the
shell asks (`udistil check-models`).

What "can be had" means per kind of spec (models/spec.py resolves them):
  packaged:NAME   its weights package is installed (conversion happens on first use);
  a directory     a transformers directory with a readable config.json;
  a hub id        in the Hugging Face cache, or downloaded now when the hub may be asked
                  (not with HF_HUB_OFFLINE=1: then a missing one is listed).
SONAR and XTTS fetch their own weights on first use; only their packages are checked.
"""
from __future__ import annotations

import logging

from udistil.errors import UdistilError

log = logging.getLogger(__name__)

# Filters that load a model other than the teacher, and the option naming it.
PROXY_FILTERS = ("proxy_wer",)
SONAR_FILTERS = ("sonar_sim",)
TTS_FILTERS = ("pesq",)
LM_FILTERS = ("nll", "nll_sum", "word_nll")


def model_problem(spec: str) -> str:
    """Why `spec` cannot be had here ("" when it can); may download a hub id (module docstring)."""
    from udistil.models.packaged import packaged_files
    from udistil.models.spec import PACKAGED_PREFIX, _looks_like_path, check_model_dir, hub_offline, resolve_model

    spec = str(spec)
    try:
        if spec.startswith(PACKAGED_PREFIX):
            packaged_files(spec[len(PACKAGED_PREFIX):])
        elif _looks_like_path(spec):
            from pathlib import Path

            check_model_dir(Path(spec).expanduser().resolve())
        else:
            from udistil.models.spec import hub_model_missing

            why = hub_model_missing(spec)
            if why and hub_offline():
                return (f"{why} and HF_HUB_OFFLINE=1: download it where the hub can be reached "
                        f"(huggingface-cli download {spec}) or unset HF_HUB_OFFLINE")
            if why:
                resolve_model(spec)  # downloads it now, at stage 0, or says why not
    except UdistilError as e:
        return str(e)
    return ""


def missing_models(teacher: str, filters=(), proxy: str | None = None, tts: str = "espeak",
                   nll_lm: str | None = None) -> list[str]:
    """One line per model the run needs and cannot have: "ROLE SPEC: why; how to get it"."""
    filters = set(filters)
    needed = [("teacher", teacher)]
    if filters & set(PROXY_FILTERS):
        needed.append(("proxy (proxy_wer)", proxy or "packaged:whisper-tiny.en"))
    if nll_lm and filters & set(LM_FILTERS):
        needed.append(("language model (--nll-lm)", nll_lm))
    missing = []
    for role, spec in needed:
        why = model_problem(spec)
        if why:
            missing.append(f"{role} {spec}: {why}")
    if filters & set(SONAR_FILTERS):
        from udistil.filters.sonar_sim import import_sonar

        try:
            import_sonar()
        except UdistilError as e:
            missing.append(f"SONAR encoders (sonar_sim): {e}")
    if filters & set(TTS_FILTERS):
        try:
            if tts == "espeak":
                from udistil.tts.espeak import espeak_binary

                espeak_binary()
            elif tts == "xtts":
                import TTS.api  # noqa: F401  coqui-tts; XTTS-v2 itself downloads on first use
            else:
                raise UdistilError(f"--tts must be espeak or xtts, not {tts!r}")
        except UdistilError as e:
            missing.append(f"TTS {tts} (pesq): {e}")
        except Exception as e:  # ImportError, or a broken coqui-tts failing on import
            missing.append(f"TTS {tts} (pesq): coqui-tts does not import ({type(e).__name__}: {e}); "
                           "pip install coqui-tts, or use --tts espeak")
    return missing


def check_models(teacher: str, filters=(), proxy: str | None = None, tts: str = "espeak",
                 nll_lm: str | None = None) -> None:
    """Stop with one message listing every model the run needs and cannot have."""
    missing = missing_models(teacher, filters, proxy, tts, nll_lm)
    if missing:
        raise UdistilError(f"{len(missing)} model(s) this run needs cannot be had; nothing was run:\n  "
                           + "\n  ".join(missing))
    log.info("models for this run are available: teacher %s%s", teacher,
             f", proxy {proxy}" if set(filters) & set(PROXY_FILTERS) else "")
