"""Stage-1 corpus preparation for the recipes under egs/: one module per corpus format.

Each module turns one corpus's real on-disk format into the pair of stage-1 manifests that
run.sh's stage 2 reads, data/manifests/{recordings,supervisions}_<set>.jsonl.gz, with
`supervision.language` set to a Whisper code and `text` the corpus reference.  Where lhotse
has a recipe for the corpus, its parsing is used; what is ours is the layout check (a
missing file is named, with the layout the README asks for), the language code, and the
set naming.
"""
