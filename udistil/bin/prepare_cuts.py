"""Stage 2: recordings + supervisions -> <= 30 s, 16 kHz mono, validated CutSet (bad audio skipped, counted)."""
from udistil.data.prepare_cuts import CHECK_AUDIO_MODES, MAX_DURATION, merge_prepared_shards, prepare_cuts
from udistil.errors import UdistilError


def add_arguments(parser):
    parser.add_argument("--recordings", help="lhotse RecordingSet (jsonl.gz) from stage 1")
    parser.add_argument("--supervisions", help="lhotse SupervisionSet (jsonl.gz) from stage 1")
    parser.add_argument("--out", required=True, help="output CutSet, e.g. data/cuts_train.jsonl.gz")
    parser.add_argument("--max-duration", type=float, default=MAX_DURATION,
                        help="longest cut in seconds (Whisper sees 30 s)")
    parser.add_argument("--split-long", action="store_true",
                        help="split over-long supervisions that have no text into equal pieces instead of dropping them")
    parser.add_argument("--check-audio", choices=CHECK_AUDIO_MODES, default="decode",
                        help="decode: read every cut once (catches silence, broken pipes); header: file headers only")
    parser.add_argument("--mono-dir", default=None,
                        help="where down-mixed copies of multi-channel recordings go (default: OUT's dir/wav_mono16k)")
    parser.add_argument("--shard", default=None, metavar="J/N",
                        help="make shard J of N (a block of the recordings sorted by id; a finished shard of "
                        "the same manifests is kept), e.g. --shard 3/8 (run.sh: one job per shard)")
    parser.add_argument("--merge", nargs="+", metavar="SHARD", default=None,
                        help="instead: merge these finished shards, in order, into --out")


def run(args):
    if args.merge:
        merge_prepared_shards(args.merge, args.out, args.recordings)
        return
    if not (args.recordings and args.supervisions):
        raise UdistilError("--recordings and --supervisions are needed (or --merge SHARD...)")
    shard = None
    if args.shard:
        try:
            j, n = (int(x) for x in args.shard.split("/"))
        except ValueError:
            raise UdistilError(f"--shard must be J/N (e.g. 3/8), not {args.shard!r}") from None
        shard = (j, n)
    prepare_cuts(args.recordings, args.supervisions, args.out, max_duration=args.max_duration,
                 split_long=args.split_long, check_audio=args.check_audio, mono_dir=args.mono_dir,
                 shard=shard)
