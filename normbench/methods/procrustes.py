"""Procrustes projection of convolution operators (Zaeemzadeh, Rahnavard, Shah, TPAMI 2020, Sec. 3).

The maths
---------
A stride-1 circular convolution with kernel ``K`` (``c_out x c_in x k x k``) on an ``n x n`` grid is a linear map
``W_hat`` of size ``n^2 c_out x n^2 c_in``. The 2-D DFT block-diagonalises it (Theorem 3 of the paper, Theorem 6
of Sedghi, Gupta and Long, ICLR 2019): for every frequency ``(u, v)`` the ``c_out x c_in`` complex matrix

    P^(u,v)_ij = F_n(K[i, j, :, :])_(u,v) = sum_(a,b) K[i, j, a, b] exp(-2 pi i (u a + v b) / n)

and the singular values of ``W_hat`` are the union over all ``(u, v)`` of the singular values of ``P^(u,v)``.

Norm preservation (eq. 7, with the paper's approximation of the energy ratio) asks every non-zero singular value
to equal the gain ``g = sqrt(d / min(d, c))`` with ``d = c_out`` and ``c = c_in``: ``sqrt(c_out / c_in)`` when the
layer widens, 1 when it narrows. The nearest such block in Frobenius norm is the orthogonal Procrustes solution,
eq. (8),

    P_hat = g P (P^H P)^(-1/2) = g U V^H        where P = U S V^H (thin SVD),

and the kernel is updated by the inverse DFT of ``P_hat`` (Algorithm 1, step 5). By Parseval the per-frequency
projection is also the Frobenius-nearest operator of that kind in kernel space.

Exact and fast paths
--------------------
``path="svd"`` computes ``U V^H`` from a batched SVD. ``path="newton_schulz"`` is the paper's iteration, eq. (9):
``T_k = 3I - Z_k Y_k, Y_(k+1) = Y_k T_k / 2, Z_(k+1) = T_k Z_k / 2`` from ``Y_0 = P^H P, Z_0 = I``, whose
``Z_k -> (P^H P)^(-1/2)``. Every iterate is a function of ``G = P^H P`` (so they commute) and ``Y_k = G Z_k``
for all k; hence ``X_k = P Z_k`` obeys the one-sided recursion

    X_(k+1) = X_k (3 I - X_k^H X_k) / 2,       X_0 = P / s,

(the same iterates in exact arithmetic). Each singular value follows ``x -> x (3 - x^2) / 2``, which converges
to 1 for ``0 < x < sqrt(3)``, quadratically near 1. :func:`polar_newton_schulz` runs eq. (9) as written on
``G = P^H P / s^2`` and returns ``P Z_k / s``: the iteration works on the small ``c_in x c_in`` Gram matrix,
which for the tall stem blocks (64 x 3) is several times cheaper than iterating on ``P`` itself. The scale
``s^2`` is an upper bound of the largest eigenvalue of the Gram matrix (the smaller of its max-row-sum and
Frobenius norms), so ``x_0 <= 1``. We take the Gram matrix of the *smaller* side, ``P^H P`` for a widening
layer and ``P P^H`` for a narrowing one, which keeps it full rank (the paper writes ``P^T P`` for all layers,
singular when ``c_out < c_in``). Everything is batched over frequencies and over layers of equal block shape,
and runs on the weights' device (the GPU when the model is there).

Complex arithmetic and the official code
----------------------------------------
We work with complex tensors and the conjugate transpose ``P^H``. The real kernel's spectrum is Hermitian,
``P(-w) = conj(P(w))``, and ``polar(conj P) = conj(polar P)``, so projecting the one-sided spectrum
(``rfft2``) and inverting with ``irfft2`` returns the real projected kernel exactly (no ``.real`` discarding an
imaginary residue). The official code (``regularize_conv`` in zaeemzadeh/ProcResNet) embeds ``A = R + iI`` as
``[[R, I], [-I, R]]``, which is the real form of ``conj(A)``, and reads the result back as ``R' - i I'``: its
reconstructed spectrum is ``conj(g polar(P))``, whose inverse DFT is the projected kernel *reflected through the
origin*, ``K(-x mod n)``. For a 1x1 kernel every block is real and the conjugation is harmless; for the 3x3 stem
the official code then keeps taps ``[0:3, 0:3]`` of the reflected kernel, i.e. mostly wrapped-around taps of the
wrong side. :func:`conjugated_reconstruction` reproduces that behaviour for the tests and docs.

Kernel support
--------------
After the inverse DFT a projected ``k x k`` kernel (``k > 1``) has full ``n x n`` support. ``support="full"``
returns that kernel (the exact projection: every operator singular value equals ``g``). ``support="truncate"``
keeps the taps at the kernel's own positions ``[0:k, 0:k]`` (the orthogonal projection onto kernels of that
support, again by Parseval), which is what the official code does and which breaks the constraint.
Repeating project-then-truncate (``support_iterations > 1``) is alternating projection between the
constraint set and the ``k x k`` subspace: it converges for tall layers such as the 3 -> 64 stem (to 1e-6 within
about 150 passes from a random kernel) but can stall for square ones. Since a
:class:`torch.nn.Conv2d` holds a ``k x k`` kernel and zero-pads, the method (:class:`ProcrustesProjection`)
keeps the layer's support and records the remaining deviation; 1x1 kernels need no FFT at all (every block is
the weight matrix itself), and their projection is exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from normbench.methods import register_method
from normbench.methods.base import Method
from normbench.models.layers import ProjectedConv2d

Grid = int | tuple[int, int]


def _grid2(grid: Grid) -> tuple[int, int]:
    return (grid, grid) if isinstance(grid, int) else (int(grid[0]), int(grid[1]))


def procrustes_gain(c_out: int, c_in: int, rule: str | float = "paper", factor: float = 1.0) -> float:
    """Target singular value of a ``c_in -> c_out`` convolution.

    ``rule="paper"``: ``sqrt(d / min(d, c))`` (Sec. 3, after eq. 7; ``d = c_out``, ``c = c_in``);
    ``rule="ratio"``: ``sqrt(c_out / c_in)`` (the official code, identical to "paper" when ``c_out >= c_in``,
    i.e. for every ProcResNet layer); a number: that gain. ``factor`` multiplies the result (``sqrt(2)`` for the
    Conv-ReLU variant the paper mentions after Algorithm 1).
    """
    if isinstance(rule, (int, float)) and not isinstance(rule, bool):
        g = float(rule)
    elif rule == "paper":
        g = math.sqrt(c_out / min(c_out, c_in))
    elif rule == "ratio":
        g = math.sqrt(c_out / c_in)
    else:
        raise ValueError(f"gain must be 'paper', 'ratio' or a number, got {rule!r}")
    return g * factor


def frequency_blocks(weight: torch.Tensor, grid: Grid, onesided: bool = False) -> torch.Tensor:
    """The DFT blocks ``P^(u,v)`` of a kernel zero-padded to ``grid``: shape ``(n_u, n_v, c_out, c_in)``.

    ``onesided`` keeps the half spectrum ``v = 0 .. n//2`` (``rfft2``), enough for a real kernel.
    """
    h, w = _grid2(grid)
    kh, kw = weight.shape[-2:]
    if kh > h or kw > w:
        raise ValueError(f"kernel {kh}x{kw} does not fit the FFT grid {h}x{w}")
    fft = torch.fft.rfft2 if onesided else torch.fft.fft2
    return fft(weight, s=(h, w)).permute(2, 3, 0, 1)


def operator_singular_values(weight: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Singular values of the circular convolution operator (Theorem 3): ``(n_u, n_v, min(c_out, c_in))``.

    Computed in float64 from the full (two-sided) spectrum of the zero-padded kernel.
    """
    return torch.linalg.svdvals(frequency_blocks(weight.detach().double(), grid))


def polar_svd(m: torch.Tensor) -> torch.Tensor:
    """Orthogonal polar factor ``U V^H`` of a batch of matrices (``...xMxN``) by thin SVD."""
    u, _, vh = torch.linalg.svd(m, full_matrices=False)
    return u @ vh


def polar_newton_schulz(m: torch.Tensor, iterations: int = 10) -> torch.Tensor:
    """Orthogonal polar factor by the coupled Newton-Schulz iteration of eq. (9), batched.

    With ``G = M^H M / s^2`` (the Gram matrix of the smaller side; ``M M^H`` for a wide ``M``) and
    ``s^2 >= lambda_max(M^H M)``: ``T_k = 3I - Z_k Y_k, Y_(k+1) = Y_k T_k / 2, Z_(k+1) = T_k Z_k / 2`` from
    ``Y_0 = G, Z_0 = I``; then ``polar(M) ~= M Z_k / s``. Works for real and complex batches.
    """
    rows, cols = m.shape[-2:]
    wide = rows < cols
    x = m.mH if wide else m
    gram = x.mH @ x
    bound = torch.minimum(gram.abs().sum(-1).amax(-1), torch.linalg.matrix_norm(gram))
    bound = bound.clamp_min(torch.finfo(bound.dtype).tiny)[..., None, None]
    y = gram / bound
    eye = torch.eye(y.shape[-1], dtype=y.dtype, device=y.device)
    z = eye.expand_as(y)
    for _ in range(iterations):
        t = 1.5 * eye - 0.5 * (z @ y)
        y, z = y @ t, t @ z
    x = (x @ z) / bound.sqrt()
    return x.mH if wide else x


def polar(m: torch.Tensor, path: str = "svd", iterations: int = 10) -> torch.Tensor:
    """Polar factor by ``path`` ``"svd"`` (exact) or ``"newton_schulz"`` (``iterations`` steps)."""
    if path == "svd":
        return polar_svd(m)
    if path == "newton_schulz":
        return polar_newton_schulz(m, iterations)
    raise ValueError(f"path must be 'svd' or 'newton_schulz', got {path!r}")


def project_kernels(
    weights: Sequence[torch.Tensor],
    grids: Sequence[Grid | None],
    gains: Sequence[float],
    path: str = "svd",
    iterations: int = 10,
    support: str = "truncate",
    dtype: torch.dtype | None = None,
) -> list[torch.Tensor]:
    """One Procrustes projection of several kernels, batched over frequencies and over layers.

    Kernels are grouped by block shape ``(c_out, c_in)`` and kind (1x1: the real weight matrix, whose every DFT
    block is itself, so no FFT is needed and ``grid`` may be ``None``; ``k > 1``: the complex one-sided spectrum
    on ``grid``). Each group's blocks are stacked along one batch dimension and projected to ``g U V^H`` in one
    call. ``support="full"`` returns ``n x n`` kernels for ``k > 1``; ``"truncate"`` keeps ``[0:k, 0:k]``.
    Returns new tensors in the input dtype; computation in the wider of the input dtype and ``dtype``.
    """
    if support not in ("full", "truncate"):
        raise ValueError(f"support must be 'full' or 'truncate', got {support!r}")
    out: list[torch.Tensor | None] = [None] * len(weights)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, w in enumerate(weights):
        one = tuple(w.shape[-2:]) == (1, 1)
        if not one and grids[i] is None:
            raise ValueError(f"kernel {i} ({tuple(w.shape)}) needs an FFT grid")
        groups.setdefault((w.shape[0], w.shape[1], one, w.device), []).append(i)
    for (c_out, c_in, one, _), idx in groups.items():
        blocks, sizes = [], []
        for i in idx:
            w = weights[i].detach()
            w = w.to(torch.promote_types(w.dtype, dtype)) if dtype is not None else w
            b = w[:, :, 0, 0].unsqueeze(0) if one else frequency_blocks(w, grids[i], onesided=True)
            b = b.reshape(-1, c_out, c_in)
            blocks.append(b)
            sizes.append(b.shape[0])
        q = polar(torch.cat(blocks), path, iterations)
        for i, part in zip(idx, q.split(sizes), strict=True):
            part = part * gains[i]
            w = weights[i]
            if one:
                new = part.reshape(c_out, c_in, 1, 1)
            else:
                h, wd = _grid2(grids[i])
                spec = part.reshape(h, wd // 2 + 1, c_out, c_in).permute(2, 3, 0, 1)
                new = torch.fft.irfft2(spec, s=(h, wd))
                if support == "truncate":
                    new = new[..., : w.shape[-2], : w.shape[-1]]
            out[i] = new.to(w.dtype)
    return out  # type: ignore[return-value]


def project_kernel(
    weight: torch.Tensor,
    grid: Grid | None,
    gain: float,
    path: str = "svd",
    iterations: int = 10,
    support: str = "truncate",
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Procrustes projection of one kernel (see :func:`project_kernels`)."""
    return project_kernels([weight], [grid], [gain], path, iterations, support, dtype)[0]


def conjugated_reconstruction(weight: torch.Tensor, grid: Grid, gain: float) -> torch.Tensor:
    """What the official ``regularize_conv`` reconstructs (exact polar factor, before its truncation).

    Its real embedding ``[[R, I], [-I, R]]`` represents ``conj(P)``; reading ``R' - i I'`` back gives
    ``conj(g polar(P))`` per frequency; ``ifft2(...).real`` of that is the correctly projected full-support
    kernel reflected through the origin. Kept for the tests and docs that show the bug; never used in training.
    """
    h, w = _grid2(grid)
    p = frequency_blocks(weight.detach().double(), grid)
    q = gain * polar_svd(p)
    return torch.fft.ifft2(q.conj().permute(2, 3, 0, 1), s=(h, w)).real.to(weight.dtype)


def deviation(weight: torch.Tensor, grid: Grid | None, gain: float) -> tuple[float, float]:
    """``(max |sigma - g|, max |sigma - g| / g)`` over the operator's singular values (1x1: grid irrelevant)."""
    if tuple(weight.shape[-2:]) == (1, 1):
        sv = torch.linalg.svdvals(weight.detach().double()[:, :, 0, 0])
    else:
        if grid is None:
            raise ValueError("a k x k kernel (k > 1) needs an FFT grid")
        sv = operator_singular_values(weight, grid)
    dev = (sv - gain).abs().max().item()
    return dev, dev / gain


@register_method
class ProcrustesProjection(Method):
    """Projection of every :class:`ProjectedConv2d` onto norm-preserving operators (Zaeemzadeh et al. 2020).

    Hook point: **after the optimizer step** (Algorithm 1, step 1 then steps 2-5). Schedule: every ``every``
    steps (the paper: "every 2 iterations", Sec. 4, the default) or, with ``probability`` p, after each step with
    probability p (the official code's ``regul_freq = 0.5``), drawn from this method's own generator (seeded by
    ``seed``, or by ``torch.initial_seed()`` at attach, i.e. the run's seed; saved in the state dict).

    Options:
      every (int, default 2), probability (float, default None: use ``every``),
      path ("newton_schulz" default | "svd"), iterations (10, the official count; Newton-Schulz steps),
      warm_start (True: each layer's first projection takes the exact path, so later Newton-Schulz calls start
      near the constraint set, where they converge quadratically),
      gain ("paper" default | "ratio" | number), gain_factor (1.0; sqrt(2) for a Conv-ReLU target),
      support ("truncate", the only mode a ``k x k`` Conv2d can hold; see the module docstring),
      support_iterations (1: project-then-truncate once per application, as the official code; > 1 repeats it),
      finalize_iterations (200: project-then-truncate passes at the end of training, stopping once the
      deviation is below ``tol``), tol (1e-4: relative deviation counted as satisfied),
      grids (dict of module name -> FFT grid, overriding what the layers record on their first forward),
      dtype ("float32" default | "float64": precision of the projection during training), seed.

    ``finalize`` applies the exact projection once more and records, per layer, ``param``, ``kind``
    ("procrustes"), ``gain``, ``grid``, ``kernel``, ``support``, the achieved ``max_abs_deviation`` and
    ``max_rel_deviation`` of the operator's singular values from the gain, ``tolerance`` and ``satisfied``.
    """

    name = "procrustes"

    def __init__(
        self,
        every: int | None = None,
        probability: float | None = None,
        path: str = "newton_schulz",
        iterations: int = 10,
        warm_start: bool = True,
        gain: str | float = "paper",
        gain_factor: float = 1.0,
        support: str = "truncate",
        support_iterations: int = 1,
        finalize_iterations: int = 200,
        tol: float = 1e-4,
        grids: dict[str, int] | None = None,
        dtype: str = "float32",
        seed: int | None = None,
    ) -> None:
        if every is not None and probability is not None:
            raise ValueError("procrustes: give either 'every' or 'probability', not both")
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise ValueError(f"procrustes: probability must lie in [0, 1], got {probability}")
        if every is None and probability is None:
            every = 2
        if every is not None and every < 1:
            raise ValueError(f"procrustes: every must be >= 1, got {every}")
        if path not in ("svd", "newton_schulz"):
            raise ValueError(f"procrustes: path must be 'svd' or 'newton_schulz', got {path!r}")
        if support != "truncate":
            raise ValueError(
                "procrustes: a Conv2d holds a k x k kernel, so the method supports support='truncate' only "
                "(the full-support projection is available as project_kernels(..., support='full'))"
            )
        if dtype not in ("float32", "float64"):
            raise ValueError(f"procrustes: dtype must be 'float32' or 'float64', got {dtype!r}")
        procrustes_gain(2, 1, gain)  # validates the rule
        self.every, self.probability = every, probability
        self.path, self.iterations, self.warm_start = path, int(iterations), bool(warm_start)
        self.gain_rule, self.gain_factor = gain, float(gain_factor)
        self.support, self.support_iterations = support, max(1, int(support_iterations))
        self.finalize_iterations, self.tol = max(1, int(finalize_iterations)), float(tol)
        self.grids = dict(grids or {})
        self.dtype = getattr(torch, dtype)
        self.seed = seed
        self.generator = torch.Generator()
        self.warm: set[str] = set()
        self.projections = 0

    # -- layers -------------------------------------------------------------------------------------------
    def layers(self, model: nn.Module) -> list[tuple[str, ProjectedConv2d]]:
        """The projected convolutions of ``model``: every :class:`ProjectedConv2d`, by module name."""
        found = [(n, m) for n, m in model.named_modules() if isinstance(m, ProjectedConv2d)]
        for n, m in found:
            if m.groups != 1:
                raise ValueError(f"procrustes: {n} is a grouped convolution; the projection needs groups=1")
        return found

    def grid_of(self, name: str, module: ProjectedConv2d) -> int | None:
        return self.grids.get(name, module.grid)

    def gain_of(self, module: nn.Conv2d) -> float:
        return procrustes_gain(module.out_channels, module.in_channels, self.gain_rule, self.gain_factor)

    # -- hooks --------------------------------------------------------------------------------------------
    def attach(self, model: nn.Module) -> None:
        self.generator.manual_seed(self.seed if self.seed is not None else torch.initial_seed())
        if not self.layers(model):
            raise ValueError("procrustes: the model has no ProjectedConv2d layer to project")

    def due(self, step: int) -> bool:
        """Whether the projection runs after optimizer step ``step`` (counted from 0)."""
        if self.probability is not None:
            return bool(torch.rand((), generator=self.generator).item() < self.probability)
        return (step + 1) % self.every == 0

    @torch.no_grad()
    def project(
        self, model: nn.Module, path: str | None = None, support_iterations: int | None = None
    ) -> None:
        """Apply the projection once to every projected layer (layers whose grid is unknown are skipped)."""
        todo = [
            (n, m) for n, m in self.layers(model) if m.kernel_size == (1, 1) or self.grid_of(n, m) is not None
        ]
        paths = {}
        for n, _ in todo:
            paths[n] = path or ("svd" if self.warm_start and n not in self.warm else self.path)
        for p in sorted(set(paths.values())):
            sel = [(n, m) for n, m in todo if paths[n] == p]
            for _ in range(support_iterations or self.support_iterations):
                new = project_kernels(
                    [m.weight for _, m in sel],
                    [self.grid_of(n, m) for n, m in sel],
                    [self.gain_of(m) for _, m in sel],
                    p,
                    self.iterations,
                    self.support,
                    self.dtype,
                )
                for (_, m), w in zip(sel, new, strict=True):
                    m.weight.copy_(w)
        self.warm.update(paths)
        self.projections += 1

    def after_step(self, model: nn.Module, step: int) -> None:
        if self.due(step):
            self.project(model)

    def finalize(self, model: nn.Module) -> list[dict[str, Any]]:
        records = []
        for name, m in self.layers(model):
            grid = self.grid_of(name, m)
            if m.kernel_size != (1, 1) and grid is None:
                raise ValueError(
                    f"procrustes: the FFT grid of {name} is unknown (no forward pass ran); "
                    "pass it in the 'grids' option"
                )
            gain = self.gain_of(m)
            with torch.no_grad():
                w = m.weight.detach().double()
                passes = 1 if m.kernel_size == (1, 1) else self.finalize_iterations
                for i in range(passes):
                    w = project_kernel(w, grid, gain, "svd", support=self.support)
                    if i % 10 == 9 and deviation(w, grid, gain)[1] < self.tol * 0.1:
                        break
                m.weight.copy_(w.to(m.weight.dtype))
            dev_abs, dev_rel = deviation(m.weight, grid, gain)
            records.append(
                {
                    "param": f"{name}.weight",
                    "kind": "procrustes",
                    "gain": gain,
                    "grid": grid,
                    "kernel": list(m.kernel_size),
                    "support": self.support,
                    "max_abs_deviation": dev_abs,
                    "max_rel_deviation": dev_rel,
                    "tolerance": self.tol,
                    "satisfied": dev_rel <= self.tol,
                }
            )
        self.warm.update(n for n, _ in self.layers(model))
        return records

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "warm": sorted(self.warm),
            "projections": self.projections,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"])
        self.warm = set(state.get("warm", []))
        self.projections = int(state.get("projections", 0))
