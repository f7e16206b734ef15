"""Data: lhotse manifests, audio loading with validation, corpus import."""
