"""The C kernels under AddressSanitizer and UndefinedBehaviorSanitizer (run by
``tests/test_native_sanitizers.py`` in a subprocess with ``LD_PRELOAD`` of libasan).

    LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \\
        python -m tests._sanitize [--fuzz-cases N]

Both libraries are built with ``-fsanitize=address,undefined`` into a fresh cache and driven
through the library's own Python paths: the CSR kernels of exported layers on edge shapes
(empty rows, no non-zero, one column, 16-bit columns up to 65535, batches that do and do not
fill a vector, the thread pool) and on every damaged checkpoint of the fuzzer that
``load_exported`` accepts; the l1 coordinate-descent encoder (packed and unpacked active
sets, warm starts, duplicated atoms, capped iterations, lam 0 and huge) and the dictionary
update. Any sanitizer report aborts the process (non-zero exit, the report on stderr); each
result is also compared with a dense float64 reference. Prints one summary line.
"""

from __future__ import annotations

import argparse
import sys
import warnings

import torch

SANITIZE = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined"]
SANITIZE += ["-fno-sanitize-recover=undefined", "-pthread"]


def _sanitized_builds():
    from shrinkage import _native
    from shrinkage.codes import _cd
    from shrinkage.weights import _kernels

    _native.FLAG_SETS = (SANITIZE,)
    _kernels._FLAG_SETS = (SANITIZE,)
    _kernels._reset()
    _cd._LIB.reset()
    spmm, codes = _kernels.load(), _cd.load()
    if spmm is None or codes is None:
        raise SystemExit(f"sanitized builds failed: {_kernels._LIB.error} {_cd._LIB.error}")
    assert "-fsanitize=address,undefined" in spmm.flags
    return spmm


def spmm_cases(rng: torch.Generator) -> int:
    from shrinkage.weights import SparseLinear

    n = 0
    shapes = [(1, 1), (3, 1), (1, 7), (17, 33), (64, 5), (70, 70), (8, 200)]
    for out_f, in_f in shapes:
        for density in (0.0, 0.05, 0.5, 1.0):
            for dtype in (torch.float32, torch.float64):
                w = torch.randn(out_f, in_f, generator=rng, dtype=dtype)
                w = w * (torch.rand(out_f, in_f, generator=rng) < density)
                if out_f > 2:
                    w[1] = 0  # an empty row
                b = torch.randn(out_f, generator=rng, dtype=dtype)
                for kernel in ("c_csr_i32", "c_csr_u16"):
                    lin = SparseLinear.from_weight(w, b if density else None, kernel)
                    for batch in (1, 2, 15, 16, 17, 33):
                        for threads in (1, 3):
                            torch.set_num_threads(threads)
                            x = torch.randn(batch, in_f, generator=rng, dtype=dtype)
                            with torch.no_grad():
                                y = lin(x)
                                yt = lin(x.t().contiguous().t())  # the (in, batch) layout
                            ref = x.double() @ w.double().t() + (b.double() if density else 0)
                            for got in (y, yt):
                                torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-4)
                            n += 1
    # 16-bit columns up to 65535: the top of the range
    w = torch.zeros(3, 65536)
    w[0, 65535] = 2.0
    w[2, [0, 32767, 32768, 65534]] = 1.0
    lin = SparseLinear.from_weight(w, None, "c_csr_u16")
    x = torch.randn(4, 65536, generator=rng)
    with torch.no_grad():
        torch.testing.assert_close(lin(x), x @ w.t(), rtol=1e-5, atol=1e-5)
    torch.set_num_threads(1)
    return n + 1


def fuzzed_exports(cases: int) -> tuple[int, int]:
    """The fuzzer's damaged exported checkpoints, in this process: those load_exported
    accepts run their forward passes on the sanitized kernels."""
    from tests import _fuzz

    fixtures = _fuzz.exported_fixtures()
    ran = accepted = 0
    for _name, data, _how, fixture in _fuzz.make_cases("exported", fixtures, cases, seed=7):
        outcome, _ = _fuzz.run_exported(data, fixture[1], fixture[3], fixture[4])
        if outcome in _fuzz.FAILURES:
            raise AssertionError(f"fuzz case {_name}: {outcome}")
        ran += 1
        accepted += outcome == "harmless"
    return ran, accepted


def codes_cases(rng: torch.Generator) -> int:
    from shrinkage.codes import encode, learn_dictionary

    n = 0
    for dtype in (torch.float32, torch.float64):
        for rows, k, f in ((0, 4, 3), (1, 1, 1), (7, 40, 16), (20, 300, 32), (5, 64, 8)):
            D = torch.randn(k, f, generator=rng, dtype=dtype)
            if k > 3:
                D[3] = D[2]  # a duplicated atom: the exact solve must leave one out
            D = D / D.norm(dim=1, keepdim=True)
            X = torch.randn(rows, f, generator=rng, dtype=dtype)
            for lam in (0.0, 0.05, 0.5, 1e6):
                for max_iter in (1, 3, 1000):
                    for threads in (1, 2):
                        torch.set_num_threads(threads)
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            Z, info = encode(
                                X, D, "l1", lam, solver="cd", max_iter=max_iter, return_info=True
                            )
                            Zw = encode(X, D, "l1", lam, solver="cd", init=Z, max_iter=max_iter)
                        assert Z.shape == (rows, k) and bool(torch.isfinite(Z).all())
                        assert bool(torch.isfinite(Zw).all())
                        n += 1
    torch.set_num_threads(1)
    for dtype in (torch.float32, torch.float64):
        X = torch.randn(300, 12, generator=rng, dtype=dtype)
        st = learn_dictionary(X, 20, "l1", 0.2, batch_size=64, n_epochs=2, learn_tol=0)
        assert bool(torch.isfinite(st.D).all())
        n += 1
    return n


def self_check(spmm) -> None:
    """A column index one past the end, handed straight to the C kernel (bypassing the
    checks): AddressSanitizer must stop the process here, proving the build is instrumented."""
    crow = torch.tensor([0, 1], dtype=torch.int32)
    col = torch.tensor([4], dtype=torch.int32)  # in_features is 4: out of bounds
    val = torch.ones(1)
    xt = torch.ones(4, 1)
    yt = torch.empty(1, 1)
    fn = spmm.fn(torch.float32, 32)
    fn(1, 1, crow.data_ptr(), col.data_ptr(), val.data_ptr(), None, xt.data_ptr(), yt.data_ptr(), 1)
    print("self-check: the out-of-bounds read went unnoticed")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests._sanitize")
    p.add_argument("--fuzz-cases", type=int, default=120)
    p.add_argument("--self-check", action="store_true", help="read out of bounds on purpose")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    spmm = _sanitized_builds()
    if args.self_check:
        self_check(spmm)
        return 0
    rng = torch.Generator().manual_seed(0)
    k = spmm_cases(rng)
    ran, accepted = fuzzed_exports(args.fuzz_cases)
    c = codes_cases(rng)
    print(
        f"sanitized ({' '.join(spmm.flags)}): {k} CSR kernel cases, {ran} fuzzed checkpoints "
        f"({accepted} accepted and run), {c} encoder / dictionary-update cases: no report"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
