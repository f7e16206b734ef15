"""Stage 8 reports: filter quality (filter_quality.py); RESULTS.md lives beside it."""
