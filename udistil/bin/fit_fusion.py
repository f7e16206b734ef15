"""Stage 4: fit fusion's per-language calibration on the labelled dev set (applied label-free later)."""


def add_arguments(parser):
    parser.add_argument("--dev", required=True,
                        help="the dev CutSet scored by stage 4 (pseudo-labels, filter scores AND references)")
    parser.add_argument("--out", required=True, help="calibration JSON, e.g. exp/scores/fusion_calibration.json")
    parser.add_argument("--components", nargs="+", default=None,
                        help="label-free filters to combine (default: every one the dev set has)")


def run(args):
    from udistil.filters.fusion_calibration import fit_fusion, summary_lines

    calibration = fit_fusion(args.dev, args.out, args.components)
    print("\n".join(summary_lines(calibration)))
