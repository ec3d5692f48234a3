"""Registry of training methods: name -> :class:`~normbench.methods.base.Method` subclass.

``build_method(name, **options)`` builds one; an unknown name lists the valid ones. Methods are composed
with ``+`` in a name (``svb+bbn``), each part built with its own options.
"""

from __future__ import annotations

from typing import Any

from normbench.methods.base import Method

METHODS: dict[str, type[Method]] = {"none": Method}


class UnknownMethodError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator adding a method to the registry under ``cls.name``."""
    if cls.name in METHODS:
        raise ValueError(f"method {cls.name!r} is registered twice")
    METHODS[cls.name] = cls
    return cls


class Composite(Method):
    """Several methods applied together, each at its own hook points, in the order named."""

    def __init__(self, parts: list[Method]) -> None:
        self.parts = parts
        self.name = "+".join(p.name for p in parts)
        self.uses_weight_decay = all(p.uses_weight_decay for p in parts)
        self.graph_safe = all(p.graph_safe for p in parts)

    def attach(self, model):
        for p in self.parts:
            p.attach(model)

    def loss_term(self, model):
        terms = [t for t in (p.loss_term(model) for p in self.parts) if t is not None]
        return sum(terms) if terms else None

    def after_step(self, model, step):
        for p in self.parts:
            p.after_step(model, step)

    def after_epoch(self, model, epoch):
        return [rec for p in self.parts for rec in (p.after_epoch(model, epoch) or [])]

    def finalize(self, model):
        return [rec for p in self.parts for rec in p.finalize(model)]

    def state_dict(self):
        return {p.name: p.state_dict() for p in self.parts}

    def load_state_dict(self, state):
        for p in self.parts:
            p.load_state_dict(state.get(p.name, {}))


def method_names(name: str) -> list[str]:
    """Split a composite name (``svb+bbn``) and check every part exists."""
    parts = name.split("+")
    for part in parts:
        if part not in METHODS:
            raise UnknownMethodError(
                f"unknown method {part!r}; valid methods are: {', '.join(sorted(METHODS))}"
            )
    return parts


def effective_options(
    name: str, options: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """Each part of method ``name`` -> its options with the class's defaults filled in (``none`` has none).

    Two runs use the same method configuration exactly when their effective options are equal: a run that
    leaves ``n_iters`` at its default and one that sets it to that default are the same configuration.
    """
    import inspect

    options = options or {}
    out = {}
    for part in method_names(name):
        if part == "none":
            continue
        params = inspect.signature(METHODS[part].__init__).parameters.values()
        defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
        out[part] = {**defaults, **dict(options.get(part, {}))}
    return out


def build_method(name: str, options: dict[str, dict[str, Any]] | None = None) -> Method:
    """Build method ``name``; ``options`` maps each part's name to its keyword options."""
    options = options or {}
    parts = [METHODS[p](**options.get(p, {})) for p in method_names(name)]
    return parts[0] if len(parts) == 1 else Composite(parts)


__all__ = [
    "METHODS",
    "Method",
    "UnknownMethodError",
    "build_method",
    "effective_options",
    "method_names",
    "register_method",
]

# The methods register themselves on import (kept last: they import register_method from this module).
from normbench.methods import bbn as _bbn  # noqa: E402, F401
from normbench.methods import modulation as _modulation  # noqa: E402, F401
from normbench.methods import orthonormal as _orthonormal  # noqa: E402, F401
from normbench.methods import procrustes as _procrustes  # noqa: E402, F401
from normbench.methods import svb as _svb  # noqa: E402, F401
