"""Which runs each of the papers' one-model figures draws: plain data, no plotting imports (the workflow reads
it at parse time, :mod:`normbench.outputs.probe_figures` draws it).
"""

from __future__ import annotations

_OYEDOTUN_MODELS = ("convnet164", "resnet164", "resnext164")  # PlainNet, ResNet, ResNeXt (164 layers)
_OYEDOTUN_PROBES = ("activation_dist", "weight_dist")  # "units' activations", "units' weights"

# Oyedotun Figs. 5-10 (MNIST: Plain activations, Plain weights, ResNet ..., ResNeXt ...) and Figs. A1-A6 (the
# appendix, the same on CIFAR-10): figure -> (data set, model, probe).
OYEDOTUN_UNIT_FIGURES: dict[str, tuple[str, str, str]] = {
    f"fig{prefix}{first + 2 * i + j}": (dataset, model, probe)
    for dataset, prefix, first in (("mnist", "", 5), ("cifar10", "A", 1))
    for i, model in enumerate(_OYEDOTUN_MODELS)
    for j, probe in enumerate(_OYEDOTUN_PROBES)
}

# Figures of records other than probes, drawn per experiment like a probe's figure (``--probe NAME``): name ->
# the method (a part of a run's method) whose runs log those records.
RECORD_FIGURES: dict[str, str] = {"procrustes_state": "procrustes"}
