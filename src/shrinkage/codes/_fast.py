"""Working-set FISTA for l1 sparse coding: iterate only on a few atoms per row.

At a few percent density most of a FISTA iteration on the full (n_samples, n_atoms) codes
is spent on coefficients that stay exactly zero. Like coordinate-descent and LARS solvers,
this solver keeps for each row a small working set W (its current support plus the atoms
that most violate the optimality condition ``|b_j - (z G)_j| <= lam``, ``G = D D^T``,
``b = x D^T``) and runs FISTA on the subproblem restricted to W, batched over rows as
``(n, K)`` codes against ``(n, K, K)`` gathered Gram blocks. After each subproblem a full
gradient (only the codes' non-zeros are touched) checks the optimality condition on every
atom; a row is done when no atom outside its support violates it by more than a small slack
and its support is stationary (``c_j = lam sign z_j`` to the same slack). A row whose support
solve is refused (a singular block: more atoms than features) keeps FISTA's codes and, with
no atom left to add, gets a ten times finer subproblem tolerance each round.
The step of each subproblem is ``1 / L_W`` with ``L_W`` the largest eigenvalue of its Gram
block (power iteration, capped by the Gershgorin bound; never smaller than the global
``1 / L``), and momentum restarts when the step goes against it (O'Donoghue & Candes 2015,
gradient restart). After FISTA, each row is solved exactly on its support and signs,
``z_S = G_SS^{-1} (b_S - lam sign(z_S))`` (batched Cholesky), kept where the signs agree:
then the codes are the exact lasso solution, not a tol-accurate one. Rows are grouped by
working-set size so that a few rows needing many atoms do not pad every row's block.

The minimiser is that of the full problem: the restriction changes only which coordinates
are iterated, and the KKT check guarantees that no excluded atom would enter the support.
"""

from __future__ import annotations

import torch

from ..thresholds.cores import soft

_KKT_SLACK = 1e-3  # an excluded atom must beat lam by this fraction to re-open the row
_MIN_WS = 16  # smallest working set per row
_POWER_ITERS = 20
_INNER_TOL = 3e-4  # finer is slower and changes nothing once the polish succeeds
_CHECK_EVERY = 3
_POLISH_ROUNDS = 4


def _sub_lipschitz(Gs):
    """Largest eigenvalue of each (K, K) Gram block: power iteration from a fixed random
    start (all-ones can be orthogonal to the top eigenvector of anti-correlated atoms),
    capped by the Gershgorin bound, which is a guaranteed upper bound."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    v = torch.rand(1, Gs.shape[1], 1, generator=gen, dtype=torch.float64) - 0.5
    v = v.to(Gs).transpose(1, 2).expand(Gs.shape[0], -1, -1)
    lam = torch.ones(Gs.shape[0], dtype=Gs.dtype, device=Gs.device)
    for _ in range(_POWER_ITERS):
        w = torch.bmm(v, Gs)  # row form: Gs is symmetric, and this is the faster layout
        lam = w.norm(dim=(1, 2)).clamp_min(1e-30)
        v = w / lam[:, None, None]
    return torch.minimum(lam * 1.05, Gs.abs().sum(2).amax(1))


def _times_gram(Z, G):
    """Z @ G from Z's non-zeros only (one embedding_bag): nnz * k work instead of n * k * k."""
    rows, cols = Z.nonzero(as_tuple=True)
    if rows.numel() > 0.25 * Z.numel():
        return Z @ G
    counts = torch.bincount(rows, minlength=Z.shape[0])
    offsets = torch.cumsum(counts, 0) - counts
    return torch.nn.functional.embedding_bag(
        cols, G, offsets, mode="sum", per_sample_weights=Z[rows, cols]
    )


def _retire(rows, idx, Z, k, out, iters) -> None:
    """The working-set ``rows`` that finished at iteration ``k``: their codes and iteration
    counts written to their places (``idx``) in ``out`` and ``iters``."""
    out[idx[rows]] = Z[rows]
    iters[idx[rows]] = k


def _worth_shrinking(n_finished, n, share) -> bool:
    """Whether to drop the finished rows from a working set of ``n`` (it copies every array):
    when all are finished, or at least 8 and ``1/share`` of them."""
    return n_finished == n or n_finished >= max(8, n // share)


def _fista_sub(Gs, bs, zs, lam, step, tol, budget):
    """FISTA with gradient restart on each row's subproblem min 1/2 z Gs z - bs z + lam|z|_1.

    ``step`` is (n, 1), ``tol`` (n,) each row's relative change to stop at, ``budget``
    (n,) the iterations each row may still use. Returns the codes and the iterations used
    per row.
    """
    max_iter = int(budget.max())
    n = zs.shape[0]
    out = zs.clone()
    iters = torch.full((n,), max_iter, dtype=torch.long, device=zs.device)
    idx = torch.arange(n, device=zs.device)
    z, y = zs, zs
    t = torch.ones(n, 1, dtype=zs.dtype, device=zs.device)
    thr = step * lam
    # Gradient step y - step (y Gs - bs) as one batched multiply-add: y H + step bs.
    H = torch.eye(Gs.shape[1], dtype=Gs.dtype, device=Gs.device) - step[:, :, None] * Gs
    sb = (step * bs).unsqueeze(1)
    finished = torch.zeros(n, dtype=torch.bool, device=zs.device)
    first_out = int(budget.min())
    for k in range(1, max_iter + 1):
        zn = soft(torch.baddbmm(sb, y.unsqueeze(1), H).squeeze(1), thr)
        d = zn - y
        dz = zn - z
        # Gradient restart: momentum that points against the prox-gradient step is dropped.
        restart = (d * dz).sum(1, keepdim=True) < 0
        tn = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t))
        beta = torch.where(restart, torch.zeros_like(t), (t - 1.0) / tn)
        t = torch.where(restart, torch.ones_like(t), tn)
        y = zn + beta * dz
        z = zn
        # Testing convergence costs as much as half an iteration: test every few.
        if k % _CHECK_EVERY and k < first_out and k < max_iter:
            continue
        done = (d.norm(dim=1) <= tol * zn.norm(dim=1).clamp_min(1e-12)) | (budget <= k)
        fresh = done & ~finished
        if bool(fresh.any()):
            _retire(fresh, idx, z, k, out, iters)
            finished |= done
            # Dropping finished rows copies the (n, K, K) blocks: only once it pays off.
            if _worth_shrinking(int(finished.sum()), len(idx), share=4):
                keep = ~finished
                if not bool(keep.any()):
                    return out, iters
                idx, H, sb, z, y, t, thr, tol = (a[keep] for a in (idx, H, sb, z, y, t, thr, tol))
                finished, budget = finished[keep], budget[keep]
                first_out = int(budget.min())
    out[idx[~finished]] = z[~finished]
    return out, iters


def _sub_energy(Gs, bs, z, lam):
    """1/2 z Gs z - bs z + lam |z|_1 per row: the subproblem's energy (up to 1/2 ||x||^2)."""
    return (
        0.5 * (torch.bmm(z.unsqueeze(1), Gs).squeeze(1) * z).sum(1)
        - (bs * z).sum(1)
        + (lam * z.abs().sum(1))
    )


def _polish(Gs, bs, zs, lam):
    """Exact solve on each row's support and signs: z_S = G_SS^{-1} (b_S - lam sign(z_S)).

    Kept only where the signs come out unchanged and the subproblem's energy does not rise
    (then z is the exact minimiser of the subproblem once the excluded atoms pass the KKT
    check); elsewhere FISTA's codes stay. A support whose Gram block is singular (more
    atoms than features) is left to FISTA: shrinking it on a failed factorisation once
    emptied the support and returned zero codes.
    """
    Kp = int((zs != 0).sum(1).max())
    if Kp == 0:
        return zs
    # Support first, then solve on the leading Kp x Kp block (cost Kp^3, not K^3).
    order = torch.sort((zs == 0).to(torch.int8), dim=1, stable=True).indices[:, :Kp]
    ar = torch.arange(zs.shape[0], device=zs.device)[:, None]
    Gs = Gs[ar[:, :, None], order[:, :, None], order[:, None, :]]
    zfull, zs, bs = zs, zs.gather(1, order), bs.gather(1, order)
    sgn = zs.sign()
    mask = sgn != 0
    out = zs
    pending = mask.any(1)
    e_fista = _sub_energy(Gs, bs, zs, lam)
    for _ in range(_POLISH_ROUNDS):
        mm = mask[:, :, None] & mask[:, None, :]
        M = torch.where(mm, Gs, torch.diag_embed((~mask).to(Gs.dtype)))
        r = torch.where(mask, bs - lam * sgn, torch.zeros_like(bs))
        L, info = torch.linalg.cholesky_ex(M)
        zp = torch.cholesky_solve(r.unsqueeze(-1), L).squeeze(-1)
        solved = (info == 0) & torch.isfinite(zp).all(1)
        zp = torch.where(solved[:, None], zp, torch.zeros_like(zp))
        agree = (zp * sgn > 0) | ~mask
        better = _sub_energy(Gs, bs, zp, lam) <= e_fista
        ok = pending & solved & agree.all(1) & better
        out = torch.where(ok[:, None], zp, out)
        # An atom whose sign flips leaves the support (the KKT check re-admits it if needed);
        # a failed factorisation or a worse energy ends the row's polish.
        pending = pending & ~ok & solved & better
        mask = mask & agree
        if not bool(pending.any()):
            break
    return zfull.scatter(1, order, out)


def _round(G, B, Z, rows, score, K, lam, step, tol, max_iter, iters):
    """One working-set round for ``rows``: FISTA on their top-K atoms (to each row's
    relative change ``tol[rows]``), then the exact polish."""
    W = torch.topk(score, K, dim=1, sorted=False).indices
    Gs = G[W[:, :, None], W[:, None, :]]
    bs = B[rows[:, None], W]
    zs = Z[rows].gather(1, W)
    Ls = _sub_lipschitz(Gs)
    st = torch.maximum(1.0 / Ls, torch.full_like(Ls, step))[:, None]
    zs, it = _fista_sub(Gs, bs, zs, lam, st, tol[rows], max_iter - iters[rows])
    iters[rows] += it
    return _polish(Gs, bs, zs, lam), W


def solve_l1_working_set(X, D, G, lam, step, tol, max_iter, Z0=None, max_outer=50):
    """l1 codes of the rows of X by working-set FISTA; returns codes, iterations, converged.

    ``G = D D^T``; ``step`` is the global step ``1 / L`` (a lower bound for every
    subproblem's); ``max_iter`` bounds the FISTA iterations summed over outer rounds.
    """
    n, k = X.shape[0], D.shape[0]
    B = X @ D.T
    Z = torch.zeros(n, k, dtype=X.dtype, device=X.device) if Z0 is None else Z0.clone()
    iters = torch.zeros(n, dtype=torch.long, device=X.device)
    conv = torch.zeros(n, dtype=torch.bool, device=X.device)
    if n == 0 or k == 0:
        conv[:] = True
        return Z, iters, conv
    rows = torch.arange(n, device=X.device)  # rows still open
    # Looser subproblem solves mislead the support search (more rounds, not less time).
    inner = torch.full((n,), min(tol, _INNER_TOL), dtype=X.dtype, device=X.device)
    eps = torch.finfo(X.dtype).eps
    limit = lam * (1.0 + max(min(_KKT_SLACK, tol), 1e3 * eps))
    for _ in range(max_outer):
        Zr = Z[rows]
        C = B[rows] - _times_gram(Zr, G)  # minus the gradient
        nz = Zr != 0
        viol = (C.abs() > limit) & ~nz
        nviol = viol.sum(1)
        # The support must be stationary too (c_j = lam sign z_j): a row whose exact solve
        # was refused (a singular support: more atoms than features) holds FISTA's codes,
        # which can stop far from it (9x the optimum's energy, reported converged, before)
        off = torch.where(nz, (C - lam * Zr.sign()).abs(), torch.zeros_like(C)).amax(1)
        unstable = off > (limit - lam) + 1e3 * eps * B[rows].abs().amax(1)
        open_ = (nviol > 0) | unstable | (iters[rows] == 0) & nz.any(1)
        # no atom to add, only FISTA's codes to refine: its next solve goes further
        refine = rows[unstable & (nviol == 0)]
        inner[refine] = (inner[refine] * 0.1).clamp_min(10 * eps)
        conv[rows[~open_]] = True
        spent = iters[rows] >= max_iter
        open_ &= ~spent
        if not bool(open_.any()):
            break
        rows, Zr, C, nz, nviol = rows[open_], Zr[open_], C[open_], nz[open_], nviol[open_]
        nsupp = nz.sum(1)
        # Grow each row's set by at most its support size (at least _MIN_WS): adding every
        # violator at once from zero codes would bring in hundreds of atoms.
        want = nsupp + torch.minimum(nviol, torch.clamp(nsupp, min=_MIN_WS))
        score = torch.where(nz, torch.full_like(C, float("inf")), C.abs())
        # Rows padded to the largest set in their group: groups of similar sizes keep the
        # (K, K) blocks of most rows small when a few rows need many atoms.
        want = want.clamp(min=_MIN_WS, max=k)
        wmax = int(want.max())
        lo = 0
        while lo < wmax:
            hi = 2 * lo if lo else 2 * _MIN_WS
            grp = (want > lo) & (want <= hi)
            lo = hi
            if bool(grp.any()):
                g_rows = rows[grp]
                K = int(want[grp].max())
                zs, W = _round(G, B, Z, g_rows, score[grp], K, lam, step, inner, max_iter, iters)
                Z[g_rows] = torch.zeros_like(Zr[grp]).scatter_(1, W, zs)
    return Z, iters, conv
