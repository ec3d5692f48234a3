"""Training: everything that turns a run config into a run folder.

Owns the data sets (:mod:`.data`), batch pipelines (:mod:`.batches`), the training step as an object
(:mod:`.engine`), the trainer (:mod:`.trainer`), K seeds in one process (:mod:`.pack`), checkpoints
(:mod:`.checkpoint`) and provenance (:mod:`.provenance`). May import models, methods, probes, runs and config;
nothing downstream (verdicts, outputs, studies, cli).
"""
