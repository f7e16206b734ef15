"""Sharding (split/merge for --nj) and resumable per-cut output."""
