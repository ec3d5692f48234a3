"""Probes of the four papers: cheap measurements of a model (and one batch) that the figures plot.

One module per family: :mod:`.gradients` (gradient-norm ratios, backward-error second moments, the Fig. 2
experiment of Zaeemzadeh et al.), :mod:`.spectra` (weight singular values), :mod:`.conditioning` (HOSVD
weight condition numbers, hidden-representation condition numbers), :mod:`.distributions` (activation and
weight distributions) and :mod:`.correlation` (filter correlation). Every function returns plain Python
data (lists, dicts, floats; ``inf``/``nan`` as floats); :func:`record_probes` runs a named selection and
returns strict-JSON data. See ``docs/probes.md`` for the maths and conventions.
"""

from normbench.models.fig2net import fig2_network
from normbench.probes._common import pick_spread
from normbench.probes.conditioning import (
    condition_number,
    hidden_condition_numbers,
    hosvd,
    hosvd_singular_values,
    representation_condition,
    weight_condition_numbers,
)
from normbench.probes.correlation import filter_cosines, weight_correlation
from normbench.probes.distributions import (
    activation_distributions,
    histogram,
    summarize,
    weight_distributions,
)
from normbench.probes.gradients import (
    backward_error_moments,
    block_grad_norm_ratios,
    find_blocks,
)
from normbench.probes.record import PROBES, record_probes
from normbench.probes.spectra import singular_value_histograms, svdvals, weight_singular_values
from normbench.runs.records import from_json_safe, json_safe

__all__ = [
    "PROBES",
    "activation_distributions",
    "backward_error_moments",
    "block_grad_norm_ratios",
    "condition_number",
    "fig2_network",
    "filter_cosines",
    "find_blocks",
    "from_json_safe",
    "hidden_condition_numbers",
    "histogram",
    "hosvd",
    "hosvd_singular_values",
    "json_safe",
    "pick_spread",
    "record_probes",
    "representation_condition",
    "singular_value_histograms",
    "summarize",
    "svdvals",
    "weight_condition_numbers",
    "weight_correlation",
    "weight_distributions",
    "weight_singular_values",
]
