"""The model-cache option shared by the actions that convert or fetch a model (one definition)."""


def add_model_cache_argument(parser) -> None:
    parser.add_argument("--cache-dir", default=None,
                        help="where packaged models are converted once (default: $UDISTIL_MODEL_CACHE "
                             "or ~/.cache/udistil/models)")
