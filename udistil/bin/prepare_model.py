"""Make a model available offline as a transformers directory (hub id | local dir | packaged:NAME)."""
from __future__ import annotations


def add_arguments(parser) -> None:
    from udistil.bin._model_args import add_model_cache_argument

    parser.add_argument("spec", metavar="SPEC",
                        help="hub id, local transformers dir, packaged:whisper-base or packaged:whisper-tiny.en")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="directory to hold the ready model")
    add_model_cache_argument(parser)


def run(args) -> int:
    from udistil.models.spec import prepare_model

    print(prepare_model(args.spec, args.out_dir, cache_dir=args.cache_dir))
    return 0
