"""Check or write a stage's .done marker with the fingerprint of its options (exit 0: current, 3: not done)."""

# run.sh passes --redo-stale (and --input) before or among the KEY=VALUE options.
INTERMIXED_ARGUMENTS = True


def add_arguments(parser):
    parser.add_argument("action", choices=["check", "write"],
                        help="check: exit 0 if MARKER matches, 3 if absent (run the stage), 1 with a message if stale; "
                        "write: record the fingerprint after the stage")
    parser.add_argument("marker", help="the marker file, e.g. data/manifests/.done")
    parser.add_argument("options", nargs="*", help="KEY=VALUE pairs that change what the stage makes")
    parser.add_argument("--input", action="append", default=[], help="an input file the stage read (repeatable)")
    parser.add_argument("--redo-stale", action="store_true", help="remove a stale marker instead of stopping")


def run(args):
    from udistil.errors import UdistilError
    from udistil.parallel.fingerprint import check_marker, write_marker

    bad = [o for o in args.options if "=" not in o]
    if bad:
        raise UdistilError(f"options must be KEY=VALUE, not {bad[0]!r}")
    options = dict(o.split("=", 1) for o in args.options)
    if args.action == "write":
        write_marker(args.marker, options, args.input)
        return 0
    return 0 if check_marker(args.marker, options, args.input, redo=args.redo_stale) else 3
