/* The per-row lasso solver and the dictionary update, written once for one precision:
 * lasso_cd.c includes this file twice, with REAL = float, SFX(name) = name##_f32,
 * EPS = FLT_EPSILON, SMALLEST = FLT_MIN, then with double, _f64, DBL_EPSILON and DBL_MIN. */
/* ---- REAL ------------------------------------------------------------------------- */
typedef struct {
    REAL *c, *c2, *ga, *ca, *za, *ia, *key, *val;
    int32_t *act, *cand, *S, *pos;
    uint8_t *inact, *flag;
    double *M, *r, *sg, *diag, *col;
    int64_t packed; /* leading atoms of act[] whose G_AA entries are in ga */
    int32_t *fS;    /* the atoms of M's factor rows, in order (fm of them) */
    int64_t fm, ld; /* rows of M's factor still valid; M's row stride */
} SFX(ws);

/* soft(u, t) = u - clip(u, -t, t): min / max instructions, no unpredictable branch */
static inline REAL SFX(soft)(REAL u, REAL t) {
    REAL v = u < t ? u : t;
    v = v > -t ? v : -t;
    return u - v;
}

static inline REAL SFX(abs)(REAL u) { return u < 0 ? -u : u; }

static inline void SFX(subs)(REAL *restrict c, REAL a, const REAL *restrict g, int64_t k) {
    for (int64_t i = 0; i < k; ++i) c[i] -= a * g[i];
}

/* out = b - sum_i val[i] G[idx[i]]; four atoms per pass, so out is loaded and stored a
 * quarter as often */
static void SFX(combo)(const REAL *G, int64_t k, const REAL *b, const int32_t *idx,
                      const REAL *val, int64_t m, REAL *restrict out) {
    if (m == 0) {
        memcpy(out, b, (size_t)k * sizeof(REAL));
        return;
    }
    for (int64_t a = 0; a < m; a += 4) {
        const REAL *restrict src = a == 0 ? b : out;
        const REAL *restrict g0 = G + (int64_t)idx[a] * k;
        const REAL v0 = val[a];
        const REAL *restrict g1 = a + 1 < m ? G + (int64_t)idx[a + 1] * k : g0;
        const REAL v1 = a + 1 < m ? val[a + 1] : 0;
        const REAL *restrict g2 = a + 2 < m ? G + (int64_t)idx[a + 2] * k : g0;
        const REAL v2 = a + 2 < m ? val[a + 2] : 0;
        const REAL *restrict g3 = a + 3 < m ? G + (int64_t)idx[a + 3] * k : g0;
        const REAL v3 = a + 3 < m ? val[a + 3] : 0;
        for (int64_t i = 0; i < k; ++i)
            out[i] = src[i] - ((v0 * g0[i] + v1 * g1[i]) + (v2 * g2[i] + v3 * g3[i]));
    }
}

/* c = b - z G from the non-zeros of z among act[0..s) */
static void SFX(corr)(const REAL *G, int64_t k, const REAL *b, const REAL *z,
                     const int32_t *act, int64_t s, SFX(ws) *w) {
    int64_t m = 0;
    for (int64_t a = 0; a < s; ++a)
        if (z[act[a]] != 0) {
            w->cand[m] = act[a];
            w->val[m] = z[act[a]];
            ++m;
        }
    SFX(combo)(G, k, b, w->cand, w->val, m, w->c);
}

/* The atoms with mark[j] == 0 and |c_j| > lim into cand[] (|c_j| into key[]); returns
 * how many. Branch-free flags first (vectorised), then only the 8-byte words holding one. */
static int64_t SFX(scan)(const REAL *restrict c, const uint8_t *restrict mark, int64_t k,
                        REAL lim, SFX(ws) *w) {
    uint8_t *restrict flag = w->flag;
    for (int64_t j = 0; j < k; ++j)
        flag[j] = (uint8_t)(((c[j] > lim) | (c[j] < -lim)) & !mark[j]);
    int64_t nv = 0;
    for (int64_t j0 = 0; j0 < k; j0 += 8) {
        uint64_t f;
        memcpy(&f, flag + j0, 8); /* flag[k..k+8) is kept zero */
        while (f) {
            const int64_t j = j0 + (__builtin_ctzll(f) >> 3);
            w->cand[nv] = (int32_t)j;
            w->key[nv] = SFX(abs)(c[j]);
            ++nv;
            f &= f - 1;
        }
    }
    return nv;
}

/* Move the m largest key[] (with their idx[]) to the front: quickselect. */
static void SFX(top)(REAL *key, int32_t *idx, int64_t n, int64_t m) {
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        const REAL piv = key[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (key[i] > piv) ++i;
            while (key[j] < piv) --j;
            if (i <= j) {
                const REAL tk = key[i];
                key[i] = key[j];
                key[j] = tk;
                const int32_t ti = idx[i];
                idx[i] = idx[j];
                idx[j] = ti;
                ++i;
                --j;
            }
        }
        if (m - 1 <= j) hi = j;
        else if (m - 1 >= i) lo = i;
        else break;
    }
}

/* ga rows of act[from..s), leading dimension PACK_MAX. G is symmetric: the new atoms'
 * entries against the old ones come from the old atoms' rows, which the last
 * c = b - z G has just brought into cache; only the new x new block is read cold. */
static void SFX(pack)(const REAL *G, int64_t k, const int32_t *act, int64_t from, int64_t s,
                     REAL *ga) {
    /* the cold block first in flight, then the cached one meanwhile */
    for (int64_t a = from; a < s; ++a) {
        const REAL *row = G + (int64_t)act[a] * k;
        for (int64_t e = from; e < s; ++e) __builtin_prefetch(row + act[e]);
    }
    for (int64_t e = 0; e < from; ++e) {
        const REAL *row = G + (int64_t)act[e] * k;
        REAL *re = ga + e * PACK_MAX;
        for (int64_t a = from; a < s; ++a) re[a] = row[act[a]];
    }
    for (int64_t a = from; a < s; ++a) {
        const REAL *row = G + (int64_t)act[a] * k;
        REAL *ra = ga + a * PACK_MAX;
        for (int64_t e = 0; e < from; ++e) ra[e] = ga[e * PACK_MAX + a];
        for (int64_t e = from; e < s; ++e) ra[e] = row[act[e]];
    }
}

/* Drop the atoms of act[] whose code is zero, with their rows and columns of ga. */
static int64_t SFX(prune)(const REAL *z, int32_t *act, int64_t s, uint8_t *inact, SFX(ws) *w) {
    int64_t s2 = 0;
    const int pk = w->packed == s;
    for (int64_t a = 0; a < s; ++a) {
        if (z[act[a]] != 0) {
            w->pos[s2] = (int32_t)a;
            if (pk) w->ca[s2] = w->ca[a];
            act[s2++] = act[a];
        } else {
            inact[act[a]] = 0;
        }
    }
    if (pk && s2 < s) {
        for (int64_t a = 0; a < s2; ++a) {
            const REAL *src = w->ga + (int64_t)w->pos[a] * PACK_MAX;
            REAL *dst = w->ga + a * PACK_MAX;
            for (int64_t e = 0; e < s2; ++e) dst[e] = src[w->pos[e]];
        }
    }
    w->packed = pk ? s2 : 0;
    return s2;
}

/* CD sweeps over act[0..s) until the largest change is <= ptol max|z| or the budget is
 * spent; returns the sweeps done. Up to PACK_MAX atoms: on the packed G_AA with c kept on
 * the set only (*c_ok = 0: c is stale outside); above: on G's rows with c kept whole. */
static int64_t SFX(active)(const REAL *G, const REAL *idiag, int64_t k, REAL *z, REAL *c,
                          const int32_t *act, int64_t s, REAL lam, double ptol,
                          int64_t budget, SFX(ws) *w, int *c_ok) {
    int64_t sweeps = 0;
    REAL maxd, zmax;
    if (s <= PACK_MAX) {
        if (w->packed > s) w->packed = 0;
        SFX(pack)(G, k, act, w->packed, s, w->ga);
        w->packed = s;
        const int64_t s8 = (s + 7) & ~(int64_t)7; /* whole vectors; the padding is zero */
        REAL *ga = w->ga, *ca = w->ca, *za = w->za, *ia = w->ia;
        for (int64_t a = 0; a < s; ++a) {
            ca[a] = c[act[a]];
            za[a] = z[act[a]];
            ia[a] = idiag[act[a]];
            for (int64_t e = s; e < s8; ++e) ga[a * PACK_MAX + e] = 0;
        }
        for (int64_t a = s; a < s8; ++a) ca[a] = 0;
        do {
            maxd = 0;
            zmax = 0;
            for (int64_t a = 0; a < s; ++a) {
                const REAL zn = SFX(soft)(za[a] + ca[a] * ia[a], lam * ia[a]);
                const REAL d = zn - za[a];
                if (d != 0) {
                    SFX(subs)(ca, d, ga + a * PACK_MAX, s8);
                    za[a] = zn;
                }
                if (SFX(abs)(d) > maxd) maxd = SFX(abs)(d);
                if (SFX(abs)(zn) > zmax) zmax = SFX(abs)(zn);
            }
            ++sweeps;
        } while (maxd > ptol * zmax && sweeps < budget);
        for (int64_t a = 0; a < s; ++a) z[act[a]] = za[a];
        *c_ok = 0;
    } else {
        w->packed = 0;
        do {
            maxd = 0;
            zmax = 0;
            for (int64_t a = 0; a < s; ++a) {
                const int64_t j = act[a];
                const REAL zn = SFX(soft)(z[j] + c[j] * idiag[j], lam * idiag[j]);
                const REAL d = zn - z[j];
                if (d != 0) {
                    SFX(subs)(c, d, G + j * k, k);
                    z[j] = zn;
                }
                if (SFX(abs)(d) > maxd) maxd = SFX(abs)(d);
                if (SFX(abs)(zn) > zmax) zmax = SFX(abs)(zn);
            }
            ++sweeps;
        } while (maxd > ptol * zmax && sweeps < budget);
    }
    return sweeps;
}

/* Exact codes on the support and signs of z: z_S = G_SS^-1 (b_S - lam sign(z_S)), solved
 * again without the atoms whose sign flips. Returns 1 when the signs agree and no atom
 * outside S violates |c_j| <= lam (1 + slack): z (zero outside S) is then the lasso
 * minimiser and c = b - z G. Returns 2 when an outside atom violates it but the exact
 * solve has the lower energy: z and c are replaced all the same (a better start for CD).
 * Returns 0 when z is left as it was. act[0..s) holds z's support; when it is packed,
 * ca[] holds c on it. */
static int SFX(polish)(const REAL *G, int64_t k, const REAL *b, REAL *z, const int32_t *act,
                      int64_t s, uint8_t *inact, double lam, double slack, SFX(ws) *w) {
    if (s > POLISH_MAX) return 0;
    int64_t m = s;
    const int pk = w->packed == s;
    /* The order of the atoms in the factor: first the rows of the last factor that are all
     * still in the support (kept as they are, chol_rows does not redo them), then the other
     * atoms, the largest codes first: the atoms likeliest to flip sign (the small ones)
     * come last, and a factor redone without them keeps every row before them. */
    /* scratch until the scan below: atom -> its index in act, -1 once placed */
    int32_t *where = w->cand;
    for (int64_t a = 0; a < s; ++a) where[act[a]] = (int32_t)a;
    int64_t kept = 0;
    while (kept < w->fm && kept < s && inact[w->fS[kept]] && z[w->fS[kept]] != 0) {
        const int32_t atom = w->fS[kept];
        w->S[kept] = atom;
        w->pos[kept] = where[atom];
        where[atom] = -1;
        ++kept;
    }
    double *order = w->col;
    int64_t n_rest = 0;
    for (int64_t a = 0; a < s; ++a) {
        if (where[act[a]] < 0) continue;
        const double za = (double)z[act[a]];
        order[2 * n_rest] = -(za < 0 ? -za : za);
        order[2 * n_rest + 1] = (double)a;
        ++n_rest;
    }
    qsort(order, (size_t)n_rest, 2 * sizeof(double), by_key);
    for (int64_t i = 0; i < n_rest; ++i) {
        const int64_t a = (int64_t)order[2 * i + 1];
        w->S[kept + i] = act[a];
        w->pos[kept + i] = (int32_t)a;
    }
    for (int64_t i = 0; i < s; ++i) w->sg[i] = z[w->S[i]] > 0 ? 1.0 : -1.0;
    int ok = 0;
    const int64_t ld = w->ld;
    for (int round = 0; round < POLISH_ROUNDS && !ok; ++round) {
        int64_t p = 0; /* the factor's rows still valid: the same atoms in the same order */
        while (p < m && p < w->fm && w->fS[p] == w->S[p]) ++p;
        for (int64_t i = p; i < m; ++i) {
            double *Mi = w->M + i * ld;
            if (pk) {
                const REAL *gi = w->ga + (int64_t)w->pos[i] * PACK_MAX;
                for (int64_t j = 0; j <= i; ++j) Mi[j] = (double)gi[w->pos[j]];
            } else {
                const REAL *gi = G + (int64_t)w->S[i] * k;
                for (int64_t j = 0; j <= i; ++j) Mi[j] = (double)gi[w->S[j]];
            }
            w->diag[i] = Mi[i];
        }
        for (int64_t i = 0; i < m; ++i) w->r[i] = (double)b[w->S[i]] - lam * w->sg[i];
        chol_rows(w->M, ld, p, m, w->diag, 1000 * EPS);
        memcpy(w->fS, w->S, (size_t)m * sizeof(int32_t));
        w->fm = m;
        /* a left-out atom gets x = 0 and leaves S like an atom whose sign flipped */
        chol_subst(w->M, ld, m, w->diag, w->r);
        int64_t m2 = 0;
        for (int64_t i = 0; i < m; ++i)
            if (w->r[i] * w->sg[i] > 0) {
                w->S[m2] = w->S[i];
                w->pos[m2] = w->pos[i];
                w->sg[m2] = w->sg[i];
                w->r[m2] = w->r[i];
                ++m2;
            }
        ok = m2 == m;
        m = m2;
    }
    if (!ok) return 0;
    for (int64_t i = 0; i < m; ++i) w->val[i] = (REAL)w->r[i];
    SFX(combo)(G, k, b, w->S, w->val, m, w->c2);
    for (int64_t a = 0; a < s; ++a) inact[act[a]] = 0;
    for (int64_t i = 0; i < m; ++i) inact[w->S[i]] = 1;
    const int kkt = SFX(scan)(w->c2, inact, k, (REAL)(lam * (1.0 + slack)), w) == 0;
    for (int64_t a = 0; a < s; ++a) inact[act[a]] = 1;
    if (!kkt) {
        /* energies, -1/2 (b + c) z + lam |z|_1 with c = b - z G on each support */
        double e_new = 0, e_old = 0;
        for (int64_t i = 0; i < m; ++i)
            e_new += -0.5 * ((double)b[w->S[i]] + (double)w->c2[w->S[i]]) * w->r[i] +
                     lam * fabs(w->r[i]);
        for (int64_t a = 0; a < s; ++a) {
            const double za = (double)z[act[a]];
            const double ca = pk ? (double)w->ca[a] : (double)w->c[act[a]];
            e_old += -0.5 * ((double)b[act[a]] + ca) * za + lam * fabs(za);
        }
        /* lower by more than rounding: a "decrease" at rounding level (an active-set step
         * whose new atoms the factor drops as dependent gives back the same codes, reached
         * by another sum) would be taken as progress again and again */
        double scale = 0;
        for (int64_t a = 0; a < s; ++a) scale += fabs(lam * (double)z[act[a]]);
        if (!(e_new < e_old - 64 * EPS * (fabs(e_old) + scale))) return 0;
    }
    for (int64_t a = 0; a < s; ++a) z[act[a]] = 0;
    for (int64_t i = 0; i < m; ++i) z[w->S[i]] = w->val[i];
    memcpy(w->c, w->c2, (size_t)k * sizeof(REAL));
    return kkt ? 1 : 2;
}

/* CD's codes may stop at tol: the support holds at most p non-zeros (then the refused
 * exact solve was a matter of signs or conditioning, and CD at tol is the answer, as
 * measured), or it is stationary, |c_j - lam sign z_j| <= sqrt(tol) lam (and rounding)
 * for every non-zero code. More non-zeros than features make G_SS singular: no exact solve
 * can take the row, and CD at tol alone stopped up to 7 % above the minimum's energy. */
static int SFX(may_stop)(const REAL *c, const REAL *z, const REAL *b, const int32_t *act,
                        int64_t s, int64_t p, double lam, double tol) {
    int64_t nnz = 0;
    for (int64_t a = 0; a < s; ++a) nnz += z[act[a]] != 0;
    if (nnz <= p) return 1;
    const double room = lam * sqrt(tol);
    for (int64_t a = 0; a < s; ++a) {
        const int64_t j = act[a];
        if (z[j] == 0) continue;
        const double g = (double)c[j] - (z[j] > 0 ? lam : -lam);
        if (fabs(g) > room + 64 * EPS * (fabs((double)b[j]) + lam)) return 0;
    }
    return 1;
}

/* One row; returns ROW_* flags, the iterations (scans + sweeps) in *iters and, if energy is
 * not NULL, the row's energy given xx = ||x||^2. */
static int SFX(row)(const REAL *G, const REAL *idiag, int64_t k, int64_t p, const REAL *b,
                   REAL *z, double lam_d, double tol, double slack, int64_t max_iter, int warm,
                   double xx, SFX(ws) *w, int64_t *iters, double *energy) {
    const REAL lam = (REAL)lam_d;
    /* |c_j| <= lam within the slack is optimal: rounding must not re-open a solved row */
    const REAL lim = (REAL)(lam_d * (1.0 + slack));
    int32_t *act = w->act;
    uint8_t *inact = w->inact;
    int64_t s = 0, it = 0;
    if (warm) {
        for (int64_t j = 0; j < k; ++j) {
            inact[j] = z[j] != 0;
            if (inact[j]) act[s++] = (int32_t)j;
        }
    } else {
        memset(z, 0, (size_t)k * sizeof(REAL)); /* fresh memory: never read before */
        memset(inact, 0, (size_t)k);
    }
    w->packed = 0;
    /* a factor is reused within a row only: the codes must not depend on which rows a
     * thread did before (the same result for every thread count) */
    w->fm = 0;
    SFX(corr)(G, k, b, z, act, s, w);
    /* a refused exact solve costs more the larger the dictionary (its factor and check grow
     * with the support, which grows with the atoms): with more atoms, CD gets closer first
     * (measured with benchmarks/codes_speed.py: 1024 random atoms, dense codes, 1.6x faster at
     * a quarter of the tolerance; 256 atoms, slower below 1e-2) */
    const double ptol0 = k > 256 ? PTOL0 * 256.0 / (double)k : PTOL0;
    double ptol = tol > ptol0 ? tol : ptol0;
    /* refused: the last exact solve left z as it was (-1: none tried yet) */
    int flags = 0, refused = s == 0 ? 0 : -1, c_ok = 1;
    /* after an exact solve that lowered the energy but left violators outside, the next
     * solve takes them in directly, entering with the sign of their correlation, without
     * CD sweeps in between (an active-set step, as in feature-sign search, Lee et al.
     * 2007); a refused solve goes back to CD */
    int newton = 0;
    while (it < max_iter) {
        if (!c_ok) SFX(corr)(G, k, b, z, act, s, w);
        c_ok = 1;
        const int64_t nv = SFX(scan)(w->c, inact, k, lim, w);
        ++it;
        if (nv == 0 && s == 0) {
            flags = ROW_CONVERGED | ROW_EXACT;
            break;
        }
        if (it >= max_iter) break;
        int64_t left = 0; /* violators not taken into the active set this round */
        if (nv == 0) {
            if (refused == 1) {
                /* no atom is missing, yet the exact solve was refused: CD to a finer
                 * tolerance; from tol on, CD's own codes are the answer (a support of more
                 * non-zeros than features once it is stationary, see may_stop) */
                if (ptol <= tol) {
                    if (SFX(may_stop)(w->c, z, b, act, s, p, lam_d, tol)) {
                        flags = ROW_CONVERGED;
                        break;
                    }
                    if (ptol <= 16 * EPS) break; /* CD can go no finer: not converged */
                    ptol *= 0.1;
                } else {
                    ptol = ptol * 0.1 > tol ? ptol * 0.1 : tol;
                }
            }
        } else {
            /* grow by the worst violators, as many as the support holds (at least
             * MIN_ADD): all of them at once would bring in hundreds of atoms from zero */
            int64_t m = s > MIN_ADD ? s : MIN_ADD;
            /* and no further than the packed path holds while the support may still fit
             * in it: sweeps there cost O(s) per update, on G's rows O(n_atoms) (1024
             * random atoms, about 170 non-zeros: doubling went past 256 in most rows) */
            if (s < PACK_MAX && s + m > PACK_MAX) m = PACK_MAX - s;
            if (m < nv) SFX(top)(w->key, w->cand, nv, m);
            else m = nv;
            left = nv - m;
            for (int64_t e = 0; e < m; ++e) {
                const int32_t j = w->cand[e];
                inact[j] = 1;
                act[s++] = j;
                /* the smallest code of the sign that lowers the energy: a sign for the
                 * solve, nothing for the energy */
                if (newton) z[j] = w->c[j] > 0 ? SMALLEST : -SMALLEST;
            }
        }
        const int stepped = newton && nv > 0; /* no CD sweeps this time */
        if (stepped) {
            w->packed = 0;
        } else {
            it += SFX(active)(G, idiag, k, z, w->c, act, s, lam, ptol, max_iter - it, w, &c_ok);
            s = SFX(prune)(z, act, s, inact, w);
        }
        newton = 0;
        /* with violators left out, the exact solve would fail its check: scan first */
        if (s == 0 || left > 0) continue;
        const int p = SFX(polish)(G, k, b, z, act, s, inact, lam_d, slack, w);
        newton = p == 2;
        if (p == 1) {
            flags = ROW_CONVERGED | ROW_EXACT;
            c_ok = 1;
            break;
        }
        if (p == 2) {
            s = SFX(prune)(z, act, s, inact, w);
            c_ok = 1;
        }
        /* a refused solve after an active-set step says nothing of CD's codes: CD runs
         * before anything is concluded from it */
        refused = p == 0 ? (stepped ? -1 : 1) : 0;
    }
    *iters = it;
    if (energy) {
        /* 1/2 ||x - z D||^2 + lam |z|_1 = 1/2 ||x||^2 - 1/2 (b + c) z + lam |z|_1 */
        if (!c_ok) SFX(corr)(G, k, b, z, act, s, w);
        double e = 0.5 * xx;
        for (int64_t a = 0; a < s; ++a) {
            const int64_t j = act[a];
            const double zj = (double)z[j];
            if (zj != 0) e += -0.5 * ((double)b[j] + (double)w->c[j]) * zj + lam_d * fabs(zj);
        }
        *energy = e;
    }
    return flags;
}

static void SFX(chunk)(const void *ctx, int64_t ch) {
    cd_job_t *J = (cd_job_t *)ctx;
    const int64_t k = J->k, k8 = (k + 7) & ~(int64_t)7;
    const int64_t pm = k < POLISH_MAX ? k : POLISH_MAX;
    const int64_t r0 = ch * J->rows_per_chunk;
    const int64_t r1 = r0 + J->rows_per_chunk < J->n ? r0 + J->rows_per_chunk : J->n;
    const size_t n_double = (size_t)(pm * pm + 5 * pm);
    const size_t n_real = (size_t)(4 * k8 + PACK_MAX * PACK_MAX + 3 * (PACK_MAX + 8));
    const size_t n_int = (size_t)(3 * k8 + 2 * pm);
    char *mem = (char *)scratch(n_double * sizeof(double) + n_real * sizeof(REAL) +
                                n_int * sizeof(int32_t) + (size_t)(2 * k8 + 8));
    if (mem == NULL) {
        atomic_store(&J->failed, 1);
        return;
    }
    SFX(ws) w;
    double *dp = (double *)mem;
    w.M = dp, dp += pm * pm;
    w.r = dp, dp += pm;
    w.sg = dp, dp += pm;
    w.diag = dp, dp += pm;
    w.col = dp, dp += 2 * pm;
    REAL *tp = (REAL *)dp;
    w.ga = tp, tp += PACK_MAX * PACK_MAX;
    w.c = tp, tp += k8;
    w.c2 = tp, tp += k8;
    w.key = tp, tp += k8;
    w.val = tp, tp += k8;
    w.ca = tp, tp += PACK_MAX + 8;
    w.za = tp, tp += PACK_MAX + 8;
    w.ia = tp, tp += PACK_MAX + 8;
    int32_t *ip = (int32_t *)tp;
    w.act = ip, ip += k8;
    w.cand = ip, ip += k8;
    w.pos = ip, ip += k8;
    w.S = ip, ip += pm;
    w.fS = ip, ip += pm;
    w.ld = pm;
    w.inact = (uint8_t *)ip;
    w.flag = w.inact + k8;
    memset(w.flag + k, 0, (size_t)(k8 + 8 - k));
    const REAL *G = (const REAL *)J->G, *B = (const REAL *)J->B, *id = (const REAL *)J->idiag;
    REAL *Z = (REAL *)J->Z;
    for (int64_t i = r0; i < r1; ++i)
        J->flags[i] = (uint8_t)SFX(row)(G, id, k, J->p, B + i * k, Z + i * k, J->lam, J->tol,
                                       J->slack, J->max_iter, J->warm, J->xx ? J->xx[i] : 0.0,
                                       &w, J->iters + i, J->energy ? J->energy + i : NULL);
}

/* Codes of the n rows of B = X D^T into Z (n x k, row-major), G = D D^T, idiag = 1 / diag(G),
 * p the features of X (D is k x p).
 * warm: Z holds the starting codes (else it is overwritten unread). Per row: iterations,
 * ROW_* flags and, when xx (||x||^2 per row) and energy are not NULL, the energy. Returns
 * 0, or -1 when scratch memory could not be had. */
int SFX(shrinkage_lasso_cd)(int64_t n, int64_t k, int64_t p, const REAL *G, const REAL *B,
                           const REAL *idiag, REAL *Z, double lam, double tol, double slack,
                           int64_t max_iter, int warm, int64_t *iters, uint8_t *flags,
                           const double *xx, double *energy, int n_threads) {
    cd_job_t J;
    J.n = n;
    J.k = k;
    J.p = p;
    J.max_iter = max_iter;
    J.G = G;
    J.B = B;
    J.idiag = idiag;
    J.Z = Z;
    J.lam = lam;
    J.tol = tol;
    J.slack = slack;
    J.warm = warm;
    J.xx = energy ? xx : NULL;
    J.energy = xx ? energy : NULL;
    J.iters = iters;
    J.flags = flags;
    atomic_store(&J.failed, 0);
    if (n <= 0) return 0;
    if (n_threads < 1) n_threads = 1;
    /* a few chunks per thread: rows differ in cost */
    int64_t nc = n_threads == 1 ? 1 : 8 * (int64_t)n_threads;
    if (nc > n) nc = n;
    J.rows_per_chunk = (n + nc - 1) / nc;
    run_chunks(SFX(chunk), &J, (n + J.rows_per_chunk - 1) / J.rows_per_chunk, n_threads);
    return atomic_load(&J.failed) ? -1 : 0;
}

/* The non-zeros of a[0..n) into idx (their positions) and val; returns how many. */
static int64_t SFX(nonzeros)(const REAL *a, int64_t n, int32_t *idx, REAL *val) {
    int64_t m = 0;
    for (int64_t l = 0; l < n; ++l)
        if (a[l] != 0) {
            idx[m] = (int32_t)l;
            val[m] = a[l];
            ++m;
        }
    return m;
}

/* One atom's block-coordinate step, u = B_j - A_j D on entry (u is overwritten):
 * d_j <- d_j + u / A_jj, then d_j / ||d_j|| (left as is when 0); move (when not NULL) gets
 * the new d_j minus the old. */
static void SFX(atom_step)(REAL *restrict dj, REAL *restrict u, int64_t p, double ajj,
                           REAL *restrict move) {
    const REAL inv = (REAL)(1.0 / ajj);
    double nrm = 0;
    for (int64_t i = 0; i < p; ++i) {
        u[i] = dj[i] + u[i] * inv;
        nrm += (double)u[i] * (double)u[i];
    }
    nrm = sqrt(nrm);
    const REAL s = nrm > 0 ? (REAL)(1.0 / nrm) : (REAL)1;
    for (int64_t i = 0; i < p; ++i) {
        const REAL v = nrm > 0 ? u[i] * s : u[i];
        if (move) move[i] = v - dj[i];
        dj[i] = v;
    }
}

/* Dictionary update of online dictionary learning (Mairal et al. 2009, algorithm 2): one
 * pass over the atoms of D (k x p), each the exact minimiser of tr(D^T A D)/2 - tr(D^T B)
 * with the others fixed, then renormalised:
 *     d_j <- d_j + (B_j - A_j D) / A_jj,   d_j <- d_j / ||d_j||   (when A_jj > 1e-10).
 * Sequential in j (each update sees the atoms before it). Returns -1 without memory. */
int SFX(shrinkage_bcd)(int64_t k, int64_t p, const REAL *A, const REAL *B, REAL *D) {
    REAL *u = (REAL *)malloc((size_t)(p > 0 ? p : 1) * sizeof(REAL));
    int32_t *idx = (int32_t *)malloc((size_t)(k > 0 ? k : 1) * sizeof(int32_t));
    REAL *val = (REAL *)malloc((size_t)(k > 0 ? k : 1) * sizeof(REAL));
    if (u == NULL || idx == NULL || val == NULL) {
        free(u);
        free(idx);
        free(val);
        return -1;
    }
    for (int64_t j = 0; j < k; ++j) {
        const REAL *Aj = A + j * k;
        const double ajj = (double)Aj[j];
        if (!(ajj > 1e-10)) continue;
        /* A is Z^T Z: atoms that never co-occur with j have A_jl = 0 and cost nothing */
        const int64_t m = SFX(nonzeros)(Aj, k, idx, val);
        SFX(combo)(D, p, B + j * p, idx, val, m, u);
        SFX(atom_step)(D + j * p, u, p, ajj, NULL);
    }
    free(u);
    free(idx);
    free(val);
    return 0;
}

/* One chunk of shrinkage_code_stats: rows [n c / N, n (c + 1) / N) of R and atoms
 * [k c / N, k (c + 1) / N) of AZ and BZ (the rows of AZ and BZ a chunk writes are its own). */
static void SFX(stats_chunk)(const void *ctx, int64_t c) {
    const stats_job_t *J = (const stats_job_t *)ctx;
    const int64_t n = J->n, k = J->k, p = J->p, N = J->n_chunks;
    const REAL *vals = (const REAL *)J->vals, *X = (const REAL *)J->X;
    for (int64_t i = n * c / N; i < n * (c + 1) / N; ++i) {
        const int64_t a0 = J->rowptr[i];
        SFX(combo)((const REAL *)J->D, p, X + i * p, J->cols + a0, vals + a0,
                   J->rowptr[i + 1] - a0, (REAL *)J->R + i * p);
    }
    const int64_t j_lo = k * c / N, j_hi = k * (c + 1) / N;
    REAL *AZ = (REAL *)J->AZ, *BZ = (REAL *)J->BZ;
    memset(AZ + j_lo * k, 0, (size_t)((j_hi - j_lo) * k) * sizeof(REAL));
    memset(BZ + j_lo * p, 0, (size_t)((j_hi - j_lo) * p) * sizeof(REAL));
    for (int64_t i = 0; i < n; ++i) {
        const int64_t a0 = J->rowptr[i], a1 = J->rowptr[i + 1];
        const REAL *restrict xi = X + i * p;
        for (int64_t t = a0; t < a1; ++t) {
            const int64_t j = J->cols[t];
            if (j < j_lo || j >= j_hi) continue;
            REAL *restrict bj = BZ + j * p;
            REAL *restrict aj = AZ + j * k;
            const REAL z = vals[t];
            for (int64_t q = 0; q < p; ++q) bj[q] += z * xi[q];
            for (int64_t u = a0; u < a1; ++u) aj[J->cols[u]] += z * vals[u];
        }
    }
}

/* The statistics of a mini-batch of codes Z (n x k, mostly zeros) for the dictionary
 * update, read from Z's non-zeros only: R = X - Z D (n x p), AZ = Z^T Z (k x k) and
 * BZ = Z^T X (k x p), each overwritten whole. Three dense products cost 3 n k p
 * multiply-adds; these cost about n a (2 p + a) for a non-zeros per row. Chunks of rows
 * (for R) and of atoms (for AZ, BZ) go to the pool's threads. Returns 1 without writing
 * anything when over a quarter of Z is non-zero (dense products are then as cheap), -1
 * without memory, 0 otherwise. */
int SFX(shrinkage_code_stats)(int64_t n, int64_t k, int64_t p, const REAL *Z, const REAL *X,
                              const REAL *D, REAL *R, REAL *AZ, REAL *BZ, int n_threads) {
    int64_t nnz = 0;
    for (int64_t i = 0; i < n * k; ++i) nnz += Z[i] != 0;
    if (4 * nnz > n * k) return 1;
    int64_t *rowptr = (int64_t *)malloc((size_t)(n + 1) * sizeof(int64_t));
    int32_t *cols = (int32_t *)malloc((size_t)(nnz > 0 ? nnz : 1) * sizeof(int32_t));
    REAL *vals = (REAL *)malloc((size_t)(nnz > 0 ? nnz : 1) * sizeof(REAL));
    if (rowptr == NULL || cols == NULL || vals == NULL) {
        free(rowptr);
        free(cols);
        free(vals);
        return -1;
    }
    int64_t a = 0;
    for (int64_t i = 0; i < n; ++i) {
        rowptr[i] = a;
        const REAL *zi = Z + i * k;
        for (int64_t j = 0; j < k; ++j)
            if (zi[j] != 0) {
                cols[a] = (int32_t)j;
                vals[a] = zi[j];
                ++a;
            }
    }
    rowptr[n] = a;
    stats_job_t J = {n, k, p, 1, rowptr, cols, vals, X, D, R, AZ, BZ};
    if (n_threads <= 1 || n < 2 || k < 2) {
        SFX(stats_chunk)(&J, 0);
    } else {
        J.n_chunks = n_threads;
        run_chunks(SFX(stats_chunk), &J, J.n_chunks, n_threads);
    }
    free(rowptr);
    free(cols);
    free(vals);
    return 0;
}

/* The block-coordinate sweep of shrinkage_bcd for atoms j0 .. j0 + b of D (k x p), with
 * C (b x p) = B_J - A_J D computed by the caller (one BLAS product for the block, from D
 * as it was at the block's start): atom by atom, u = C_t minus what the block's earlier
 * atoms moved since, sum_{s < t} A_{j, j0 + s} delta_s, then
 * d_j <- d_j + u / A_jj, d_j <- d_j / ||d_j|| (when A_jj > 1e-10), and delta_t = the move
 * of d_j (delta: b x p scratch). The same sweep as shrinkage_bcd, the product with the
 * atoms before the block read from C instead of D row by row. */
int SFX(shrinkage_bcd_block)(int64_t k, int64_t p, int64_t j0, int64_t b, const REAL *A,
                             const REAL *C, REAL *D, REAL *delta) {
    REAL *u = (REAL *)malloc((size_t)(p > 0 ? p : 1) * sizeof(REAL));
    /* zeroed: combo reads only the m entries written, which gcc cannot see */
    int32_t *idx = (int32_t *)calloc((size_t)(b > 0 ? b : 1), sizeof(int32_t));
    REAL *val = (REAL *)calloc((size_t)(b > 0 ? b : 1), sizeof(REAL));
    if (u == NULL || idx == NULL || val == NULL) {
        free(u);
        free(idx);
        free(val);
        return -1;
    }
    for (int64_t t = 0; t < b; ++t) {
        const int64_t j = j0 + t;
        const REAL *Aj = A + j * k;
        REAL *dt = delta + t * p;
        const double ajj = (double)Aj[j];
        if (!(ajj > 1e-10)) {
            memset(dt, 0, (size_t)p * sizeof(REAL));
            continue;
        }
        const int64_t m = SFX(nonzeros)(Aj + j0, t, idx, val);
        SFX(combo)(delta, p, C + t * p, idx, val, m, u);
        SFX(atom_step)(D + j * p, u, p, ajj, dt);
    }
    free(u);
    free(idx);
    free(val);
    return 0;
}
