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
and runs on the weights' device (the GPU when the model is there). A singular value starting at ``x_0`` needs
about ``log2(1/x_0)`` steps before the quadratic phase, so 10 steps do not converge on ill-conditioned blocks;
every result is therefore checked, ``||Q^H Q - I||_F <= ns_tol`` (default 1e-3), and a block that fails is
recomputed by the SVD.

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
wrong side. :func:`conjugated_reconstruction` reproduces that behaviour for the tests and docs, and
:func:`official_projection` the official arithmetic as a whole (the method's ``projection: official``): the
real embedding of the *transposed* block ``P^T`` (the code transposes the kernel to ``k x k x c_in x c_out``),
its Newton-Schulz ``batch_sqrtm`` scaled by the Frobenius norm of ``E^T E`` (10 steps; ``E^T E`` is
``2 c_out x 2 c_out`` and rank-deficient for a widening layer, so its null space grows as ``1.5^k``, harmless
for 10 steps in float32 and divergent beyond about 20), the conjugated read-back, ``ifft2(...).real`` and the
``[0:k, 0:k]`` truncation, in float32 as the official code runs.

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
the weight matrix itself), and their projection is exact. ``projection: alternate`` repeats the pair until the
relative deviation is below ``alternate_tol`` or ``alternate_iterations`` passes are spent
(:func:`alternate_projection`; the reached residual is kept).

The constraint's real state
---------------------------
:func:`operator_state` measures, per layer, the extreme singular values over the gain of two operators: the
circular one above (the union of the DFT blocks' singular values), and the zero-padded stride-1 convolution
that an ``nn.Conv2d`` applies on the ``n x n`` input (:func:`zero_padded_extremes`: the Gram operator
``A^T A`` or ``A A^T`` of the smaller side, built from ``conv2d`` and ``conv_transpose2d``, diagonalised
exactly up to 4096 dimensions, by Lanczos beyond). They differ near the image border: a stem whose circular
operator is exactly at the gain has its zero-padded one at [0.62, 1.00] x gain. The method records both after
every epoch and in its ``finalize`` records.
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


def orthogonality_residual(x: torch.Tensor) -> torch.Tensor:
    """``||Q^H Q - I||_F`` per matrix of a batch, with ``Q`` the batch oriented tall (``Q = X^H`` for a wide ``X``).

    Bounds the singular-value error of a polar-factor estimate: ``max_i |q_i^2 - 1| <= ||Q^H Q - I||_F``.
    """
    q = x.mH if x.shape[-2] < x.shape[-1] else x
    eye = torch.eye(q.shape[-1], dtype=q.dtype, device=q.device)
    return torch.linalg.matrix_norm(q.mH @ q - eye)


def polar_newton_schulz(m: torch.Tensor, iterations: int = 10, tol: float | None = 1e-3) -> torch.Tensor:
    """Orthogonal polar factor by the coupled Newton-Schulz iteration of eq. (9), batched, SVD where it stalls.

    With ``G = M^H M / s^2`` (the Gram matrix of the smaller side; ``M M^H`` for a wide ``M``) and
    ``s^2 >= lambda_max(M^H M)``: ``T_k = 3I - Z_k Y_k, Y_(k+1) = Y_k T_k / 2, Z_(k+1) = T_k Z_k / 2`` from
    ``Y_0 = G, Z_0 = I``; then ``polar(M) ~= Q = M Z_k / s``. A singular value ``x_0 = sigma / s`` needs about
    ``log2(1 / x_0)`` steps before the quadratic phase, so an ill-conditioned block is not converged after 10.
    Hence the check: every matrix whose residual ``||Q^H Q - I||_F`` (:func:`orthogonality_residual`) exceeds
    ``tol`` (or is not finite) is recomputed by the exact SVD. ``tol=None`` skips the check (eq. 9 as written).
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
    q = x.mH if wide else x
    if tol is None:
        return q
    bad = ~(orthogonality_residual(q) <= tol)
    if bool(bad.any()):
        q = q.clone()
        q[bad] = polar_svd(m[bad])
    return q


def polar(m: torch.Tensor, path: str = "svd", iterations: int = 10, tol: float | None = 1e-3) -> torch.Tensor:
    """Polar factor by ``path`` ``"svd"`` (exact) or ``"newton_schulz"`` (``iterations`` steps, SVD fallback
    beyond the residual ``tol``, see :func:`polar_newton_schulz`)."""
    if path == "svd":
        return polar_svd(m)
    if path == "newton_schulz":
        return polar_newton_schulz(m, iterations, tol)
    raise ValueError(f"path must be 'svd' or 'newton_schulz', got {path!r}")


def _kernel_from_blocks(q: torch.Tensor, grid: Grid, kernel: tuple[int, int], support: str) -> torch.Tensor:
    """Inverse of the one-sided DFT: blocks ``(h * (w//2 + 1), c_out, c_in)`` -> kernel ``c_out x c_in x h x w``,
    cut to ``[0:k, 0:k]`` when ``support="truncate"``."""
    h, wd = _grid2(grid)
    spec = q.reshape(h, wd // 2 + 1, *q.shape[-2:]).permute(2, 3, 0, 1)
    new = torch.fft.irfft2(spec, s=(h, wd))
    return new[..., : kernel[0], : kernel[1]] if support == "truncate" else new


def project_kernels(
    weights: Sequence[torch.Tensor],
    grids: Sequence[Grid | None],
    gains: Sequence[float],
    path: str = "svd",
    iterations: int = 10,
    support: str = "truncate",
    dtype: torch.dtype | None = None,
    ns_tol: float | None = 1e-3,
) -> list[torch.Tensor]:
    """One Procrustes projection of several kernels, batched over frequencies and over layers.

    Kernels are grouped by block shape ``(c_out, c_in)`` and kind (1x1: the real weight matrix, whose every DFT
    block is itself, so no FFT is needed and ``grid`` may be ``None``; ``k > 1``: the complex one-sided spectrum
    on ``grid``). Each group's blocks are stacked along one batch dimension and projected to ``g U V^H`` in one
    call. ``support="full"`` returns ``n x n`` kernels for ``k > 1``; ``"truncate"`` keeps ``[0:k, 0:k]``.
    ``ns_tol``: the Newton-Schulz residual beyond which a block falls back to the SVD (:func:`polar_newton_schulz`).
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
        q = polar(torch.cat(blocks), path, iterations, ns_tol)
        for i, part in zip(idx, q.split(sizes), strict=True):
            part, w = part * gains[i], weights[i]
            if one:
                new = part.reshape(c_out, c_in, 1, 1)
            else:
                new = _kernel_from_blocks(part, grids[i], tuple(w.shape[-2:]), support)
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
    ns_tol: float | None = 1e-3,
) -> torch.Tensor:
    """Procrustes projection of one kernel (see :func:`project_kernels`)."""
    return project_kernels([weight], [grid], [gain], path, iterations, support, dtype, ns_tol)[0]


def alternate_projection(
    weight: torch.Tensor, grid: Grid | None, gain: float, tol: float = 1e-4, max_passes: int = 200
) -> tuple[torch.Tensor, float, int]:
    """Alternating projection between the constraint set and the kernels of the layer's ``k x k`` support.

    Each pass takes the SVD ``P = U S V^H`` of every one-sided DFT block of the current kernel, reads the
    residual ``r = max |s - g| / g`` (the relative deviation of the circular operator's singular values from the
    gain), stops when ``r <= tol``, and otherwise replaces the kernel by ``[irfft2(g U V^H)]_(0:k, 0:k)``
    (project, then truncate). At most ``max_passes`` projections; returns ``(kernel, reached r, passes)``, the
    kernel in the input dtype, computed in it. A 1x1 kernel needs one pass (its projection is exact).
    """
    w, passes = weight.detach(), 0
    k = tuple(w.shape[-2:])
    if k != (1, 1) and grid is None:
        raise ValueError("a k x k kernel (k > 1) needs an FFT grid")
    while True:
        b = w[:, :, 0, 0] if k == (1, 1) else frequency_blocks(w, grid, onesided=True)
        b = b.reshape(-1, *w.shape[:2])
        u, s, vh = torch.linalg.svd(b, full_matrices=False)
        residual = ((s - gain).abs().max() / gain).item()
        if residual <= tol or passes >= max_passes:
            return w, residual, passes
        q = gain * (u @ vh)
        w = q.reshape(w.shape) if k == (1, 1) else _kernel_from_blocks(q, grid, k, "truncate")
        passes += 1


def official_inverse_sqrt(a: torch.Tensor, iterations: int = 10) -> torch.Tensor:
    """The official code's ``A^(-1/2)`` of a batch of symmetric PSD matrices (its ``batch_sqrtm``, ``reg = 1``).

    ``r = ||A||_F`` where that exceeds 1, else ``r = 1``; ``Y_0 = A / r, Z_0 = I``;
    ``T_k = (3I - Z_k Y_k) / 2, Y_(k+1) = Y_k T_k, Z_(k+1) = T_k Z_k``; returns ``Z_k / sqrt(r)``. The
    Frobenius norm (not the largest eigenvalue) scales, so small eigenvalues start far below 1 and need many
    steps; eigenvalues 0 (a rank-deficient ``A``) make ``Z`` grow as ``1.5^k`` on the null space.
    """
    norm = torch.linalg.matrix_norm(a)
    r = torch.where(norm > 1.0, norm, torch.ones_like(norm))[..., None, None]
    y = a / r
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    z = eye.expand_as(a)
    for _ in range(iterations):
        t = 0.5 * (3.0 * eye - z @ y)
        y, z = y @ t, t @ z
    return z / r.sqrt()


def official_projection(weight: torch.Tensor, grid: Grid, gain: float, iterations: int = 10) -> torch.Tensor:
    """The arithmetic of the official PyTorch ``regularize_conv`` (zaeemzadeh/ProcResNet_PyTorch), in float32.

    Per frequency it takes the transposed block ``B = P^T = R + iI`` (``c_in x c_out``; the code transposes the
    kernel to ``k x k x c_in x c_out`` before ``fftn``), embeds it as ``E = [[R, I], [-I, R]]`` (the real form of
    ``conj B``), computes ``Q = g E (E^T E)^(-1/2)`` with :func:`official_inverse_sqrt` (10 steps, ``E^T E`` of
    size ``2 c_out``, rank-deficient for a widening layer), reads back ``A' = Q_11 - i Q_12`` (top-left minus
    ``i`` top-right ``c_in x c_out`` blocks), inverts with the full two-sided ``ifft2``, keeps ``.real`` and
    cuts to ``[0:k, 0:k]``. When the iteration converges ``A' = conj(g polar(P))^T``: the correctly projected
    kernel reflected through the origin, then truncated (:func:`conjugated_reconstruction`). Returns the kernel
    in the input dtype.
    """
    h, wd = _grid2(grid)
    w = weight.detach().float()
    b = frequency_blocks(w, (h, wd)).transpose(-2, -1)
    top, bottom = torch.cat((b.real, b.imag), -1), torch.cat((-b.imag, b.real), -1)
    e = torch.cat((top, bottom), -2)
    q = e @ official_inverse_sqrt(e.mT @ e, iterations) * gain
    c_in, c_out = b.shape[-2:]
    spec = torch.complex(q[..., :c_in, :c_out], -q[..., :c_in, c_out:]).transpose(-2, -1)
    new = torch.fft.ifft2(spec.permute(2, 3, 0, 1), s=(h, wd)).real
    return new[..., : w.shape[-2], : w.shape[-1]].to(weight.dtype)


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


def circular_extremes(weight: torch.Tensor, grid: Grid | None) -> tuple[float, float]:
    """``(min, max)`` singular value of the stride-1 circular operator on ``grid`` (Theorem 3: the union of the
    singular values of the DFT blocks, one-sided spectrum, float64); a 1x1 kernel's are those of its matrix."""
    w = weight.detach().double()
    if tuple(w.shape[-2:]) == (1, 1):
        sv = torch.linalg.svdvals(w[:, :, 0, 0])
    elif grid is None:
        raise ValueError("a k x k kernel (k > 1) needs an FFT grid")
    else:
        sv = torch.linalg.svdvals(frequency_blocks(w, grid, onesided=True))
    return sv.min().item(), sv.max().item()


def lanczos_extremes(apply: Any, dim: int, steps: int, like: torch.Tensor) -> tuple[float, float]:
    """Extreme eigenvalues of a symmetric PSD operator ``apply`` on ``R^dim`` by ``min(steps, dim)`` Lanczos steps.

    Full reorthogonalisation; a fixed start vector (seed 0), so the estimate is deterministic. The Ritz values
    lie inside the spectrum (the minimum is over-, the maximum underestimated) and are exact when the Krylov
    space fills ``R^dim`` (``steps >= dim``).
    """
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(dim, generator=gen, dtype=torch.float64).to(like.device)
    basis, alphas, betas = [q / q.norm()], [], []
    for j in range(min(steps, dim)):
        v = apply(basis[-1])
        alphas.append(torch.dot(v, basis[-1]))
        qs = torch.stack(basis)
        for _ in range(2):
            v = v - qs.T @ (qs @ v)
        beta = v.norm()
        if j == min(steps, dim) - 1 or beta <= 1e-10 * alphas[0].abs().clamp_min(1e-300):
            break
        betas.append(beta)
        basis.append(v / beta)
    t = torch.diag(torch.stack(alphas))
    if betas:
        off = torch.stack(betas)
        t = t + torch.diag(off, 1) + torch.diag(off, -1)
    ev = torch.linalg.eigvalsh(t)
    return ev[0].item(), ev[-1].item()


def dense_extremes(
    apply: Any, shape: tuple[int, ...], like: torch.Tensor, chunk: int = 256
) -> tuple[float, float]:
    """Extreme eigenvalues of a symmetric operator on tensors of ``shape`` (``1 x ...``), exactly: the matrix is
    built by applying ``apply`` to the standard basis, ``chunk`` vectors per batch (float64, on ``like``'s
    device), then ``eigvalsh``."""
    dim = math.prod(shape)
    rows = []
    for start in range(0, dim, chunk):
        idx = torch.arange(start, min(start + chunk, dim), device=like.device)
        basis = torch.zeros(len(idx), dim, dtype=torch.float64, device=like.device)
        basis[torch.arange(len(idx), device=like.device), idx] = 1.0
        rows.append(apply(basis.reshape(len(idx), *shape[1:])).reshape(len(idx), dim))
    g = torch.cat(rows)
    ev = torch.linalg.eigvalsh((g + g.T) / 2)
    return ev[0].item(), ev[-1].item()


def zero_padded_extremes(
    weight: torch.Tensor,
    grid: Grid | None,
    padding: tuple[int, int],
    steps: int = 100,
    dense_limit: int = 4096,
) -> tuple[float, float]:
    """``(min, max)`` singular value of the zero-padded stride-1 convolution an ``nn.Conv2d`` applies on ``grid``.

    The operator ``A: x -> conv2d(x, K, padding)`` (``c_in x n x n -> c_out x m x m``) has the adjoint
    ``conv_transpose2d(., K, padding)``; the singular values are ``sqrt`` of the eigenvalues of the Gram
    operator of the smaller side (``A^T A`` when ``c_in n^2 <= c_out m^2``, else ``A A^T``). Up to
    ``dense_limit`` dimensions (the 3 x 32 x 32 CIFAR stem: 3072) that Gram matrix is built and diagonalised
    exactly (:func:`dense_extremes`); beyond, ``steps`` Lanczos steps estimate it (:func:`lanczos_extremes`,
    whose minimum converges slowly when it is near 0). A 1x1 kernel without padding is ``I (x) W``: the
    singular values of ``W``.
    """
    w = weight.detach().double()
    if tuple(w.shape[-2:]) == (1, 1) and tuple(padding) == (0, 0):
        return circular_extremes(w, None)
    if grid is None:
        raise ValueError("a k x k kernel (k > 1) needs a grid")
    h, wd = _grid2(grid)
    fwd = lambda x: torch.nn.functional.conv2d(x, w, padding=padding)  # noqa: E731
    adj = lambda y: torch.nn.functional.conv_transpose2d(y, w, padding=padding)  # noqa: E731
    in_shape = (1, w.shape[1], h, wd)
    out_shape = tuple(fwd(torch.zeros(in_shape, dtype=w.dtype, device=w.device)).shape)
    if math.prod(in_shape) <= math.prod(out_shape):
        shape, gram = in_shape, lambda v: adj(fwd(v))
    else:
        shape, gram = out_shape, lambda v: fwd(adj(v))
    if math.prod(shape) <= dense_limit:
        lo, hi = dense_extremes(gram, shape, w)
    else:
        lo, hi = lanczos_extremes(lambda v: gram(v.reshape(shape)).reshape(-1), math.prod(shape), steps, w)
    return math.sqrt(max(lo, 0.0)), math.sqrt(max(hi, 0.0))


def operator_state(
    weight: torch.Tensor,
    grid: Grid | None,
    padding: tuple[int, int],
    gain: float,
    steps: int = 100,
    dense_limit: int = 4096,
) -> dict[str, float]:
    """The constraint's real state: extreme operator singular values over the gain, circular and zero-padded.

    ``{"circular_min", "circular_max", "zero_padded_min", "zero_padded_max"}``, each ``sigma / g``; all 1 when
    the constraint holds exactly. ``nan`` where the grid of a ``k x k`` kernel is unknown.
    """
    if tuple(weight.shape[-2:]) != (1, 1) and grid is None:
        c_lo = c_hi = z_lo = z_hi = math.nan
    else:
        c_lo, c_hi = circular_extremes(weight, grid)
        z_lo, z_hi = zero_padded_extremes(weight, grid, padding, steps, dense_limit)
    return {
        "circular_min": c_lo / gain,
        "circular_max": c_hi / gain,
        "zero_padded_min": z_lo / gain,
        "zero_padded_max": z_hi / gain,
    }


_RELUS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU)
_RELU_FNS = (torch.relu, torch.nn.functional.relu, torch.nn.functional.relu6, torch.nn.functional.leaky_relu)


class _LeafTracer(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, ProjectedConv2d) or super().is_leaf_module(m, qualname)


def _is_relu(node: torch.fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(str(node.target)), _RELUS)
    if node.op == "call_function":
        return node.target in _RELU_FNS
    return node.op == "call_method" and node.target in ("relu", "relu_")


def _relu_after_traced(model: nn.Module, names: Sequence[str]) -> dict[str, bool]:
    graph = _LeafTracer().trace(model)
    modules = dict(model.named_modules())
    out = {n: False for n in names}
    for node in graph.nodes:
        if node.op == "call_module" and node.target in out:
            users = list(node.users)
            out[str(node.target)] = bool(users) and all(_is_relu(u, modules) for u in users)
    return out


def _relu_after_sequential(model: nn.Module, names: Sequence[str]) -> dict[str, bool]:
    out = {n: False for n in names}
    for parent_name, parent in model.named_modules():
        if not isinstance(parent, nn.Sequential):
            continue
        children = list(parent.named_children())
        for (name, _), (_, nxt) in zip(children, children[1:], strict=False):
            full = f"{parent_name}.{name}" if parent_name else name
            if full in out:
                out[full] = isinstance(nxt, _RELUS)
    return out


def relu_after(model: nn.Module, names: Sequence[str]) -> dict[str, bool]:
    """For each named module: is its output fed only into a ReLU (``nn.ReLU``, ``ReLU6``, ``LeakyReLU`` or the
    functional forms)?

    Read from the ``torch.fx`` graph of ``model`` (projected convolutions as leaves); a model that ``fx`` cannot
    trace falls back to the ``nn.Sequential`` structure (a ReLU module right after it in its ``Sequential``).
    Anything else (e.g. the ProcResNet stem, whose output enters the first block) counts as no ReLU.
    """
    try:
        return _relu_after_traced(model, names)
    except Exception:  # noqa: BLE001 - any tracing failure: use the structural rule
        return _relu_after_sequential(model, names)


@register_method
class ProcrustesProjection(Method):
    """Projection of every :class:`ProjectedConv2d` onto norm-preserving operators (Zaeemzadeh et al. 2020).

    Hook point: **after the optimizer step** (Algorithm 1, step 1 then steps 2-5). Schedule: every ``every``
    steps (the paper: "every 2 iterations", Sec. 4, the default) or, with ``probability`` p, after each step with
    probability p (the official code's ``regul_freq = 0.5``), drawn from this method's own generator (seeded by
    ``seed``, or by ``torch.initial_seed()`` at attach, i.e. the run's seed; saved in the state dict).

    Options:
      every (int, default 2), probability (float, default None: use ``every``),
      projection: what one application does to a ``k x k`` kernel (1x1 kernels: all exact but ``official``,
      which differs from exact only by its Newton-Schulz rounding):
        "truncate" (default): project, keep taps ``[0:k, 0:k]``; ``support_iterations`` times (1: once per step);
        "alternate": alternating projection to ``alternate_tol`` (relative deviation of the circular operator's
        singular values from the gain), at most ``alternate_iterations`` passes; the reached residual and pass
        count are kept per layer (exact SVD, whatever ``path``: the residual needs the singular values);
        "official": the published PyTorch code's arithmetic (:func:`official_projection`: real embedding,
        conjugated read-back, its Frobenius-scaled Newton-Schulz with ``iterations`` steps, truncation);
      path ("newton_schulz" default | "svd"), iterations (10, the official count; Newton-Schulz steps),
      ns_tol (1e-3: a block whose Newton-Schulz residual ``||Q^H Q - I||_F`` exceeds it is redone by SVD),
      warm_start (True: each layer's first projection takes the exact path, so later Newton-Schulz calls start
      near the constraint set, where they converge quadratically),
      gain ("paper" default | "ratio" | number), gain_factor (1.0; sqrt(2) for a Conv-ReLU target; applied only to
      layers whose output goes into a ReLU, see :func:`relu_after`: every other layer gets factor 1),
      support ("truncate", the only mode a ``k x k`` Conv2d can hold; see the module docstring),
      support_iterations (1), finalize_iterations (200: exact project-then-truncate passes at the end of
      training, stopping once the deviation is below ``tol``; none under ``projection: official``),
      tol (1e-4: relative deviation counted as satisfied),
      record_every (1: measure :func:`operator_state` of every layer after every such epoch; 0: never),
      lanczos_steps (100) and dense_limit (4096): how the zero-padded operator is measured
      (:func:`zero_padded_extremes`),
      grids (dict of module name -> FFT grid, overriding what the layers record on their first forward),
      dtype ("float32" default | "float64": precision of the projection during training), seed.

    ``finalize`` applies the exact projection once more (not under ``official``) and records, per layer,
    ``param``, ``kind`` ("procrustes"), ``projection``, ``gain``, ``relu_after``, ``grid``, ``kernel``,
    ``support``, the achieved ``max_abs_deviation`` and ``max_rel_deviation`` of the circular operator's singular
    values from the gain, ``tolerance``, ``satisfied``, the final :func:`operator_state` (``circular_min``,
    ``circular_max``, ``zero_padded_min``, ``zero_padded_max``, all over the gain), ``alternate_residual`` and
    ``alternate_passes`` of the layer's last ``alternate`` application (None otherwise), and ``epochs``: the
    per-epoch history ``[{"epoch", circular_min, ..., zero_padded_max, alternate_residual}, ...]``.
    """

    name = "procrustes"
    PROJECTIONS = ("truncate", "alternate", "official")

    def __init__(
        self,
        every: int | None = None,
        probability: float | None = None,
        projection: str = "truncate",
        alternate_tol: float = 1e-4,
        alternate_iterations: int = 200,
        path: str = "newton_schulz",
        iterations: int = 10,
        ns_tol: float = 1e-3,
        warm_start: bool = True,
        gain: str | float = "paper",
        gain_factor: float = 1.0,
        support: str = "truncate",
        support_iterations: int = 1,
        finalize_iterations: int = 200,
        tol: float = 1e-4,
        record_every: int = 1,
        lanczos_steps: int = 100,
        dense_limit: int = 4096,
        grids: dict[str, int] | None = None,
        dtype: str = "float32",
        seed: int | None = None,
    ) -> None:
        self._check(every, probability, projection, path, support, dtype)
        if every is None and probability is None:
            every = 2
        procrustes_gain(2, 1, gain)  # validates the rule
        self.every, self.probability = every, probability
        self.projection = projection
        self.alternate_tol, self.alternate_iterations = (
            float(alternate_tol),
            max(1, int(alternate_iterations)),
        )
        self.path, self.iterations, self.warm_start = path, int(iterations), bool(warm_start)
        self.ns_tol = float(ns_tol)
        self.gain_rule, self.gain_factor = gain, float(gain_factor)
        self.support, self.support_iterations = support, max(1, int(support_iterations))
        self.finalize_iterations, self.tol = max(1, int(finalize_iterations)), float(tol)
        self.record_every, self.lanczos_steps = int(record_every), int(lanczos_steps)
        self.dense_limit = int(dense_limit)
        self.grids = dict(grids or {})
        self.dtype = getattr(torch, dtype)
        self.seed = seed
        self.generator = torch.Generator()
        self.warm: set[str] = set()
        self.projections = 0
        self.relu: dict[str, bool] | None = None
        self.residuals: dict[str, tuple[float, int]] = {}
        self.history: list[dict[str, Any]] = []

    @classmethod
    def _check(cls, every, probability, projection, path, support, dtype) -> None:  # noqa: ANN001
        if every is not None and probability is not None:
            raise ValueError("procrustes: give either 'every' or 'probability', not both")
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise ValueError(f"procrustes: probability must lie in [0, 1], got {probability}")
        if every is not None and every < 1:
            raise ValueError(f"procrustes: every must be >= 1, got {every}")
        if projection not in cls.PROJECTIONS:
            raise ValueError(f"procrustes: projection must be one of {cls.PROJECTIONS}, got {projection!r}")
        if path not in ("svd", "newton_schulz"):
            raise ValueError(f"procrustes: path must be 'svd' or 'newton_schulz', got {path!r}")
        if support != "truncate":
            raise ValueError(
                "procrustes: a Conv2d holds a k x k kernel, so the method supports support='truncate' only "
                "(the full-support projection is available as project_kernels(..., support='full'))"
            )
        if dtype not in ("float32", "float64"):
            raise ValueError(f"procrustes: dtype must be 'float32' or 'float64', got {dtype!r}")

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

    def relu_of(self, model: nn.Module, name: str) -> bool:
        """Whether layer ``name`` of ``model`` feeds a ReLU (:func:`relu_after`, computed once per model)."""
        if self.relu is None or name not in self.relu:
            self.relu = relu_after(model, [n for n, _ in self.layers(model)])
        return self.relu[name]

    def gain_of(self, module: nn.Conv2d, relu: bool = True) -> float:
        """The layer's gain; ``gain_factor`` only when ``relu`` (its output goes into a ReLU)."""
        factor = self.gain_factor if relu else 1.0
        return procrustes_gain(module.out_channels, module.in_channels, self.gain_rule, factor)

    def _gain(self, model: nn.Module, name: str, module: nn.Conv2d) -> float:
        return self.gain_of(module, self.relu_of(model, name))

    # -- hooks --------------------------------------------------------------------------------------------
    def attach(self, model: nn.Module) -> None:
        self.generator.manual_seed(self.seed if self.seed is not None else torch.initial_seed())
        if not self.layers(model):
            raise ValueError("procrustes: the model has no ProjectedConv2d layer to project")
        self.relu = relu_after(model, [n for n, _ in self.layers(model)])

    def due(self, step: int) -> bool:
        """Whether the projection runs after optimizer step ``step`` (counted from 0)."""
        if self.probability is not None:
            return bool(torch.rand((), generator=self.generator).item() < self.probability)
        return (step + 1) % self.every == 0

    def _ready(self, model: nn.Module) -> list[tuple[str, ProjectedConv2d]]:
        """The layers that can be projected now: 1x1 ones, and those whose grid is known."""
        return [
            (n, m) for n, m in self.layers(model) if m.kernel_size == (1, 1) or self.grid_of(n, m) is not None
        ]

    @torch.no_grad()
    def project(
        self, model: nn.Module, path: str | None = None, support_iterations: int | None = None
    ) -> None:
        """Apply the projection (``projection`` option) once to every projected layer whose grid is known."""
        todo = self._ready(model)
        if self.projection == "truncate":
            self._project_truncate(model, todo, path, support_iterations)
        else:
            for n, m in todo:
                self._project_one(model, n, m)
        self.warm.update(n for n, _ in todo)
        self.projections += 1

    def _project_one(self, model: nn.Module, name: str, m: ProjectedConv2d) -> None:
        """``alternate`` or ``official`` on one layer, in the method's dtype."""
        gain, grid = self._gain(model, name, m), self.grid_of(name, m)
        w = m.weight.detach().to(torch.promote_types(m.weight.dtype, self.dtype))
        if self.projection == "official":
            new = official_projection(w, grid if grid is not None else 1, gain, self.iterations)
        else:
            new, residual, passes = alternate_projection(
                w, grid, gain, self.alternate_tol, self.alternate_iterations
            )
            self.residuals[name] = (residual, passes)
        m.weight.copy_(new.to(m.weight.dtype))

    def _project_truncate(self, model, todo, path, support_iterations) -> None:  # noqa: ANN001
        """Project-then-truncate, batched over layers, ``support_iterations`` times."""
        paths = {n: path or ("svd" if self.warm_start and n not in self.warm else self.path) for n, _ in todo}
        for p in sorted(set(paths.values())):
            sel = [(n, m) for n, m in todo if paths[n] == p]
            for _ in range(support_iterations or self.support_iterations):
                new = project_kernels(
                    [m.weight for _, m in sel],
                    [self.grid_of(n, m) for n, m in sel],
                    [self._gain(model, n, m) for n, m in sel],
                    p,
                    self.iterations,
                    self.support,
                    self.dtype,
                    self.ns_tol,
                )
                for (_, m), w in zip(sel, new, strict=True):
                    m.weight.copy_(w)

    def after_step(self, model: nn.Module, step: int) -> None:
        if self.due(step):
            self.project(model)

    # -- the constraint's state -----------------------------------------------------------------------------
    def layer_state(self, model: nn.Module, name: str, m: ProjectedConv2d) -> dict[str, Any]:
        """:func:`operator_state` of one layer plus its last ``alternate`` residual (None if none)."""
        state: dict[str, Any] = operator_state(
            m.weight,
            self.grid_of(name, m),
            tuple(m.padding),  # type: ignore[arg-type]
            self._gain(model, name, m),
            self.lanczos_steps,
            self.dense_limit,
        )
        residual, passes = self.residuals.get(name, (None, None))
        state.update(alternate_residual=residual, alternate_passes=passes)
        return state

    def state_record(self, model: nn.Module, epoch: int) -> dict[str, Any]:
        """``{"kind": "procrustes_state", "epoch", "layers": {param: layer_state}}`` for every projected layer."""
        layers = {f"{n}.weight": self.layer_state(model, n, m) for n, m in self.layers(model)}
        return {"kind": "procrustes_state", "epoch": epoch, "layers": layers}

    def after_epoch(self, model: nn.Module, epoch: int) -> list[dict[str, Any]]:
        """Every ``record_every`` epochs: append :meth:`state_record` to ``history`` (kept in the state dict)
        and return it, for the trainer to log."""
        if self.record_every > 0 and epoch % self.record_every == 0:
            with torch.no_grad():
                self.history.append(self.state_record(model, epoch))
            return [self.history[-1]]
        return []

    def _finalize_layer(self, model: nn.Module, name: str, m: ProjectedConv2d) -> None:
        """The end-of-training projection: exact project-then-truncate passes (none under ``official``)."""
        grid, gain = self.grid_of(name, m), self._gain(model, name, m)
        if self.projection == "official":
            return
        w = m.weight.detach().double()
        passes = 1 if m.kernel_size == (1, 1) else self.finalize_iterations
        for i in range(passes):
            w = project_kernel(w, grid, gain, "svd", support=self.support)
            if i % 10 == 9 and deviation(w, grid, gain)[1] < self.tol * 0.1:
                break
        m.weight.copy_(w.to(m.weight.dtype))

    def finalize(self, model: nn.Module) -> list[dict[str, Any]]:
        records = []
        for name, m in self.layers(model):
            grid = self.grid_of(name, m)
            if m.kernel_size != (1, 1) and grid is None:
                raise ValueError(
                    f"procrustes: the FFT grid of {name} is unknown (no forward pass ran); "
                    "pass it in the 'grids' option"
                )
            with torch.no_grad():
                self._finalize_layer(model, name, m)
                state = self.layer_state(model, name, m)
            records.append(self._record(model, name, m, state))
        self.warm.update(n for n, _ in self.layers(model))
        return records

    def _record(
        self, model: nn.Module, name: str, m: ProjectedConv2d, state: dict[str, Any]
    ) -> dict[str, Any]:
        grid, gain = self.grid_of(name, m), self._gain(model, name, m)
        dev_abs, dev_rel = deviation(m.weight, grid, gain)
        param = f"{name}.weight"
        return {
            "param": param,
            "kind": "procrustes",
            "projection": self.projection,
            "gain": gain,
            "relu_after": self.relu_of(model, name),
            "grid": grid,
            "kernel": list(m.kernel_size),
            "support": self.support,
            "max_abs_deviation": dev_abs,
            "max_rel_deviation": dev_rel,
            "tolerance": self.tol,
            "satisfied": dev_rel <= self.tol,
            **state,
            "epochs": [
                {"epoch": h["epoch"], **h["layers"][param]} for h in self.history if param in h["layers"]
            ],
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "warm": sorted(self.warm),
            "projections": self.projections,
            "residuals": {k: list(v) for k, v in self.residuals.items()},
            "history": self.history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"])
        self.warm = set(state.get("warm", []))
        self.projections = int(state.get("projections", 0))
        self.residuals = {k: (float(v[0]), int(v[1])) for k, v in state.get("residuals", {}).items()}
        self.history = list(state.get("history", []))
