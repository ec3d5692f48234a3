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
    ``paper_classes`` output classes, or ``None`` where the paper gives none.
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


MODELS: dict[str, ModelInfo] = {}


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
) -> ModelInfo:
    """Add a model to the registry. ``builder(num_classes=..., in_channels=...)`` returns the network."""
    if name in MODELS:
        raise ValueError(f"model {name!r} is registered twice")
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
