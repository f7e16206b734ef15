"""Export a Whisper model (any model spec) to a CTranslate2 directory that faster-whisper loads."""
from __future__ import annotations

from udistil.models.export import QUANTIZATIONS


def add_arguments(parser) -> None:
    from udistil.bin._model_args import add_model_cache_argument

    parser.add_argument("model", metavar="MODEL",
                        help="hub id, local transformers dir (teacher or student), or packaged:whisper-base")
    parser.add_argument("out_dir", metavar="OUT", help="CTranslate2 directory to write")
    parser.add_argument("--quantization", choices=QUANTIZATIONS, default="float32",
                        help="weight type stored in model.bin")
    parser.add_argument("--force", action="store_true", help="replace OUT if it is not empty")
    add_model_cache_argument(parser)


def run(args) -> int:
    from udistil.models.export import export_ctranslate2

    print(export_ctranslate2(args.model, args.out_dir, args.quantization, cache_dir=args.cache_dir,
                             force=args.force))
    return 0
