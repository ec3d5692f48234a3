"""The model registry: one name -> constructor map with frozen metadata beside it.

Everything in the suite (configs, the workflow, tests, ``normbench models``) iterates this registry;
nothing keeps its own list of models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn


class UnknownModelError(KeyError):
    """Raised for a model name that is not in the registry; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of one registered network.

    ``paper_params`` is the parameter count the paper states (absolute number, not millions), for
    ``paper_classes`` output classes, or ``None`` where the paper gives none; ``paper_params_text`` is the
    figure as printed ("1.71M"), whose last digit sets the rounding part of the tolerance
    (:func:`normbench.models.summary.params_tolerance`).

    ``depth`` is the depth as the paper counts it; ``depth_rule`` says which layers that count includes, so it
    can be recounted from the built network (:func:`normbench.models.summary.count_depth`):
    ``"main"`` convolutions and the classifier, skip-path projections (``shortcut``) and Xie et al.'s extra
    ``head_conv`` excluded; ``"conv"`` every convolution, shortcuts included, classifier excluded (WRN);
    ``"longest"`` weight layers on the longest path (Inception-ResNet-v2, for which no paper gives a depth).

    ``params_deviation`` marks a paper count our network knowingly misses by more than the tolerance;
    ``params_note`` then explains why (it may also justify a choice where the count matches).
    ``paper_name`` is the network's label in the paper.
    """

    name: str
    builder: Callable[..., nn.Module]
    paper: str
    source: str
    depth: int
    family: str = "cifar"
    paper_params: int | None = None
    paper_classes: int = 10
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    paper_name: str = ""
    paper_params_text: str = ""
    params_note: str = ""
    params_deviation: bool = False
    depth_rule: str = "main"


MODELS: dict[str, ModelInfo] = {}
DEPTH_RULES = ("main", "conv", "longest")


def register(
    name: str,
    builder: Callable[..., nn.Module],
    *,
    paper: str,
    source: str,
    depth: int,
    family: str = "cifar",
    paper_params: int | None = None,
    paper_classes: int = 10,
    description: str = "",
    tags: tuple[str, ...] = (),
    paper_name: str = "",
    paper_params_text: str = "",
    params_note: str = "",
    params_deviation: bool = False,
    depth_rule: str = "main",
) -> ModelInfo:
    """Add a model to the registry. ``builder(num_classes=..., in_channels=...)`` returns the network."""
    if name in MODELS:
        raise ValueError(f"model {name!r} is registered twice")
    if depth_rule not in DEPTH_RULES:
        raise ValueError(f"model {name!r}: depth_rule must be one of {DEPTH_RULES}, got {depth_rule!r}")
    if params_deviation and not params_note:
        raise ValueError(f"model {name!r}: a parameter-count deviation needs a params_note explaining it")
    info = ModelInfo(
        name=name,
        builder=builder,
        paper=paper,
        source=source,
        depth=depth,
        family=family,
        paper_params=paper_params,
        paper_classes=paper_classes,
        description=description or (builder.__doc__ or "").strip().split("\n")[0],
        tags=tuple(tags),
        paper_name=paper_name,
        paper_params_text=paper_params_text,
        params_note=params_note,
        params_deviation=params_deviation,
        depth_rule=depth_rule,
    )
    MODELS[name] = info
    return info


def get_model_info(name: str) -> ModelInfo:
    """Return the metadata of ``name``; an unknown name raises an error listing the valid ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; valid models are: {', '.join(sorted(MODELS))}"
        ) from None


def build_model(name: str, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """Build the registered network ``name`` for a data set with the given classes and channels."""
    return get_model_info(name).builder(num_classes=num_classes, in_channels=in_channels)


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (BN running statistics are buffers and do not count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
