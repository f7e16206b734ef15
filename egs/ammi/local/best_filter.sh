#!/usr/bin/env bash
# Prints the label-free single filter (fusion aside) with the highest AUROC for true WER > 80
# on the scored dev set, so that the student "on the best single filter" is chosen on val
# only.  Run after stage 5:
#     best=$(bash local/best_filter.sh exp/scores/cuts_dev.jsonl.gz exp/report_dev)
#     ./run.sh ... --stage 6 --train-filters "none fusion $best oracle_wer"
# The dev report (table and JSON) stays in the output directory.
set -euo pipefail
scored=${1:?usage: best_filter.sh SCORED_DEV_CUTS OUT_DIR}
out=${2:?usage: best_filter.sh SCORED_DEV_CUTS OUT_DIR}
udistil filter-report --no-plots --in "$scored" --out "$out" > "$out.log" 2>&1 \
  || { tail -n 5 "$out.log" >&2; exit 1; }
python3 - "$out/filter_quality.json" <<'PY'
import json, sys
from udistil.filters import filter_class
report = json.load(open(sys.argv[1], encoding="utf-8"))
block = report["languages"]["all"] if "all" in report["languages"] else next(iter(report["languages"].values()))
candidates = {name: r["auroc"] for name, r in block["filters"].items()
              if name != "fusion" and filter_class(name).label_free and r["auroc"] is not None}
if not candidates:
    sys.exit(f"{sys.argv[1]}: no label-free single filter has an AUROC")
best = max(sorted(candidates), key=candidates.get)
print(f"best single filter on dev: {best} (AUROC {candidates[best]:.3f}; "
      + ", ".join(f"{n} {a:.3f}" for n, a in sorted(candidates.items(), key=lambda kv: -kv[1])) + ")", file=sys.stderr)
print(best)
PY
