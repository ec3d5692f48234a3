"""Pre-activation ResNeXt for CIFAR (S. Xie, Girshick et al. 2017, "Aggregated residual transformations", the
ResNeXt paper; not the suite's xie2017), as trained by Oyedotun et al. (ResNeXt-164, Tables I-III, 2.5M).

Layout of ResNeXt-n (C x d), n = 9m + 2: the pre-act bottleneck ResNet of :mod:`normbench.models.preact` with
the 3x3 convolution split into C groups (cardinality) of d channels (bottleneck width):

    conv3x3(in -> 16)
    3 stages of m blocks, grouped widths C*d, 2*C*d, 4*C*d, outputs 64/128/256, stride 2 entering stages 2-3:
        y = x' + F(x),  F = conv1x1(-> 64) . ReLU . BN . gconv3x3_C . ReLU . BN . conv1x1(-> C*d) . ReLU . BN
    BN - ReLU - global average pool - fully connected

Aggregating C paths of ``1x1 -> 3x3 -> 1x1`` (Oyedotun et al. Eq. 6-8, Fig. 2 right) equals this grouped
form (ResNeXt paper, Fig. 3b-c). The blocks have three layers because two-layer grouped blocks collapse to a
wide dense block (ResNeXt paper, Sec. 3.3), so ResNeXt-164 is the bottleneck depth 9m + 2 with m = 18.

Oyedotun et al. give no cardinality or width. C x d = 4 x 8d (grouped widths 32/64/128) gives 2.47M
parameters at 10 classes (-1.0% from the paper's 2.5M); the neighbouring choices are far off: 2 x 16d 3.35M,
8 x 4d 2.04M, 16 x 2d 1.82M, 4 x 4d 1.05M, 8 x 8d 4.89M. Hence the default 4 x 8d.
"""

from __future__ import annotations

from normbench.models.preact import PreActResNet


def preact_resnext(
    depth: int,
    num_classes: int = 10,
    in_channels: int = 3,
    cardinality: int = 4,
    base_width: int = 8,
    skip: bool = True,
) -> PreActResNet:
    """Pre-act ResNeXt-``depth`` (``cardinality`` x ``base_width``d), outputs 64/128/256 as pre-act ResNet."""
    g = cardinality * base_width
    return PreActResNet(
        depth,
        num_classes=num_classes,
        in_channels=in_channels,
        skip=skip,
        widths=(g, 2 * g, 4 * g),
        out_widths=(64, 128, 256),
        groups=cardinality,
    )
