"""normbench: a reproducibility benchmark for norm-preserving very deep networks.

The package is laid out as the data flows; each wing's ``__init__`` says what it owns and what it may import
(``tests/test_layout.py`` enforces the arrows):

- ``normbench.config``      the suite's config: validation and one run config per (experiment, model, method, seed)
- ``normbench.models``      the model registry (every network of the papers)
- ``normbench.methods``     training methods and constraints (Procrustes, SVB, BBN, orthonormality, ...)
- ``normbench.probes``      cheap measurements of a model the figures plot (gradient ratios, spectra, ...)
- ``normbench.training``    data, batches, the training step (engine), the trainer, packing, checkpoints, provenance
- ``normbench.runs``        the run-folder format: the metrics-log record codec and its schema, reading runs
- ``normbench.studies``     work beside the training runs: the Fig. 2 grid, the throughput benchmark, estimates
- ``normbench.references``  paper numbers and claims as data, one YAML per paper
- ``normbench.verdicts``    paper vs ours: statistics, run accounting, protocol check, numbers, claims (no torch)
- ``normbench.outputs``     tables, figures, paper tables and the HTML report (no torch)
- ``normbench.cli``         the ``normbench`` command line

Arrows run one way: models/methods -> training -> runs <- probes; runs -> verdicts -> outputs; cli uses all.
"""

__version__ = "0.1.0"
