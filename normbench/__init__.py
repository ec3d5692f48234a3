"""normbench: a reproducibility benchmark for norm-preserving very deep networks.

Subpackages and modules, in pipeline order:

- ``normbench.data``       data sets behind one interface (digits, MNIST, CIFAR-10/100)
- ``normbench.models``     the model registry (every network of the five papers)
- ``normbench.methods``    training methods and constraints (Procrustes, SVB, BBN, orthonormality, ...)
- ``normbench.train``      the training loop, checkpoints, metrics log, provenance
- ``normbench.tables``     aggregation of run logs over seeds into tables
- ``normbench.figures``    figures drawn from run logs
- ``normbench.references`` paper numbers as data, one YAML per paper
- ``normbench.compare``    paper vs ours, tolerance rules and verdicts
- ``normbench.report``     the HTML report
- ``normbench.cli``        the ``normbench`` command line
"""

__version__ = "0.1.0"
