"""ImageNet ResNets, ResNeXts and their plain twins (He et al. 2016 [v1, post-activation]; for ResNeXt the
ResNeXt paper, S. Xie et al. 2017). Built and counted here; training needs the user's ImageNet folder.

Layout (224x224 input; adaptive pooling makes smaller inputs work down to about 32 px):

    conv7x7(in -> 64, stride 2) - BN - ReLU - maxpool 3x3 stride 2
    4 stages, widths 64/128/256/512, stride 2 entering stages 2-4, blocks per stage ``layers``:
        basic (34):        y = ReLU(BN(conv3x3(ReLU(BN(conv3x3(x))))) + s(x))
        bottleneck (101):  y = ReLU(BN(conv1x1(ReLU(BN(gconv3x3(ReLU(BN(conv1x1(x))))))))  + s(x)),
                           bottleneck width b = planes * d/64 * C, output 4 * planes
    s = identity, or conv1x1(stride) + BN when the shape changes ("option B"); plain twins (``skip=False``)
    drop every skip path, projections included (Oyedotun et al.: "eliminating the skip connections")
    [head: conv3x3(-> 1024) - BN - ReLU]    only with ``head_width`` (Xie et al. Table 1, see below)
    global average pool - fully connected

The stride of a bottleneck sits on its 3x3 conv (as in fb.resnet.torch, torchvision and ResNeXt; He et al.
put it on the first 1x1); the parameter count is the same. ResNeXt-101 is 32 x 4d (ResNeXt paper,
Table 1): 44.18M parameters against Oyedotun et al.'s 44.3M (the 64 x 4d variant has 83.5M).

Xie et al. 2017, Table 1 ("Architectures for ImageNet ... with a slight variation"): the conv1-conv5 rows are
He et al.'s ResNet-34/101; the table adds a row "3x3, 1024" at 7x7 output between conv5_x and the pooling,
printed like the rows that span both columns (conv1, the max pooling, the classifier). ``head_width=1024``
builds it, as an extra Conv-BN-ReLU module named ``head_conv``. Xie et al. keep the names "34-layer" and
"101-layer"; the depth count of the registry (paper's convention) does not count ``head_conv``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from normbench.models.convnet import BasicBlock
from normbench.models.layers import Block, conv1x1, conv3x3, init_he


class Bottleneck(Block):
    """Post-activation bottleneck (He et al. 2016; grouped 3x3: ResNeXt), skip added before the last ReLU."""

    expansion = 4

    def __init__(
        self, c_in: int, width: int, c_out: int, stride: int = 1, groups: int = 1, skip: bool = True
    ) -> None:
        super().__init__()
        self.skip = skip
        self.transition = stride != 1 or c_in != c_out
        self.conv1 = conv1x1(c_in, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, c_out)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=False)
        self.shortcut: nn.Module | None = None
        if skip and self.transition:
            self.shortcut = nn.Sequential(conv1x1(c_in, c_out, stride), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.skip:
            out = out + (x if self.shortcut is None else self.shortcut(x))
        return self.relu(out)


class ImageNetResNet(nn.Module):
    """ImageNet ResNet / ResNeXt / plain network (see the module docstring)."""

    def __init__(
        self,
        layers: tuple[int, int, int, int],
        block: Literal["basic", "bottleneck"] = "bottleneck",
        num_classes: int = 1000,
        in_channels: int = 3,
        skip: bool = True,
        groups: int = 1,
        width_per_group: int = 64,
        head_width: int | None = None,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=False),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        blocks: list[nn.Module] = []
        c_in = 64
        for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            for i in range(count):
                stride = 2 if (stage > 0 and i == 0) else 1
                if block == "basic":
                    blocks.append(BasicBlock(c_in, planes, stride, skip=skip, shortcut="conv1x1"))
                    c_in = planes
                else:
                    width = planes * width_per_group // 64 * groups
                    c_out = planes * Bottleneck.expansion
                    blocks.append(Bottleneck(c_in, width, c_out, stride, groups=groups, skip=skip))
                    c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head_conv: nn.Module = nn.Identity()
        if head_width is not None:
            self.head_conv = nn.Sequential(
                conv3x3(c_in, head_width), nn.BatchNorm2d(head_width), nn.ReLU(inplace=False)
            )
            c_in = head_width
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        init_he(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head_conv(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(self.pool(out), 1))
