"""L-BFGS with PyTorch's arguments, closure protocol, state layout and numbers (`torch.optim.LBFGS`).

All parameters are treated as one flat vector. The vectors (direction, gradients, curvature pairs) are NumPy
arrays inside `step`; between steps they live in `state` as Tensors, as PyTorch keeps them, so `state_dict()`
has PyTorch's layout: one entry, for the first parameter, with `func_evals n_iter d t old_dirs old_stps ro
H_diag prev_flat_grad prev_loss al`.
"""
import copy

import numpy as np

from ..autograd import enable_grad, no_grad
from ..autograd.stale import keep_graph
from ..creation import tensor as _tensor
from ..tensor import Tensor
from .optimizer import Optimizer, state_array

_FLAT_VECTORS = ("d", "prev_flat_grad", "old_dirs", "old_stps")


def _max_abs(v):
    return np.abs(v).max() if v.size else 0.0


def _array(x):
    """A state value (Tensor, list of Tensors, number or None) as NumPy, for the arithmetic of one step."""
    if isinstance(x, Tensor):
        a = x.numpy()
        return a[()] if a.ndim == 0 else a
    if isinstance(x, list):
        return [_array(v) for v in x]
    return x


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), clipped to `bounds` (default: [x1, x2])."""
    lo, hi = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square < 0:  # no real minimiser: bisect the bounds
        return (lo + hi) / 2.0
    d2 = np.sqrt(d2_square)
    if x1 <= x2:
        min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(min_pos, lo), hi)


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """Line search along `d` from `x` for a step satisfying the strong Wolfe conditions (More-Thuente style:
    bracketing with extrapolation, then zoom by cubic interpolation). Returns (f, g, t, evaluations)."""
    d_norm = _max_abs(d)
    f_new, g_new = obj_func(x, t, d)
    evals = 1
    gtd_new = g_new.dot(d)
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    # bracketing: grow the step until an interval is known to contain an acceptable point
    while ls_iter < max_ls:
        if f_new > f + c1 * t * gtd or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f, bracket_g, bracket_gtd = [t_prev, t], [f_prev, f_new], [g_prev, g_new], \
                [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f, bracket_g, bracket_gtd = [t_prev, t], [f_prev, f_new], [g_prev, g_new], \
                [gtd_prev, gtd_new]
            break
        min_step, max_step = t + 0.01 * (t - t_prev), t * 10
        t_next = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = t, f_new, g_new, gtd_new
        t = t_next
        f_new, g_new = obj_func(x, t, d)
        evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1
    if ls_iter >= max_ls:  # out of iterations: keep the better of the start and the last trial
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    # zoom: shrink the bracket, keeping at `low` the best point that satisfies sufficient decrease
    insuf_progress = False
    low, high = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])
        b_min, b_max = min(bracket), max(bracket)
        eps = 0.1 * (b_max - b_min)
        if min(b_max - t, t - b_min) < eps:  # too close to an end: move away from it unless progress is fine
            if insuf_progress or t >= b_max or t <= b_min:
                t = b_max - eps if abs(t - b_max) < abs(t - b_min) else b_min + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj_func(x, t, d)
        evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1
        if f_new > f + c1 * t * gtd or f_new >= bracket_f[low]:
            bracket[high], bracket_f[high], bracket_g[high], bracket_gtd[high] = t, f_new, g_new, gtd_new
            low, high = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                bracket[high], bracket_f[high] = bracket[low], bracket_f[low]
                bracket_g[high], bracket_gtd[high] = bracket_g[low], bracket_gtd[low]
            bracket[low], bracket_f[low], bracket_g[low], bracket_gtd[low] = t, f_new, g_new, gtd_new
    return bracket_f[low], bracket_g[low], bracket[low], evals


class LBFGS(Optimizer):
    """L-BFGS (as `torch.optim.LBFGS`): `step(closure)` runs up to `max_iter` iterations, re-evaluating the model
    through `closure` (which zeroes the gradients, computes the loss, calls `backward()` and returns the loss).

    One parameter group only. `line_search_fn` is None (fixed step `lr`) or `'strong_wolfe'`. Returns the loss of
    the first closure call of the step. Parameters whose `.grad` is None count as having a zero gradient.
    """

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                 history_size=100, line_search_fn=None):
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                        tolerance_change=tolerance_change, history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups): got "
                             f"{len(self.param_groups)} groups; pass one list of parameters")

    def add_param_group(self, param_group):
        if getattr(self, "param_groups", None):
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups): it already has one")
        super().add_param_group(param_group)

    # -- the parameters as one flat vector ------------------------------------------------------------------
    def _params(self):
        return self.param_groups[0]["params"]

    def _dtype(self):
        return np.result_type(*[p.numpy().dtype for p in self._params()])

    def _numel(self):
        return sum(int(p.numpy().size) for p in self._params())

    def _gather_flat_grad(self):
        dtype = self._dtype()
        views = [np.zeros(p.numpy().size, dtype) if p.grad is None else p.grad.numpy().reshape(-1)
                 for p in self._params()]
        return np.concatenate(views).astype(dtype, copy=False) if views else np.zeros(0, dtype)

    def _add_grad(self, step_size, update):
        offset = 0
        for p in self._params():
            arr = p.numpy()
            chunk = update[offset:offset + arr.size].reshape(arr.shape).astype(arr.dtype, copy=False)
            p.add_(_tensor(chunk), alpha=step_size)
            offset += arr.size

    def _clone_param(self):
        return [p.numpy().copy() for p in self._params()]

    def _set_param(self, values):
        for p, v in zip(self._params(), values):
            p.copy_(_tensor(v))

    @staticmethod
    def _evaluate(closure):
        with enable_grad():
            return closure()

    def _directional_evaluate(self, closure, x, t, d):
        self._add_grad(t, d)
        loss = float(self._evaluate(closure))
        flat_grad = self._gather_flat_grad()
        self._set_param(x)
        return loss, flat_grad

    # -- the step -------------------------------------------------------------------------------------------
    def step(self, closure=None):
        """Run up to `max_iter` L-BFGS iterations; `closure()` must re-evaluate the model and return the loss."""
        if closure is None:
            raise TypeError("LBFGS.step requires a closure that reevaluates the model and returns the loss, e.g. "
                            "def closure(): optimizer.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); "
                            "return loss  -- then optimizer.step(closure)")
        if not callable(closure):
            raise TypeError(f"LBFGS.step: closure must be callable, got {type(closure).__name__}")
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        line_search_fn = self.param_groups[0]["line_search_fn"]
        if line_search_fn is not None and line_search_fn != "strong_wolfe":
            raise RuntimeError(f"LBFGS: only 'strong_wolfe' is supported as line_search_fn, got {line_search_fn!r}")
        with no_grad():
            return self._step(closure)

    def _step(self, closure):
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        line_search_fn, history_size = group["line_search_fn"], group["history_size"]

        state = self.state[self._params()[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = self._evaluate(closure)
        if isinstance(orig_loss, Tensor):
            keep_graph(orig_loss)  # returned after up to max_eval more backward calls, as PyTorch: not a stale graph
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        if _max_abs(flat_grad) <= tolerance_grad:  # already optimal
            return orig_loss

        d, t, H_diag = _array(state.get("d")), _array(state.get("t")), _array(state.get("H_diag"))
        prev_flat_grad, prev_loss = _array(state.get("prev_flat_grad")), state.get("prev_loss")
        # the curvature pairs, as arrays for the arithmetic and as the Tensors kept in the state
        dirs_t, stps_t = list(state.get("old_dirs") or []), list(state.get("old_stps") or [])
        old_dirs, old_stps, ro = _array(dirs_t), _array(stps_t), _array(list(state.get("ro") or []))

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1

            if state["n_iter"] == 1:  # steepest descent; the history starts empty
                d = -flat_grad
                dirs_t, stps_t, old_dirs, old_stps, ro = [], [], [], [], []
                H_diag = 1
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = y.dot(s)
                if ys > 1e-10:  # keep the pair only when the curvature condition holds
                    if len(old_dirs) == history_size:
                        for lst in (dirs_t, stps_t, old_dirs, old_stps, ro):
                            lst.pop(0)
                    dirs_t.append(_tensor(y))
                    stps_t.append(_tensor(s))
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / y.dot(y)  # scale of the initial inverse Hessian

                # two-loop recursion: d = -H @ flat_grad
                num_old = len(old_dirs)
                if "al" not in state:
                    state["al"] = [None] * history_size
                al = list(state["al"])
                al += [None] * (num_old - len(al))
                al_values = [None] * num_old
                q = -flat_grad
                for i in range(num_old - 1, -1, -1):
                    al_values[i] = old_stps[i].dot(q) * ro[i]
                    q += (-al_values[i]) * old_dirs[i]
                    al[i] = _tensor(np.asarray(al_values[i], dtype=q.dtype))
                state["al"] = al
                d = r = q * H_diag
                for i in range(num_old):
                    be_i = old_dirs[i].dot(r) * ro[i]
                    r += (al_values[i] - be_i) * old_stps[i]

            prev_flat_grad = flat_grad.copy()
            prev_loss = loss

            if state["n_iter"] == 1:
                with np.errstate(divide="ignore"):
                    t = min(1.0, 1.0 / np.abs(flat_grad).sum()) * lr
            else:
                t = lr

            gtd = flat_grad.dot(d)  # directional derivative
            if gtd > -tolerance_change:  # not a descent direction any more
                break

            ls_func_evals = 0
            if line_search_fn is not None:
                x_init = self._clone_param()

                def obj_func(x, step, direction):
                    return self._directional_evaluate(closure, x, step, direction)

                # the line search may use what is left of this step's evaluation budget (as PyTorch 2.x)
                loss, flat_grad, t, ls_func_evals = _strong_wolfe(obj_func, x_init, t, d, loss, flat_grad, gtd,
                                                                  max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = _max_abs(flat_grad) <= tolerance_grad
            else:
                self._add_grad(t, d)
                if n_iter != max_iter:  # the last iteration's loss is left to the next step's first call
                    loss = float(self._evaluate(closure))
                    flat_grad = self._gather_flat_grad()
                    opt_cond = _max_abs(flat_grad) <= tolerance_grad
                    ls_func_evals = 1

            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if _max_abs(d * t) <= tolerance_change:  # the step is too small
                break
            if abs(loss - prev_loss) < tolerance_change:  # the loss stopped changing
                break

        dtype = self._dtype()
        state["d"] = None if d is None else _tensor(d)
        state["t"] = None if t is None else float(t)
        state["old_dirs"] = dirs_t
        state["old_stps"] = stps_t
        state["ro"] = [_tensor(np.asarray(v, dtype=dtype)) for v in ro]
        state["H_diag"] = H_diag if H_diag is None or isinstance(H_diag, int) else \
            _tensor(np.asarray(H_diag, dtype=dtype))
        state["prev_flat_grad"] = None if prev_flat_grad is None else _tensor(prev_flat_grad)
        state["prev_loss"] = prev_loss
        return orig_loss

    # -- state dicts ----------------------------------------------------------------------------------------
    def _cast_state(self, p, index, name, value):
        """Copy one loaded state value: Tensors (ours, NumPy or torch's, also inside lists) in the params' dtype;
        the flat vectors must have one element per parameter element."""
        if isinstance(value, (list, tuple)):
            return [self._cast_state(p, index, name, v) for v in value]
        arr = state_array(value)
        if arr is None:
            return copy.deepcopy(value)
        dtype = self._dtype()
        if not (np.issubdtype(dtype, np.floating) and np.issubdtype(arr.dtype, np.floating)):
            dtype = arr.dtype
        if name in _FLAT_VECTORS and arr.shape != (self._numel(),):
            raise ValueError(f"loaded state dict: state[{index}][{name!r}] has shape {tuple(arr.shape)} but the "
                             f"parameters have {self._numel()} elements in all (expected shape ({self._numel()},))")
        return _tensor(np.array(arr, dtype=dtype, copy=True))
