"""Model registry: every network of the four papers, by name.

``build_model(name, num_classes, in_channels)`` builds one; ``MODELS`` maps names to :class:`ModelInfo`.
Registration happens in :mod:`normbench.models.zoo`, imported here so the registry is always complete.
"""

from normbench.models import zoo as _zoo  # noqa: F401  (registers every model)
from normbench.models.registry import (
    MODELS,
    ModelInfo,
    UnknownModelError,
    build_model,
    count_params,
    get_model_info,
)

__all__ = ["MODELS", "ModelInfo", "UnknownModelError", "build_model", "count_params", "get_model_info"]
