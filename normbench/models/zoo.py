"""Registration of every network of the five papers (metadata: paper, table/figure, depth, paper's count).

Paper keys: zaeemzadeh2020 (ProcResNet), jia2017 (SVB/BBN), oyedotun2020 (skip connections study),
xie2017 (orthonormality and modulation).
"""

from __future__ import annotations

from functools import partial

from normbench.models.preact import PreActResNet
from normbench.models.registry import register

# Pre-act bottleneck ResNet and its Plain twin (Zaeemzadeh et al. 2020, Table 1-2, Fig. 2-4).
_PREACT_PARAMS = {164: 1_710_000, 1001: 10_320_000}
for _depth in (20, 83, 164, 1001):
    register(
        f"preact_resnet{_depth}",
        partial(PreActResNet, _depth, skip=True),
        paper="zaeemzadeh2020",
        source="Table 1, Table 2, Fig. 3" if _depth != 1001 else "Table 2",
        depth=_depth,
        paper_params=_PREACT_PARAMS.get(_depth),
        description=f"pre-act bottleneck ResNet-{_depth} (9m+2, m={(_depth - 2) // 9})",
    )
for _depth in (20, 83, 164):
    register(
        f"plain{_depth}",
        partial(PreActResNet, _depth, skip=False),
        paper="zaeemzadeh2020",
        source="Table 1, Fig. 3",
        depth=_depth,
        description=f"Plain-{_depth}: pre-act bottleneck ResNet-{_depth} with every skip path removed",
    )
