"""hessian: second derivatives with tl.func (torch.func's transforms).

1. A Hessian-vector product H v of a small nonlinear function, forward over reverse:
   `tl.func.jvp(tl.func.grad(f), (x,), (v,))` (one forward-mode pass through the gradient computation), checked
   against central finite differences of the gradient, against the reverse-over-reverse product
   d/dx (grad f(x) . v), and with tl.gradgradcheck on the same function.
2. Newton's method, x <- x - H^-1 grad f, with `tl.func.hessian` (jacfwd of jacrev) and `tl.func.grad`: on the
   Rosenbrock function from the classic start (-1.2, 1), and on L2-regularised logistic regression. Both
   converge quadratically: a handful of iterations to a gradient norm near machine precision.

    python examples/hessian.py [--smoke]
"""
import numpy as np

import tinygrad_lite as tl
from tinygrad_lite import func
from tinygrad_lite.nn import functional as F

from _common import Timer, parse, parser

TOL = 1e-10


def f_nonlinear(x, a):
    """A smooth test function R^n -> R: sum(tanh(a x)^2) + 0.1 sum(x^4) + prod-like coupling."""
    return (a @ x).tanh().pow(2).sum() + 0.1 * x.pow(4).sum() + (x[:-1] * x[1:]).sin().sum()


def hvp(f, x, v):
    """H(x) v by forward over reverse: the tangent of the gradient in direction v."""
    _, hv = func.jvp(func.grad(f), (x,), (v,))
    return hv.numpy()


def hvp_reverse(f, x, v):
    """H(x) v with two reverse passes: the gradient is recorded (create_graph) and differentiated again."""
    x = x.detach().requires_grad_()
    g, = tl.grad(f(x), x, create_graph=True)
    hv, = tl.grad((g * v).sum(), x)
    return hv.numpy()


def check_hvp(seed, n):
    rng = np.random.default_rng(seed)
    a = tl.tensor(rng.standard_normal((n, n)))  # float64 throughout: finite differences need it
    x, v = tl.tensor(rng.standard_normal(n)), tl.tensor(rng.standard_normal(n))
    f = lambda t: f_nonlinear(t, a)  # noqa: E731
    exact = hvp(f, x, v)
    eps = 1e-5
    numeric = (func.grad(f)(x + eps * v).numpy() - func.grad(f)(x - eps * v).numpy()) / (2 * eps)
    err = float(np.abs(exact - numeric).max())
    print(f"Hessian-vector product (n={n}): max |Hv - finite differences| = {err:.1e} "
          f"(|Hv|_max = {np.abs(exact).max():.2f}); forward over reverse vs reverse over reverse: "
          f"{float(np.abs(exact - hvp_reverse(f, x, v)).max()):.1e}")
    ok = tl.gradgradcheck(f, (x.detach().requires_grad_(),))
    print(f"tl.gradgradcheck on the same function: {ok}")
    return err, ok


def newton(f, x0, name, max_iter=50):
    """Pure Newton iterations (no line search) until |grad| < TOL; prints one line per iteration."""
    x = tl.tensor(np.asarray(x0, dtype=np.float64))
    hessian, grad_and_value = func.hessian(f), func.grad_and_value(f)
    print(f"Newton's method on {name}:")
    for it in range(max_iter + 1):
        g, value = grad_and_value(x)
        gnorm = float(np.linalg.norm(g.numpy()))
        print(f"  iter {it:2d}  f = {value.item():.6e}  |grad| = {gnorm:.1e}")
        if gnorm < TOL:
            return it, gnorm, x.numpy()
        x = tl.tensor(x.numpy() - np.linalg.solve(hessian(x).numpy(), g.numpy()))
    return max_iter, gnorm, x.numpy()


def rosenbrock(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def logistic_problem(seed, n_samples, n_features, lam=1e-2):
    """L2-regularised logistic regression on seeded synthetic data; returns the loss as a function of w."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n_samples, n_features))
    w_true = rng.standard_normal(n_features)
    labels = (rng.random(n_samples) < 1 / (1 + np.exp(-features @ w_true))).astype(np.float64)
    xs, ys = tl.tensor(features), tl.tensor(labels)

    def loss(w):
        # the library's loss is smooth at z = 0, where w = 0 puts every sample: Newton needs its exact Hessian
        return F.binary_cross_entropy_with_logits(xs @ w, ys) + 0.5 * lam * (w * w).sum()
    return loss


def main(argv=None):
    p = parser(__doc__)
    args = parse(p, argv)
    n, samples, features = (4, 50, 3) if args.smoke else (8, 500, 10)

    with Timer() as t:
        err, ok = check_hvp(args.seed, n)
        it_r, g_r, x_r = newton(rosenbrock, [-1.2, 1.0], "the Rosenbrock function from (-1.2, 1)")
        print(f"  minimum at ({x_r[0]:.6f}, {x_r[1]:.6f}); the exact one is (1, 1)")
        it_l, g_l, _ = newton(logistic_problem(args.seed, samples, features), np.zeros(features),
                              f"logistic regression ({samples} samples, {features} features, L2 1e-2)")
    print(f"hessian: HVP max error {err:.1e} vs finite differences (gradgradcheck {ok}); Newton converged in "
          f"{it_r} iterations on Rosenbrock (|grad| {g_r:.1e}) and {it_l} on logistic regression "
          f"(|grad| {g_l:.1e}), {t.seconds:.2f} s")
    return err, it_r, g_r, it_l, g_l


if __name__ == "__main__":
    main()
