"""Stage 0: check that every model the run needs (teacher, proxy, SONAR, TTS, LM) can be had; one message lists what is missing."""
from udistil.models.check import check_models


def add_arguments(parser):
    parser.add_argument("--teacher", required=True, help="teacher spec (packaged:NAME, a directory or a hub id)")
    parser.add_argument("--filters", default="", help="the run's filters (space or comma separated)")
    parser.add_argument("--proxy", default=None, help="proxy ASR of proxy_wer (run.sh's --proxy)")
    parser.add_argument("--tts", default="espeak", help="TTS of pesq: espeak or xtts")
    parser.add_argument("--nll-lm", default=None, help="causal LM of the nll filters, if one is used")


def run(args):
    filters = args.filters.replace(",", " ").split()
    check_models(args.teacher, filters, proxy=args.proxy, tts=args.tts, nll_lm=args.nll_lm)
