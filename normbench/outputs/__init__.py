"""Outputs: what a person reads. Tables aggregated over seeds (:mod:`.tables`), figures from run logs
(:mod:`.figures`, :mod:`.probe_figures`), the paper's tables with our numbers beside them
(:mod:`.paper_tables`) and the HTML report (:mod:`.report`).

May import runs, verdicts, references and config, and the model registry only for a model's depth; no torch
at import (``tests/test_layout.py``).
"""
