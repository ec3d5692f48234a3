"""The one number formatter of the suite's tables, comparison cells and paper tables.

``number(x, digits)``: ``-`` for a missing or non-finite value; an integral count (``integral=True``: depth,
blocks, layers) as an integer; from 1000 on a non-integral value and from a million on any value with 4
significant digits; else ``digits`` decimals. ``mean_std`` is ``mean ± std`` with the std left out when
there is only one value.
"""

from __future__ import annotations

import math
from typing import Any


def number(x: Any, digits: int = 2, integral: bool = False) -> str:
    """``x`` as a table prints it (see the module docstring)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return str(x)
    if integral and float(x).is_integer():
        return str(int(x))
    if isinstance(x, int):
        return str(x)
    if (abs(x) >= 1000 and not x.is_integer()) or abs(x) >= 1e6:
        return f"{x:.4g}"
    return f"{x:.{digits}f}"


def mean_std(m: float, s: float, digits: int = 2) -> str:
    """``m ± s`` with ``digits`` decimals; ``-`` without a mean, ``m`` alone without a finite std."""
    if not math.isfinite(m):
        return "-"
    return number(m, digits) if not math.isfinite(s) else f"{number(m, digits)} ± {number(s, digits)}"
