"""Stage 5's defaults, in a module that imports nothing heavy (run.sh reads them through
`python3 -m udistil.defaults`)."""

# The kept fraction for filters with no natural threshold (nll_sum, sonar_sim, word_nll, ...).
FALLBACK_KEEP_FRACTION = 0.5
