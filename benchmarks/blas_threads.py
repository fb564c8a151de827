"""python -m benchmarks.blas_threads [--repeats N]: do NumPy's matmuls give the same bits on one BLAS thread as on the
default number, and how much faster are they on two? For the matmul shapes of W2-W4 (both operand orders, and the
transposed views the engine passes), float32 and float64.

Why it matters: a compiled replay must equal the eager step bit for bit, and the eager step runs on the user's BLAS
threads; a replay that switched OpenBLAS to one thread for some of its matmuls (to run others on a Python worker
thread) would be exact only where the thread count does not change the result. Needs threadpoolctl (installed with
the dev extras' scikit-learn) to switch threads inside one process.
"""
import argparse
import time

import numpy as np

# (m, k, n) of W2's eight matmuls, W4's (batch-major and the engine's feature-major forms) and W3's per-sample ones
SHAPES = {
    "W2": [(128, 784, 256), (128, 256, 256), (128, 256, 10), (10, 128, 256), (128, 10, 256), (256, 128, 256),
           (256, 128, 784)],
    "W4": [(32, 128, 512), (32, 64, 512), (32, 512, 128), (512, 32, 128), (512, 32, 64), (512, 128, 32),
           (512, 64, 32), (128, 512, 32)],
    "W3": [(8, 9, 784), (16, 72, 196), (8, 784, 9), (16, 196, 72), (72, 16, 196), (32, 784, 10)],
}


def _operands(rng, m, k, n, dtype, ta, tb):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return (a.T if ta else a), (b.T if tb else b)


def _time(a, b, threads, limits, repeats):
    with limits(limits=threads, user_api="blas"):
        a @ b
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(10):
                a @ b
            best = min(best, (time.perf_counter() - t0) / 10)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_info, threadpool_limits

    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    default = max(i["num_threads"] for i in blas)
    print(f"BLAS: {', '.join(i['internal_api'] + ' ' + i['version'] for i in blas)}; default threads {default}")
    print("| workload | m x k x n | float32: same bits on 1 thread | float64: same bits | us, 1 thread | "
          f"us, {default} threads |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for wid, shapes in SHAPES.items():
        for m, k, n in shapes:
            same = {}
            for dtype in (np.float32, np.float64):
                ok = True
                for ta in (False, True):
                    for tb in (False, True):
                        a, b = _operands(rng, m, k, n, dtype, ta, tb)
                        with threadpool_limits(limits=1, user_api="blas"):
                            one = a @ b
                        ok = ok and np.array_equal(one, a @ b)
                same[dtype] = "yes" if ok else "**no**"
            a, b = _operands(rng, m, k, n, np.float32, False, False)
            t1, tn = (_time(a, b, t, threadpool_limits, args.repeats) for t in (1, default))
            print(f"| {wid} | {m} x {k} x {n} | {same[np.float32]} | {same[np.float64]} | {t1 * 1e6:.1f} | "
                  f"{tn * 1e6:.1f} |")


if __name__ == "__main__":
    main()
