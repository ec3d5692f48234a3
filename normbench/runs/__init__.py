"""Runs: the run-folder format every stage agrees on.

A run folder holds ``config.json``, ``provenance.json``, ``metrics.jsonl`` and ``checkpoint.pt``. This wing owns
the metrics-log record codec and its JSON Schema (:mod:`.records`) and reading, writing and finding run folders
(:mod:`.folder`). It imports nothing else of the suite and no torch, so training writes and verdicts read the
same format.
"""
