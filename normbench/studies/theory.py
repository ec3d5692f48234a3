"""The papers' theorems, checked numerically (issue 17, item 4): one measurement per statement.

For every theorem, lemma or equation of the four papers that makes a measurable prediction, a check builds the
networks or matrices the statement is about, measures the quantity over the range the statement speaks of and
returns the measurements beside the bound or rate it predicts. It does not judge: the verdict is
:func:`normbench.verdicts.theory.judge` (the claims' PASS / FAIL / INCONCLUSIVE rules), the figure
:func:`normbench.outputs.theory.draw`; ``normbench theory`` (``workflow/rules/theory.smk``) runs the three.

A check returns a dict (JSON-ready):

- ``paper``, ``key`` (``<paper>/<theorem>``), ``where`` (section and number) and ``statement`` (quoted);
- ``series``: what is drawn, ``{label: {"x": [...], "y": [...], "kind": "measured" | "bound"}}``, with
  ``x_label``, ``y_label``, ``xscale``, ``yscale``;
- ``comparisons``: the judged points, each ``{"label", "measured"}`` (a number) or ``{"label", "samples"}``
  (a list: judged by its 95 % Student-t interval), with ``lower`` and/or ``upper`` and ``tolerance``
  (absolute, added to the band); ``kind: "limit"`` comparisons judge a quantity that should tend to 0 (see
  :mod:`normbench.verdicts.theory`);
- ``construction`` (how the objects were built) and ``premise`` (``"as stated"`` or what a deliberately
  violating variant changed).

Sizes: :data:`SCALES` (``small`` runs in the default pipeline in seconds, ``paper`` spans the statements'
ranges, e.g. depth L from 4 to 1000); :func:`default_scale` picks one from a configuration name.
Everything runs on the CPU in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from normbench.methods.procrustes import operator_singular_values, procrustes_gain, project_kernel
from normbench.methods.svb import bound_singular_values

SCALES: dict[str, dict[str, Any]] = {
    "small": {
        "depths": [4, 8, 16, 32, 64],
        "linear_depths": [4, 16, 64, 256, 1000],
        "width": 8,
        "draws": 8,
        "deltas": [1e-3, 1e-2, 0.1, 0.5, 1.0],
        "grids": [4, 6],
        "batch_sizes": [4, 16, 64],
        "samples": 64,
    },
    "paper": {
        "depths": [4, 8, 16, 32, 64, 128, 256, 512, 1000],
        "linear_depths": [4, 8, 16, 32, 64, 128, 256, 512, 1000],
        "width": 16,
        "draws": 32,
        "deltas": [1e-4, 1e-3, 1e-2, 0.03, 0.1, 0.3, 0.5, 1.0, 2.0],
        "grids": [4, 6, 8],
        "batch_sizes": [4, 8, 16, 64, 256, 1024],
        "samples": 256,
    },
}
"""Sizes of the checks: ``small`` (default pipeline), ``paper`` (the statements' ranges)."""

DTYPE = torch.float64


def sizes(scale: str | dict[str, Any]) -> dict[str, Any]:
    """The sizes of a scale name, or of a dict overriding ``small``'s (tests use tiny ranges)."""
    if isinstance(scale, dict):
        return {**SCALES["small"], **scale}
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
    return SCALES[scale]


def default_scale(config_name: str) -> str:
    """``paper`` for the paper configuration (name ``paper``), else ``small``."""
    return "paper" if config_name == "paper" else "small"


def _series(x, y, kind: str = "measured") -> dict[str, Any]:
    return {"x": [float(v) for v in x], "y": [float(v) for v in y], "kind": kind}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape, g: torch.Generator) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=DTYPE)


def _orthogonal(n: int, g: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(_randn(n, n, g=g))
    return q * torch.sign(torch.diagonal(r))


# ------------------------------------------------------------------------------------- Zaeemzadeh et al.

T1_STATEMENT = (
    "Theorem 1. Suppose we want to represent a nonlinear mapping F: R^N -> R^N, satisfying Assumption 1, with a "
    "sequence of L non-linear residual blocks of form x_{l+1} = x_l + F_l(x_l). There exists a solution such "
    "that for all residual blocks we have (1 - delta) ||dE/dx_{l+1}||_2 <= ||dE/dx_l||_2 <= (1 + delta) "
    "||dE/dx_{l+1}||_2, where delta = c log(2L)/L [...] for some c_1 > 0."
)


def _vector_field(width: int, g: torch.Generator) -> Callable[[torch.Tensor], torch.Tensor]:
    """A smooth, Lipschitz field f(x) = B tanh(A x + b) (Lipschitz constant ||B|| ||A|| = 1)."""
    a, b = _randn(width, width, g=g), _randn(width, g=g)
    bm = _randn(width, width, g=g)
    a, bm = a / torch.linalg.matrix_norm(a, 2), bm / torch.linalg.matrix_norm(bm, 2)
    return lambda x: torch.tanh(x @ a.T + b) @ bm.T


def _flow(f, x: torch.Tensor, t: float, steps: int = 4) -> torch.Tensor:
    """The time-t flow of dx/dt = f(x) by ``steps`` classical Runge-Kutta steps."""
    h = t / steps
    for _ in range(steps):
        k1 = f(x)
        k2 = f(x + h / 2 * k1)
        k3 = f(x + h / 2 * k2)
        k4 = f(x + h * k3)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def _block_chain(blocks: list[Callable], x: torch.Tensor, target: torch.Tensor):
    """Forward through ``blocks``; the Jacobian of every block at its input and the gradient norms of
    E = ||x_{L+1} - target||^2 / 2 at every block's input and output."""
    jacs, xs = [], [x]
    for blk in blocks:
        jacs.append(torch.autograd.functional.jacobian(blk, xs[-1]))
        xs.append(blk(xs[-1]).detach())
    grad = xs[-1] - target  # dE/dx_{L+1}
    ratios = []
    for jac in reversed(jacs):
        new = jac.T @ grad
        ratios.append(float(torch.linalg.vector_norm(new) / torch.linalg.vector_norm(grad)))
        grad = new
    return jacs, ratios[::-1]


def _t1_comparisons(depths, dev, sig, bound) -> list[dict[str, Any]]:
    """Theorem 1's judged points per L: max_l |grad ratio - 1| and max_l sigma_max(DF_l) below c log(2L)/L."""
    return [
        {"label": f"L={d}: max_l |grad ratio - 1|", "measured": v, "upper": b, "tolerance": 1e-9}
        for d, v, b in zip(depths, dev, bound)
    ] + [
        {"label": f"L={d}: max_l sigma_max(DF_l)", "measured": v, "upper": b, "tolerance": 1e-9}
        for d, v, b in zip(depths, sig, bound)
    ]


def zaeemzadeh_theorem1(scale: str = "small", premise: str = "residual", seed: int = 0) -> dict[str, Any]:
    """Theorem 1: the deviation from norm preservation of a residual representation shrinks like log(2L)/L.

    The mapping F is the time-1 flow of a smooth field f with Lipschitz constant 1 (differentiable,
    invertible, Lipschitz inverse: Assumption 1); the L residual blocks are the time-1/L flows
    (F = their composition exactly, so this is a solution of the theorem's kind), F_l = flow - identity.
    Measured per L: delta'(L) = max_l sigma_max(DF_l(x_l)) (the proof's delta', Appendix A.1) and
    max_l | ||dE/dx_l|| / ||dE/dx_{l+1}|| - 1 | for a squared loss. c is not given (c_1 unspecified): the
    bound is c log(2L)/L with c fitted at the smallest L (where measured = bound); the statement is then that
    no deeper L exceeds it. ``premise="plain"`` drops the identity skip (blocks x_{l+1} = F_l(x_l)).
    """
    s = sizes(scale)
    g = _gen(seed)
    width = s["width"]
    f = _vector_field(width, g)
    x0 = _randn(width, g=g)
    x0 = x0 / torch.linalg.vector_norm(x0)  # ||x_1|| <= 1
    target = _flow(f, x0, 1.0, 64) + 0.1 * _randn(width, g=g)
    depths = s["depths"]
    sig, dev = [], []
    for depth in depths:
        if premise == "residual":
            blocks = [lambda x, t=1.0 / depth: _flow(f, x, t)] * depth
        else:
            blocks = [lambda x, t=1.0 / depth: _flow(f, x, t) - x] * depth
        jacs, ratios = _block_chain(blocks, x0, target)
        eye = torch.eye(width, dtype=DTYPE)
        sig.append(max(float(torch.linalg.matrix_norm(j - eye, 2)) for j in jacs))
        dev.append(max(abs(r - 1.0) for r in ratios))
    c = max(sig[0], dev[0]) * depths[0] / math.log(2 * depths[0])
    bound = [c * math.log(2 * d) / d for d in depths]
    comparisons = _t1_comparisons(depths, dev, sig, bound)
    return {
        "paper": "zaeemzadeh2020",
        "key": "zaeemzadeh2020/theorem1",
        "where": "Sec. 2, Theorem 1 (proof: arXiv Appendix A.1)",
        "statement": T1_STATEMENT,
        "construction": f"F = time-1 flow of f(x) = B tanh(Ax + b) on R^{width} (||A|| = ||B|| = 1), "
        "blocks = time-1/L flows (RK4, 4 steps), one input ||x_1|| = 1, squared loss; c fitted at the "
        f"smallest L = {depths[0]} (c = {c:.3g})",
        "premise": "as stated" if premise == "residual" else "no identity skip (plain blocks)",
        "x_label": "depth L (residual blocks)",
        "y_label": "deviation from norm preservation",
        "xscale": "log",
        "yscale": "log",
        "series": {
            "max_l |ratio - 1| (measured)": _series(depths, dev),
            "max_l sigma_max(DF_l) (measured)": _series(depths, sig),
            "bound c log(2L)/L (Theorem 1)": _series(depths, bound, "bound"),
            "c'/L (rate of Theorem 2, for reference)": _series(
                depths, [c * math.log(2 * depths[0]) / d for d in depths], "reference"
            ),
        },
        "comparisons": comparisons,
    }


T2_STATEMENT = (
    "Theorem 2. For learning a linear map, R in R^{NxN}, between its input x and output y contaminated with "
    "i.i.d Gaussian noise, using a network consisting of L linear residual blocks of form x_{l+1} = x_l + W_l "
    "x_l, there exists a global optimum for E(.), as defined in (4), such that for all residual blocks we have "
    "(1 - delta) ||dE/dx_{l+1}||_2 <= ||dE/dx_l||_2 <= (1 + delta) ||dE/dx_{l+1}||_2, for L >= 3 gamma, "
    "where delta = c/L, c = 2(sqrt(pi) + sqrt(3) gamma)^2, and gamma = max(|log sigma_max(R)|, "
    "|log sigma_min(R)|)."
)


def _real_log_orthogonal(q: torch.Tensor) -> torch.Tensor:
    """The principal (real, skew-symmetric) logarithm of a rotation without eigenvalue -1."""
    evals, evecs = torch.linalg.eig(q.to(torch.complex128))
    log = evecs @ torch.diag(torch.log(evals)) @ torch.linalg.inv(evecs)
    log = log.real
    return (log - log.T) / 2


def _polar_target(n: int, g: torch.Generator):
    """R = U diag(exp(linspace(-0.5, 0.5))) V^T (det U V^T > 0, gamma = 0.5) and the factors of its left polar
    decomposition R = S Q: returns R, gamma = max |log sigma_i(R)|, the principal logarithm of Q and the
    eigen-decomposition (eigenvalues, eigenvectors) of S."""
    u, v = _orthogonal(n, g), _orthogonal(n, g)
    if torch.linalg.det(u @ v.T) < 0:
        u[:, 0] = -u[:, 0]
    sv = torch.exp(torch.linspace(-0.5, 0.5, n, dtype=DTYPE))  # gamma = 0.5
    r = u @ torch.diag(sv) @ v.T
    gamma = float(torch.log(sv).abs().max())
    q, sym = u @ v.T, u @ torch.diag(sv) @ u.T  # R = S Q (left polar decomposition)
    log_q = _real_log_orthogonal(q)
    evs, evec = torch.linalg.eigh(sym)
    return r, gamma, log_q, evs, evec


def _t2_depth(depth: int, r, log_q, evs, evec, x, y, premise: str) -> tuple[float, float, float]:
    """One depth L of Theorem 2's optimum: I + W_l = Q^(2/L) for the first L/2 blocks, S^(2/L) for the rest.
    Returns max_l sigma_max(W_l), max_l |ratio - 1| of the gradient norms of E = ||x_{L+1} - y||^2 / 2 and
    ||prod (I + W_l) - R|| / ||R||."""
    n = r.shape[0]
    half = depth // 2
    a_rot = torch.linalg.matrix_exp(log_q / half)
    a_sym = evec @ torch.diag(evs ** (1.0 / (depth - half))) @ evec.T
    mats = [a_rot] * half + [a_sym] * (depth - half)  # I + W_l, applied in order l = 1..L
    prod = torch.eye(n, dtype=DTYPE)
    for a in mats:
        prod = a @ prod
    resid = float(torch.linalg.matrix_norm(prod - r) / torch.linalg.matrix_norm(r))
    eye = torch.eye(n, dtype=DTYPE)
    blocks = mats if premise == "residual" else [a - eye for a in mats]
    sig = max(float(torch.linalg.matrix_norm(a - eye, 2)) for a in (a_rot, a_sym))
    grad = (prod @ x - y) if premise == "residual" else _chain(blocks, x) - y
    worst = 0.0
    for a in reversed(blocks):
        new = a.T @ grad
        worst = max(worst, abs(float(torch.linalg.vector_norm(new) / torch.linalg.vector_norm(grad)) - 1))
        grad = new
    return sig, worst, resid


def _t2_comparisons(depths, dev, sig, resid, bound) -> list[dict[str, Any]]:
    """Theorem 2's judged points per L: |grad ratio - 1| and sigma_max(W_l) below c/L, the product equal to R."""
    return (
        [
            {"label": f"L={d}: max_l |grad ratio - 1|", "measured": v, "upper": b, "tolerance": 1e-9}
            for d, v, b in zip(depths, dev, bound)
        ]
        + [
            {"label": f"L={d}: max_l sigma_max(W_l)", "measured": v, "upper": b, "tolerance": 1e-9}
            for d, v, b in zip(depths, sig, bound)
        ]
        + [
            {"label": f"L={d}: global optimum, ||prod(I+W_l) - R||/||R||", "measured": e, "upper": 0.0,
             "tolerance": 1e-9}
            for d, e in zip(depths, resid)
        ]
    )  # fmt: skip


def zaeemzadeh_theorem2(
    scale: str = "small", premise: str = "residual", bound_scale: float = 1.0, seed: int = 0
) -> dict[str, Any]:
    """Theorem 2: a global optimum of L linear residual blocks whose blocks are within c/L of isometries.

    The optimum is the one of the proof (Hardt & Ma's Theorem 2.1, the paper's Lemma 3): R = S Q (polar,
    Q a rotation, S symmetric positive definite); the first L/2 blocks are I + W_l = Q^(2/L) (principal
    logarithm), the last L/2 are S^(2/L), so prod (I + W_l) = R exactly, the expected loss (4) is at its
    minimum. Measured per L: max_l sigma_max(W_l) (the proof's delta') and max_l |ratio - 1| of the gradient
    norms for a noisy sample (y = R x + eps), against delta = c/L (times ``bound_scale``). The premise check
    ||prod (I + W_l) - R|| / ||R|| is judged too. ``premise="plain"``: blocks x_{l+1} = W_l x_l.
    """
    s = sizes(scale)
    g = _gen(seed)
    n = s["width"]
    r, gamma, log_q, evs, evec = _polar_target(n, g)
    c = 2 * (math.sqrt(math.pi) + math.sqrt(3) * gamma) ** 2
    depths = [d for d in s["linear_depths"] if d >= 3 * gamma]
    x = _randn(n, g=g)
    x = x / torch.linalg.vector_norm(x)
    y = r @ x + _randn(n, g=g)
    sig, dev, resid, bound = [], [], [], []
    for depth in depths:
        sig_d, dev_d, resid_d = _t2_depth(depth, r, log_q, evs, evec, x, y, premise)
        resid.append(resid_d)
        sig.append(sig_d)
        dev.append(dev_d)
        bound.append(bound_scale * c / depth)
    return {
        "paper": "zaeemzadeh2020",
        "key": "zaeemzadeh2020/theorem2",
        "where": "Sec. 2, Theorem 2 (proof: arXiv Appendix A.2, Lemma 3 = Hardt & Ma Theorem 2.1)",
        "statement": T2_STATEMENT,
        "construction": f"R = U diag(exp(linspace(-0.5, 0.5))) V^T on R^{n} (gamma = {gamma:.2f}, det > 0, "
        f"c = {c:.2f}); blocks Q^(2/L) then S^(2/L) from R = SQ; one noisy sample"
        + (f"; bound scaled by {bound_scale:g}" if bound_scale != 1 else ""),
        "premise": "as stated" if premise == "residual" else "no identity skip (x_{l+1} = W_l x_l)",
        "x_label": "depth L (linear residual blocks)",
        "y_label": "deviation from norm preservation",
        "xscale": "log",
        "yscale": "log",
        "series": {
            "max_l |ratio - 1| (measured)": _series(depths, dev),
            "max_l sigma_max(W_l) (measured)": _series(depths, sig),
            "bound c/L (Theorem 2)": _series(depths, bound, "bound"),
        },
        "comparisons": _t2_comparisons(depths, dev, sig, resid, bound),
    }


def _chain(mats: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    for a in mats:
        x = a @ x
    return x


C1_STATEMENT = (
    "Corollary 1. Suppose a network contains non-linear residual blocks of form x_{l+1} = x_l + W_l^(2) "
    "rho(W_l^(1) rho(x_l)), where rho(.) is an element-wise non-linear operator with bounded derivative, i.e., "
    "0 <= d rho_n(x_l)/d x_{l,n} <= c_rho. Then, we have (1 - delta) ||dE/dx_{l+1}||_2 <= ||dE/dx_l||_2 <= "
    "(1 + delta) ||dE/dx_{l+1}||_2 and delta = c_rho^2 ||W_l^(1)||_2 ||W_l^(2)||_2."
)


def zaeemzadeh_corollary1(
    scale: str = "small", premise: str = "as stated", bound_scale: float = 1.0, seed: int = 0
) -> dict[str, Any]:
    """Corollary 1: a two-layer residual block deviates from norm preservation by at most c_rho^2 ||W1|| ||W2||.

    Random Gaussian W1, W2 scaled so that ||W1|| ||W2|| = delta over the scale's range, random inputs, rho =
    ReLU and tanh (c_rho = 1). Measured per draw: the worst case over all gradients, max(sigma_max(J) - 1,
    1 - sigma_min(J)) with J the block's Jacobian (autograd), i.e. the extreme values of the ratio
    ||dE/dx_l|| / ||dE/dx_{l+1}||. ``premise="steep"``: rho = 3 tanh, still judged with c_rho = 1.
    """
    s = sizes(scale)
    g = _gen(seed)
    n = s["width"]
    rhos = {"relu": torch.relu, "tanh": torch.tanh}
    if premise == "steep":
        rhos = {"3 tanh": lambda t: 3 * torch.tanh(t)}
    series, comparisons = {}, []
    for name, rho in rhos.items():
        worst = []
        for delta in s["deltas"]:
            ratio = 0.0
            for _ in range(s["draws"]):
                w1, w2 = _randn(n, n, g=g), _randn(n, n, g=g)
                w1 = w1 / torch.linalg.matrix_norm(w1, 2) * math.sqrt(delta)
                w2 = w2 / torch.linalg.matrix_norm(w2, 2) * math.sqrt(delta)
                x = _randn(n, g=g)

                def block(t, w1=w1, w2=w2, rho=rho):
                    return t + w2 @ rho(w1 @ rho(t))

                jac = torch.autograd.functional.jacobian(block, x)
                sv = torch.linalg.svdvals(jac)
                ratio = max(ratio, float(sv.max()) - 1, 1 - float(sv.min()))
            worst.append(ratio)
            comparisons.append(
                {"label": f"rho={name}, delta={delta:g}: worst |ratio - 1| over {s['draws']} draws",
                 "measured": ratio, "upper": bound_scale * delta, "tolerance": 1e-12}
            )  # fmt: skip
        series[f"worst |ratio - 1|, rho = {name} (measured)"] = _series(s["deltas"], worst)
    series["bound delta = c_rho^2 ||W1|| ||W2|| (Corollary 1)"] = _series(
        s["deltas"], [bound_scale * d for d in s["deltas"]], "bound"
    )
    return {
        "paper": "zaeemzadeh2020",
        "key": "zaeemzadeh2020/corollary1",
        "where": "Sec. 2, Corollary 1 (proof: arXiv Appendix A.3)",
        "statement": C1_STATEMENT,
        "construction": f"N = {n}, Gaussian W1, W2 rescaled to ||W1|| = ||W2|| = sqrt(delta), Gaussian inputs, "
        f"{s['draws']} draws per delta; worst case over gradients from the Jacobian's extreme singular values"
        + (f"; bound scaled by {bound_scale:g}" if bound_scale != 1 else ""),
        "premise": "as stated" if premise == "as stated" else "rho = 3 tanh (derivative up to 3 > c_rho = 1)",
        "x_label": "delta = c_rho^2 ||W1|| ||W2||",
        "y_label": "worst |ratio - 1|",
        "xscale": "log",
        "yscale": "log",
        "series": series,
        "comparisons": comparisons,
    }


T3_STATEMENT = (
    "Theorem 3 (Theorem 6 from [22]). For any convolution kernel K in R^{k x k x d x c} acting on an n x n x d "
    "input, let W^ be the matrix encoding the linear transformation computed by a convolutional layer "
    "parameterized by K. Also, for each u, v in [n] x [n], let P^(u,v) in C^{d x c} be the matrix given by "
    "P^(u,v)_{i,j} = (F_n(K_{:,:,i,j}))_{u,v}, where F_n(.) is the operator describing an n x n 2D Fourier "
    "transform. Then, the set of singular values of W^ is the union (allowing repetitions) of all the singular "
    "values of P^(u,v) matrices."
)


def circular_operator(kernel: torch.Tensor, n: int) -> torch.Tensor:
    """The dense (n^2 c_out) x (n^2 c_in) matrix of the circular convolution y[o] = sum_{i,a,b}
    K[o, i, a, b] x[i](. - (a, b)) on an n x n grid, built tap by tap (independent of any FFT)."""
    c_out, c_in, kh, kw = kernel.shape
    basis = torch.eye(c_in * n * n, dtype=DTYPE).reshape(-1, c_in, n, n)
    out = torch.zeros(basis.shape[0], c_out, n, n, dtype=DTYPE)
    for a in range(kh):
        for b in range(kw):
            shifted = torch.roll(basis, shifts=(a, b), dims=(2, 3))
            out += torch.einsum("oi,bihw->bohw", kernel[:, :, a, b], shifted)
    return out.reshape(basis.shape[0], -1).T


CONV_CASES = [(1, 2, 3), (1, 4, 4), (3, 2, 3), (3, 4, 4), (3, 6, 3), (3, 3, 8)]
"""(kernel size, c_in, c_out) of the convolution checks."""


def zaeemzadeh_theorem3(scale: str = "small", premise: str = "as stated", seed: int = 0) -> dict[str, Any]:
    """Theorem 3: the singular values of the circular convolution operator are those of the DFT blocks.

    For each kernel size, channel pair and grid n, the dense operator (tap by tap) is decomposed by SVD and
    compared with :func:`normbench.methods.procrustes.operator_singular_values` (the suite's own DFT-block
    route, used by the projection). ``premise="zero_padded"``: the zero-padded (non-circular) convolution a
    Conv2d applies, for which the theorem does not claim equality.
    """
    s = sizes(scale)
    g = _gen(seed)
    labels, errors, comparisons = [], [], []
    for n in s["grids"]:
        for k, c_in, c_out in CONV_CASES:
            kernel = _randn(c_out, c_in, k, k, g=g)
            if premise == "zero_padded":
                op = (
                    torch.nn.functional.conv2d(
                        torch.eye(c_in * n * n, dtype=DTYPE).reshape(-1, c_in, n, n), kernel, padding=k // 2
                    )
                    .reshape(c_in * n * n, -1)
                    .T
                )
            else:
                op = circular_operator(kernel, n)
            dense = torch.linalg.svdvals(op)[: n * n * min(c_in, c_out)]
            blocks = operator_singular_values(kernel, n).flatten().sort(descending=True).values
            err = float((dense - blocks).abs().max() / dense.max())
            label = f"n={n}, k={k}, {c_in}->{c_out}"
            labels.append(label)
            errors.append(err)
            comparisons.append(
                {"label": f"{label}: max |sigma(W^) - sigma(P)| / sigma_max", "measured": err, "upper": 0.0,
                 "tolerance": 1e-10}
            )  # fmt: skip
    return {
        "paper": "zaeemzadeh2020",
        "key": "zaeemzadeh2020/theorem3",
        "where": "Sec. 3, Theorem 3 (Sedghi et al., Theorem 6)",
        "statement": T3_STATEMENT,
        "construction": "Gaussian kernels; dense circular operator built tap by tap, SVD, against the SVDs of "
        "the DFT blocks (normbench.methods.procrustes.operator_singular_values)",
        "premise": "as stated" if premise == "as stated" else "zero-padded convolution (not circular)",
        "x_label": "case (grid n, kernel k, c_in -> c_out)",
        "y_label": "max relative singular-value difference",
        "xscale": "linear",
        "yscale": "log",
        "x_ticks": labels,
        "series": {
            "relative difference (measured)": _series(range(len(errors)), [max(e, 1e-17) for e in errors]),
            "tolerance 1e-10": _series(range(len(errors)), [1e-10] * len(errors), "bound"),
        },
        "comparisons": comparisons,
    }


PROCRUSTES_STATEMENT = (
    'Sec. 3, eqs. (7)-(8): "we can achieve norm preservation by setting all the nonzero singular values to '
    'sqrt(d / min(d, c))" [...] "the solution to this problem is given by P^(u,v) = sqrt(d / min(d, c)) '
    'P^(u,v) (P^(u,v)T P^(u,v))^(-1/2)", the matrix that minimizes ||P - P^||_F^2 such that P^T P^ = '
    "d / min(d, c) I; with it E[||Delta_x||^2] = E[||Delta_y||^2] when the energy of Delta_y is spread "
    "uniformly over the directions."
)


def _nearest_feasible(
    blocks: torch.Tensor, target: float, g: torch.Generator, draws: int = 32
) -> list[float]:
    """||P - Q||_F for ``draws`` feasible block sets Q = gain U V^H (polar factors of random complex Gaussian
    matrices), the competitors of the Procrustes solution."""
    others = []
    for _ in range(draws):
        z = torch.complex(_randn(*blocks.shape, g=g), _randn(*blocks.shape, g=g))
        u, _, vh = torch.linalg.svd(z, full_matrices=False)
        others.append(float(torch.linalg.matrix_norm(blocks - target * (u @ vh)).pow(2).sum().sqrt()))
    return others


def _procrustes_case(
    k: int, c_in: int, c_out: int, n: int, samples: int, gain_scale: float, g: torch.Generator
) -> tuple[str, list[float], float, list[dict[str, Any]]]:
    """One convolution case of the Procrustes check: a Gaussian kernel projected by ``project_kernel``.
    Returns its label, the energy ratios ||W^T Delta_y||^2 / ||Delta_y||^2 of ``samples`` isotropic gradients,
    max |sigma - sqrt(d / min(d, c))| / gain of the dense operator, and the case's three judged points."""
    kernel = _randn(c_out, c_in, k, k, g=g)
    gain = procrustes_gain(c_out, c_in) * gain_scale
    projected = project_kernel(kernel, n, gain, path="svd", support="full" if k > 1 else "truncate")
    op = circular_operator(projected, n)
    sv = torch.linalg.svdvals(op)[: n * n * min(c_in, c_out)]
    target = procrustes_gain(c_out, c_in)
    err = float((sv - target).abs().max() / target)
    dy = _randn(samples, n * n * c_out, g=g)
    ratio = (
        torch.linalg.vector_norm(dy @ op, dim=1) ** 2 / torch.linalg.vector_norm(dy, dim=1) ** 2
    ).tolist()
    blocks = torch.fft.fft2(kernel, s=(n, n)).permute(2, 3, 0, 1)
    p_hat = torch.fft.fft2(projected, s=(n, n)).permute(2, 3, 0, 1)
    best = float(torch.linalg.matrix_norm(blocks - p_hat).pow(2).sum().sqrt())
    others = _nearest_feasible(blocks, target, g)
    label = f"k={k}, {c_in}->{c_out}"
    comparisons = [
        {"label": f"{label}: max |sigma - sqrt(d/min(d,c))| / gain", "measured": err, "upper": 0.0,
         "tolerance": 1e-8},
        {"label": f"{label}: ||P - P^||_F <= min over 32 feasible ||P - Q||_F", "measured": best,
         "upper": min(others), "tolerance": 1e-9},
        {"label": f"{label}: E||Delta_x||^2 / E||Delta_y||^2 ({len(ratio)} gradients)", "samples": ratio,
         "lower": 0.9, "upper": 1.1, "tolerance": 0.0},
    ]  # fmt: skip
    return label, ratio, err, comparisons


def zaeemzadeh_procrustes(
    scale: str = "small", premise: str = "as stated", gain_scale: float = 1.0, seed: int = 0
) -> dict[str, Any]:
    """Sec. 3's Procrustes projection: exact singular values, minimal distance, expected norm preservation.

    Each kernel is projected by :func:`normbench.methods.procrustes.project_kernel` (SVD path, full support:
    the exact circular operator). Judged: every nonzero singular value of the dense operator equals the gain
    sqrt(d / min(d, c)); no other feasible block set (the gain times random orthonormal blocks, 32 draws) is
    closer to the kernel's DFT blocks; and the energy ratio ||W^T Delta_y||^2 / ||Delta_y||^2 of isotropic
    Gaussian gradients has a 95 % t-interval inside 1 +- 0.1 (the claims' approximately-equal rule). ``gain_scale`` multiplies the gain
    (``premise="wrong gain"``, a violating case).
    """
    s = sizes(scale)
    g = _gen(seed)
    n = s["grids"][0]
    labels, energy, sv_err, comparisons = [], [], [], []
    for k, c_in, c_out in CONV_CASES:
        label, ratio, err, case_comparisons = _procrustes_case(k, c_in, c_out, n, s["samples"], gain_scale, g)
        labels.append(label)
        energy.append(ratio)
        sv_err.append(err)
        comparisons += case_comparisons
    x = list(range(len(labels)))
    return {
        "paper": "zaeemzadeh2020",
        "key": "zaeemzadeh2020/procrustes",
        "where": "Sec. 3, eqs. (7)-(8), Algorithm 1",
        "statement": PROCRUSTES_STATEMENT,
        "construction": f"Gaussian kernels, grid n = {n}, projected by normbench.methods.procrustes.project_kernel "
        f"(SVD, full support); {s['samples']} isotropic Gaussian output gradients per case",
        "premise": "as stated" if gain_scale == 1 else f"gain scaled by {gain_scale:g}",
        "x_label": "case (kernel k, c_in -> c_out)",
        "y_label": "||Delta_x||^2 / ||Delta_y||^2",
        "xscale": "linear",
        "yscale": "linear",
        "x_ticks": labels,
        "series": {
            "mean energy ratio (measured)": _series(x, [sum(r) / len(r) for r in energy]),
            "min energy ratio (measured)": _series(x, [min(r) for r in energy]),
            "max energy ratio (measured)": _series(x, [max(r) for r in energy]),
            "predicted 1 (eq. 7)": _series(x, [1.0] * len(x), "bound"),
        },
        "comparisons": comparisons,
    }


# ---------------------------------------------------------------------------------------------- Jia et al.

JIA_LEMMA1 = (
    "Lemma 1. For a matrix W in R^{M x N} with singular values of all 1, and a diagonal matrix G in R^{M x M} "
    "with nonzero entries {g_i}, let g_max = max(|g_1|, ..., |g_M|) and g_min = min(|g_1|, ..., |g_M|), the "
    "singular values of W~ = GW is bounded in [g_min, g_max]. When W is fat, i.e., M <= N, and rank(W) = M, "
    "singular values of W~ are exactly {|g_i|}."
)


def jia_lemma1(scale: str = "small", premise: str = "as stated", seed: int = 0) -> dict[str, Any]:
    """Jia Lemma 1: singular values of G W for W with unit singular values (BN's Gamma Sigma times W).

    W has orthonormal rows (fat) or columns (tall), G random signed entries with |g| log-uniform in a spread
    of 1 to 100. Judged: every singular value in [g_min, g_max]; for fat W the sorted singular values equal
    the sorted |g_i|. ``premise="not unit"``: W Gaussian (singular values not all 1).
    """
    s = sizes(scale)
    g = _gen(seed)
    shapes = [(4, 8), (8, 8), (8, 4), (16, 64), (64, 16), (32, 32)]
    comparisons, labels, lo_rel, hi_rel = [], [], [], []
    for m, n in shapes:
        for _ in range(max(1, s["draws"] // 4)):
            w = _randn(m, n, g=g)
            if premise == "as stated":
                u, _, vh = torch.linalg.svd(w, full_matrices=False)
                w = u @ vh
            mags = torch.exp(torch.rand(m, generator=g, dtype=DTYPE) * math.log(100.0))
            gvals = mags * torch.sign(_randn(m, g=g))
            sv = torch.linalg.svdvals(torch.diag(gvals) @ w)
            gmin, gmax = float(mags.min()), float(mags.max())
            sv_pos = sv[sv > 1e-12 * float(sv.max())]
            comparisons.append(
                {"label": f"{m}x{n}: sigma_min(GW) >= g_min", "measured": float(sv_pos.min()), "lower": gmin,
                 "tolerance": 1e-9 * gmax}
            )  # fmt: skip
            comparisons.append(
                {"label": f"{m}x{n}: sigma_max(GW) <= g_max", "measured": float(sv.max()), "upper": gmax,
                 "tolerance": 1e-9 * gmax}
            )  # fmt: skip
            if m <= n:
                err = float((sv - mags.sort(descending=True).values).abs().max())
                comparisons.append(
                    {"label": f"{m}x{n} (fat): max |sigma(GW) - sorted |g||", "measured": err, "upper": 0.0,
                     "tolerance": 1e-9 * gmax}
                )  # fmt: skip
            labels.append(f"{m}x{n}")
            lo_rel.append(float(sv_pos.min()) / gmin)
            hi_rel.append(float(sv.max()) / gmax)
    x = list(range(len(labels)))
    return {
        "paper": "jia2017",
        "key": "jia2017/lemma1",
        "where": "Sec. 5, Lemma 1",
        "statement": JIA_LEMMA1,
        "construction": "W with orthonormal rows or columns (polar factor of a Gaussian), |g_i| log-uniform in "
        "[1, 100] with random signs",
        "premise": "as stated" if premise == "as stated" else "W Gaussian (singular values not 1)",
        "x_label": "draw (shape M x N)",
        "y_label": "singular value / bound",
        "xscale": "linear",
        "yscale": "log",
        "x_ticks": labels,
        "series": {
            "sigma_min(GW) / g_min (measured, >= 1)": _series(x, lo_rel),
            "sigma_max(GW) / g_max (measured, <= 1)": _series(x, hi_rel),
            "bound 1": _series(x, [1.0] * len(x), "bound"),
        },
        "comparisons": comparisons,
    }


JIA_BACKWARD = (
    "Sec. 4.2, eqs. (12)-(13): for a deep linear network x^l = W^l x^{l-1}, dL/dx^l = (prod_{i=l+1}^L W^i)^T "
    'dL/dx^L; "When epsilon -> 0 in Algorithm 1, our proposed method guarantees that all the M components of '
    "the error vector would propagate to lower layers without attenuation or explosion. In the ideal case of "
    "N_L = ... = N_l, our method also guarantees that ||dL/dx^l||_2 = ||dL/dx^L||_2, i.e., to preserve the norm "
    'of error vector." With every singular value bounded in [1/(1+eps), 1+eps] (Algorithm 1), the norm ratio '
    "over L - l layers lies in [(1+eps)^-(L-l), (1+eps)^(L-l)] (the product of bounded Jacobians)."
)


def jia_svb_backward(scale: str = "small", premise: str = "svb", seed: int = 0) -> dict[str, Any]:
    """Jia Sec. 4.2: the error norm through L SVB-bounded linear layers stays in [(1+eps)^-L, (1+eps)^L].

    Square N x N Gaussian weights bounded by the suite's SVB (:func:`normbench.methods.svb.bound_singular_values`)
    with eps in {0, 0.05, 0.5}; a random error vector at the top is propagated down (log-norms accumulated, so
    L = 1000 does not overflow). Judged per L and eps: log ||dL/dx^0|| / ||dL/dx^L|| inside
    +- L log(1 + eps) (eps = 0: equal to 0, the norm preserved). ``premise="unbounded"``: He-initialised
    Gaussian weights without SVB, judged against the eps = 0.05 band.
    """
    s = sizes(scale)
    g = _gen(seed)
    n = s["width"]
    depths = s["linear_depths"]
    series, comparisons = {}, []
    epsilons = [0.0, 0.05, 0.5] if premise == "svb" else [0.05]
    for eps in epsilons:
        measured = []
        for depth in depths:
            grad = _randn(n, g=g)
            log_ratio = 0.0
            for _ in range(depth):
                w = _randn(n, n, g=g) * math.sqrt(2.0 / n)
                if premise == "svb":
                    w = bound_singular_values(w, 1 / (1 + eps), 1 + eps)
                new = w.T @ grad
                log_ratio += math.log(float(torch.linalg.vector_norm(new) / torch.linalg.vector_norm(grad)))
                grad = new / torch.linalg.vector_norm(new)
            band = depth * math.log1p(eps)
            measured.append(log_ratio / depth)
            comparisons.append(
                {"label": f"eps={eps:g}, L={depth}: log(||dL/dx^0|| / ||dL/dx^L||)", "measured": log_ratio,
                 "lower": -band, "upper": band, "tolerance": 1e-9 * depth}
            )  # fmt: skip
        series[f"log ratio / L, eps = {eps:g} (measured)"] = _series(depths, measured)
        series[f"+- log(1 + eps), eps = {eps:g} (bound)"] = _series(
            depths, [math.log1p(eps)] * len(depths), "bound"
        )
    return {
        "paper": "jia2017",
        "key": "jia2017/svb_backward",
        "where": "Sec. 4.2, eqs. (12)-(13), with Algorithm 1",
        "statement": JIA_BACKWARD,
        "construction": f"N = {n}, Gaussian weights (std sqrt(2/N)) bounded by normbench.methods.svb, one random "
        "error vector per depth",
        "premise": "as stated" if premise == "svb" else "no SVB (He-initialised Gaussian weights)",
        "x_label": "depth L (linear layers)",
        "y_label": "log(||dL/dx^0|| / ||dL/dx^L||) / L",
        "xscale": "log",
        "yscale": "linear",
        "series": series,
        "comparisons": comparisons,
    }


# ---------------------------------------------------------------------------------------------- Xie et al.

XIE_BN = (
    "Sec. 3.3, eq. (6): for y = BN_{gamma,beta}(W^T x), each sub-Jacobian J_kk has entries dy_j/dx_i = "
    "rho [Delta(i = j) - (1 + x^_i x^_j)/m] with rho = gamma / sqrt(sigma_B^2 + eps); eq. (7): J = P^T rho "
    "diag(1 - lambda_1/m, 1 - lambda_2/m, 1, ..., 1) P, where lambda_1 and lambda_2 are the two nonzero "
    'eigenvalues of U_ij = 1 + x^_i x^_j. "Eq. 7 shows us that J J^T ~ rho^2 I."'
)


def _bn_function(
    mean, var, gamma: float, premise: str, bn_eps: float
) -> Callable[[torch.Tensor], torch.Tensor]:
    """y = BN_{gamma,0}(t) of one component over a batch: training mode (batch statistics) for
    ``premise="train"``, else evaluation mode with running statistics ``mean`` and ``var``."""

    def bn(t, mean=mean, var=var, gamma=gamma):
        w = torch.tensor([gamma], dtype=DTYPE)
        if premise == "train":
            return torch.nn.functional.batch_norm(t[:, None], None, None, w, None, True, 0.0, bn_eps)[:, 0]
        rm, rv = mean.reshape(1), var.reshape(1)
        return torch.nn.functional.batch_norm(t[:, None], rm, rv, w, None, False, 0.0, bn_eps)[:, 0]

    return bn


def _bn_case(m: int, premise: str, bn_eps: float, g: torch.Generator) -> tuple[float, float, float]:
    """One batch size m of Xie eqs. (6)-(7): the autograd Jacobian J of BN over m drawn inputs against eq. (6)
    rho [I - (1 + x^ x^T)/m] and its singular values against eq. (7). Returns max |J - eq. 6| / rho,
    max |sigma(J) - eq. 7| / rho and the fraction of singular values equal to rho."""
    x = _randn(m, g=g) * 2 + 0.5
    gamma = float(torch.rand(1, generator=g, dtype=DTYPE) + 0.5)
    mean, var = x.mean(), x.var(unbiased=False)
    bn = _bn_function(mean, var, gamma, premise, bn_eps)
    jac = torch.autograd.functional.jacobian(bn, x)  # jac[j, i] = dy_j / dx_i
    rho = gamma / math.sqrt(float(var) + bn_eps)
    xh = (x - mean) / math.sqrt(float(var) + bn_eps)
    eq6 = rho * (torch.eye(m, dtype=DTYPE) - (1 + torch.outer(xh, xh)) / m)
    lam = torch.linalg.eigvalsh(1 + torch.outer(xh, xh))[-2:]
    eq7 = torch.cat([rho * (1 - lam / m), torch.full((m - 2,), rho, dtype=DTYPE)]).abs()
    sv = torch.linalg.svdvals(jac).sort().values
    e6 = float((jac - eq6).abs().max() / rho)
    e7 = float((sv - eq7.sort().values).abs().max() / rho)
    return e6, e7, float(((sv - rho).abs() < 1e-9 * rho).sum()) / m


def xie_bn_jacobian(scale: str = "small", premise: str = "train", seed: int = 0) -> dict[str, Any]:
    """Xie eqs. (6)-(7): the batch-norm Jacobian over a mini-batch, entries and spectrum.

    For each batch size m, a component's m inputs and a gamma are drawn; the m x m Jacobian of
    ``torch.nn.functional.batch_norm`` in training mode (batch statistics) is taken by autograd. Judged: its
    entries equal eq. (6) and its singular values equal eq. (7)'s {rho (1 - lambda_i/m)} and rho (m - 2 times),
    to 1e-9 rho. The fraction of singular values equal to rho, (m - 2)/m, is drawn (J J^T ~ rho^2 I).
    ``premise="eval"``: the evaluation-mode BN (running statistics), whose Jacobian is rho I.
    """
    s = sizes(scale)
    g = _gen(seed)
    bn_eps = 1e-5
    comparisons, ms, entry_err, spec_err, frac = [], [], [], [], []
    for m in s["batch_sizes"]:
        e6, e7, fr = _bn_case(m, premise, bn_eps, g)
        ms.append(m)
        entry_err.append(e6)
        spec_err.append(e7)
        frac.append(fr)
        comparisons += [
            {"label": f"m={m}: max |J - eq. (6)| / rho", "measured": e6, "upper": 0.0, "tolerance": 1e-9},
            {
                "label": f"m={m}: max |sigma(J) - eq. (7)| / rho",
                "measured": e7,
                "upper": 0.0,
                "tolerance": 1e-9,
            },
        ]
    return {
        "paper": "xie2017",
        "key": "xie2017/bn_jacobian",
        "where": "Sec. 3.3, eqs. (6)-(7)",
        "statement": XIE_BN,
        "construction": "one BN component, m Gaussian inputs (mean 0.5, std 2), gamma in [0.5, 1.5], "
        f"eps = {bn_eps:g}; Jacobian of torch.nn.functional.batch_norm by autograd",
        "premise": "as stated" if premise == "train" else "evaluation-mode BN (running statistics)",
        "x_label": "batch size m",
        "y_label": "relative error / fraction",
        "xscale": "log",
        "yscale": "linear",
        "series": {
            "fraction of singular values = rho (measured)": _series(ms, frac),
            "(m - 2) / m (eq. 7)": _series(ms, [(m - 2) / m for m in ms], "bound"),
            "max |J - eq. 6| / rho (measured)": _series(ms, entry_err),
            "max |sigma(J) - eq. 7| / rho (measured)": _series(ms, spec_err),
        },
        "comparisons": comparisons,
    }


# ------------------------------------------------------------------------------------------ Oyedotun et al.

OY_T2 = (
    "Theorem 2. For an input x in R^n to a linear m-layer PlainNet parameterized by theta_p = {W_p^m, ..., "
    "W_p^1 in R^{n x n}}, the hidden layer output, h(x)^m: m -> infinity, is h(x)^m = alpha_1 sigma_{p1}^{2m} "
    "u_1. Remark 1: [...] the columns of a data batch for the PlainNet, H(x)_p^m in R^{n x N}, are colinear "
    "and thus H(x)_p^m exhibits singularity."
)
OY_T3 = (
    "Theorem 3. For an input vector x in R^n to a linear m-layer ResNet parameterized by theta_r = {W_r^m, ..., "
    "W_r^1}, the hidden layer output, h(x)^m: m -> infinity, is h(x)^m = alpha_1 u_1 [(sigma_{r1}^2 + 1)^m - "
    "1] + sum_i alpha_i u_i. Remark 2: [...] the columns of a data batch for the ResNet H(x)_r^m in R^{n x N} "
    "are distinct, and thus H(x)_r^m is non-singular."
)


def _batch_spectrum(mats_fn, depths, x, n, g) -> list[torch.Tensor]:
    """Singular values of the hidden batch after each depth (QR-renormalised so depth 1000 does not overflow:
    the batch's singular values are taken relative to its largest)."""
    out, h, done = [], x.clone(), 0
    for depth in depths:
        while done < depth:
            h = mats_fn(_randn(n, n, g=g) / math.sqrt(n)) @ h
            h = h / torch.linalg.matrix_norm(h, 2)
            done += 1
        sv = torch.linalg.svdvals(h)
        out.append(sv / sv[0])
    return out


def oyedotun_theorem2(scale: str = "small", premise: str = "plain", seed: int = 0) -> dict[str, Any]:
    """Oyedotun Theorem 2 / Remark 1: a deep linear PlainNet collapses a data batch onto one direction.

    Gaussian W_p^l (entries N(0, 1/n), the initialisation the theorem assumes), n = width, a batch of 2n
    Gaussian inputs; sigma_2 / sigma_1 of H^m over depth m. Judged as a limit (``kind: "limit"``): PASS when
    the ratio falls below 1e-6 by the deepest m and never rises by more than a factor 10 along the way; FAIL
    when it does not fall below its starting value; else INCONCLUSIVE. ``premise="residual"``: the same with
    random orthogonal W (not Gaussian: every singular value 1), for which nothing collapses.
    """
    s = sizes(scale)
    g = _gen(seed)
    n = s["width"]
    depths = s["linear_depths"]
    x = _randn(n, 2 * n, g=g)
    fn = (lambda w: w) if premise == "plain" else (lambda w: torch.linalg.qr(w)[0])
    spectra = _batch_spectrum(fn, depths, x, n, g)
    ratio = [max(float(sv[1]), 1e-300) for sv in spectra]
    return {
        "paper": "oyedotun2020",
        "key": "oyedotun2020/theorem2",
        "where": "Sec. III.C.1, Theorem 2 and Remark 1",
        "statement": OY_T2,
        "construction": f"n = {n}, W_p^l Gaussian N(0, 1/n), a batch of {2 * n} Gaussian inputs, singular values "
        "of H^m relative to its largest",
        "premise": "as stated" if premise == "plain" else "orthogonal W (not Gaussian)",
        "x_label": "depth m (linear layers)",
        "y_label": "sigma_2(H^m) / sigma_1(H^m)",
        "xscale": "log",
        "yscale": "log",
        "series": {
            "sigma_2 / sigma_1 (measured)": _series(depths, ratio),
            "collapse threshold 1e-6": _series(depths, [1e-6] * len(depths), "bound"),
        },
        "comparisons": [
            {
                "label": f"sigma_2/sigma_1 of H^m over m = {depths[0]}..{depths[-1]} -> 0",
                "kind": "limit",
                "series": ratio,
                "threshold": 1e-6,
                "rise": 10.0,
            }
        ],  # fmt: skip
    }


def oyedotun_theorem3(scale: str = "small", premise: str = "residual", seed: int = 0) -> dict[str, Any]:
    """Oyedotun Theorem 3 / Remark 2: a deep linear ResNet keeps a data batch non-singular.

    Same construction as :func:`oyedotun_theorem2` with blocks I + W_r^l. Measured: sigma_min / sigma_max of
    H^m over depth (1 / condition number). Judged per depth: H^m numerically non-singular, 1 / kappa above
    n * machine epsilon (a batch below it is singular in float64). The plain network is drawn beside it.
    ``premise="plain"``: judge the PlainNet instead; ``premise="singular"``: blocks (I + W)(I - u u^T), whose
    product is singular (not the Gaussian blocks the theorem assumes).
    """
    s = sizes(scale)
    g = _gen(seed)
    n = s["width"]
    depths = s["depths"]
    x = _randn(n, 2 * n, g=g)
    eye = torch.eye(n, dtype=DTYPE)
    block = (
        (lambda w: eye + w) if premise != "singular" else (lambda w: (eye + w) @ (eye - torch.outer(u, u)))
    )
    u = torch.nn.functional.normalize(_randn(n, g=g), dim=0)
    res = [float(sv[-1]) for sv in _batch_spectrum(block, depths, x, n, _gen(seed + 1))]
    plain = [float(sv[-1]) for sv in _batch_spectrum(lambda w: w, depths, x, n, _gen(seed + 1))]
    judged = plain if premise == "plain" else res
    floor = n * torch.finfo(DTYPE).eps
    return {
        "paper": "oyedotun2020",
        "key": "oyedotun2020/theorem3",
        "where": "Sec. III.C.2, Theorem 3 and Remark 2",
        "statement": OY_T3,
        "construction": f"n = {n}, W_r^l Gaussian N(0, 1/n), blocks I + W_r^l, a batch of {2 * n} Gaussian "
        "inputs; 1/kappa(H^m) = sigma_min / sigma_max",
        "premise": {"residual": "as stated", "plain": "no identity skips (PlainNet)"}.get(
            premise, "blocks (I + W)(I - u u^T), singular"
        ),
        "x_label": "depth m (linear blocks)",
        "y_label": "1 / kappa(H^m)",
        "xscale": "log",
        "yscale": "log",
        "series": {
            "ResNet 1/kappa (measured)": _series(depths, [max(v, 1e-300) for v in res]),
            "PlainNet 1/kappa (measured, for reference)": _series(
                depths, [max(v, 1e-300) for v in plain], "reference"
            ),
            f"non-singular floor n eps = {floor:.1e}": _series(depths, [floor] * len(depths), "bound"),
        },
        "comparisons": [
            {"label": f"m={d}: 1/kappa(H^m) > n eps", "measured": v, "lower": floor, "tolerance": 0.0}
            for d, v in zip(depths, judged)
        ],
    }


CHECKS: dict[str, Callable[..., dict[str, Any]]] = {
    "zaeemzadeh2020/theorem1": zaeemzadeh_theorem1,
    "zaeemzadeh2020/theorem2": zaeemzadeh_theorem2,
    "zaeemzadeh2020/corollary1": zaeemzadeh_corollary1,
    "zaeemzadeh2020/theorem3": zaeemzadeh_theorem3,
    "zaeemzadeh2020/procrustes": zaeemzadeh_procrustes,
    "jia2017/lemma1": jia_lemma1,
    "jia2017/svb_backward": jia_svb_backward,
    "xie2017/bn_jacobian": xie_bn_jacobian,
    "oyedotun2020/theorem2": oyedotun_theorem2,
    "oyedotun2020/theorem3": oyedotun_theorem3,
}
"""Every check, ``<paper>/<theorem>`` -> its function (``scale`` first, then its violating-case options)."""


def run_check(key: str, scale: str | dict[str, Any] = "small", **options: Any) -> dict[str, Any]:
    """One check's measurements (with ``scale`` recorded)."""
    s = sizes(scale)
    if key not in CHECKS:
        raise KeyError(f"unknown theory check {key!r}; valid: {', '.join(CHECKS)}")
    out = CHECKS[key](scale, **options)
    out["scale"] = scale if isinstance(scale, str) else s
    return out
