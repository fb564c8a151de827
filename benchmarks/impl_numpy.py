"""Hand-written NumPy forward and backward of every workload: the practical speed limit for a NumPy engine.

Same arithmetic as the PyTorch and tinygrad_lite versions, with the derivatives written out by hand and no
graph. Layout choices a careful hand-writer would make are allowed (the CNN runs channels-last internally).
Each case has ``step()`` (one iteration) and ``check()`` -> (loss, gradient checksum) of the last step.
"""
import numpy as np

from .workloads import chain_constants


def _cross_entropy(z, y):
    """Mean cross-entropy of logits z (B, K) and its gradient with respect to z."""
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(z.shape[0])
    loss = (np.log(s[:, 0]) + m[:, 0] - z[rows, y]).mean()
    dz = e / s
    dz[rows, y] -= 1.0
    dz /= z.shape[0]
    return loss, dz


class Chain:
    """W1/W5: x through mul/add/tanh in turn, sum, backward."""

    def __init__(self, d, p):
        self.x0, self.ops = d["x0"], [chain_constants(i) for i in range(p["n_ops"])]

    def step(self):
        x, saved = self.x0.copy(), []
        for kind, c in self.ops:
            if kind == "mul":
                x = x * c
            elif kind == "add":
                x = x + c
            else:
                x = np.tanh(x)
                saved.append(x)
        loss = x.sum()
        g = np.ones_like(x)
        for kind, c in reversed(self.ops):
            if kind == "mul":
                g = g * c
            elif kind == "tanh":
                y = saved.pop()
                g = g * (1 - y * y)
        self.loss, self.grad = loss, g
        return loss

    def check(self):
        return float(self.loss), float(np.abs(self.grad).sum())


class MLP:
    """W2/W6: 784-W-W-10 ReLU MLP, cross-entropy, SGD."""

    def __init__(self, d, p):
        self.x, self.y, self.lr = d["x"], d["y"], d["lr"]
        self.w = [d[f"w{i}"].copy() for i in (1, 2, 3)]
        self.b = [d[f"b{i}"].copy() for i in (1, 2, 3)]

    def step(self):
        (w1, w2, w3), (b1, b2, b3), x = self.w, self.b, self.x
        h1 = x @ w1.T + b1
        a1 = np.maximum(h1, 0)
        h2 = a1 @ w2.T + b2
        a2 = np.maximum(h2, 0)
        z = a2 @ w3.T + b3
        loss, dz = _cross_entropy(z, self.y)
        dw3, db3 = dz.T @ a2, dz.sum(axis=0)
        dh2 = (dz @ w3) * (h2 > 0)
        dw2, db2 = dh2.T @ a1, dh2.sum(axis=0)
        dh1 = (dh2 @ w2) * (h1 > 0)
        dw1, db1 = dh1.T @ x, dh1.sum(axis=0)
        for p, g in zip(self.w + self.b, (dw1, dw2, dw3, db1, db2, db3)):
            p -= self.lr * g
        self.loss, self.grad = loss, dw1
        return loss

    def check(self):
        return float(self.loss), float(np.abs(self.grad).sum())


def _conv3x3_forward(x, wm, b):
    """x (N,H,W,C) channels-last, padding 1; wm (9C, O) in (kh, kw, C) order. Returns (out, cols)."""
    n, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = np.empty((n, h, w, 3, 3, c), dtype=x.dtype)
    for ki in range(3):  # im2col as 9 strided copies
        for kj in range(3):
            cols[:, :, :, ki, kj, :] = xp[:, ki:ki + h, kj:kj + w, :]
    cols = cols.reshape(n * h * w, 9 * c)
    out = cols @ wm
    out += b
    return out.reshape(n, h, w, -1), cols


def _conv3x3_backward(dout, cols, wm, x_shape, need_dx):
    n, h, w, c = x_shape
    dm = dout.reshape(n * h * w, -1)
    dwm, db = cols.T @ dm, dm.sum(axis=0)
    if not need_dx:
        return dwm, db, None
    dcols = (dm @ wm.T).reshape(n, h, w, 3, 3, c)
    dxp = np.zeros((n, h + 2, w + 2, c), dtype=dout.dtype)
    for ki in range(3):  # col2im as 9 strided slice-adds
        for kj in range(3):
            dxp[:, ki:ki + h, kj:kj + w, :] += dcols[:, :, :, ki, kj, :]
    return dwm, db, dxp[:, 1:-1, 1:-1, :]


_CORNERS = ((0, 0), (0, 1), (1, 0), (1, 1))


def _relu_pool_forward(hpre):
    """ReLU then 2x2 max-pool (stride 2) on channels-last input, as three maxima of strided views."""
    a = np.maximum(hpre, 0)
    q = [a[:, i::2, j::2, :] for i, j in _CORNERS]
    return np.maximum(np.maximum(q[0], q[1]), np.maximum(q[2], q[3])), a


def _relu_pool_backward(dpool, pooled, a, hpre):
    # PyTorch's rule: the gradient goes to the first maximum of each window (row-major). Where the maximum
    # is 0 the ReLU below kills it anyway, so those windows are masked out at once.
    dh = np.zeros_like(hpre)
    dpool = dpool * (pooled > 0)
    taken = np.zeros(pooled.shape, dtype=bool)
    for i, j in _CORNERS:
        hit = (a[:, i::2, j::2, :] == pooled) & ~taken
        taken |= hit
        dh[:, i::2, j::2, :] = dpool * hit
    return dh


class CNN:
    """W3: conv(1->8)-relu-pool-conv(8->16)-relu-pool-flatten-linear(784->10), CE, SGD."""

    def __init__(self, d, p):
        self.x = np.ascontiguousarray(d["x"].transpose(0, 2, 3, 1))  # NHWC, once
        self.y, self.lr = d["y"], d["lr"]
        # PyTorch layouts -> the channels-last layouts used here
        self.c1w = d["c1w"].transpose(2, 3, 1, 0).reshape(9, 8).copy()
        self.c2w = d["c2w"].transpose(2, 3, 1, 0).reshape(72, 16).copy()
        self.fw = d["fw"].reshape(10, 16, 7, 7).transpose(0, 2, 3, 1).reshape(10, 784).copy()
        self.c1b, self.c2b, self.fb = d["c1b"].copy(), d["c2b"].copy(), d["fb"].copy()

    def step(self):
        x = self.x
        h1, cols1 = _conv3x3_forward(x, self.c1w, self.c1b)
        p1, ar1 = _relu_pool_forward(h1)
        h2, cols2 = _conv3x3_forward(p1, self.c2w, self.c2b)
        p2, ar2 = _relu_pool_forward(h2)
        f = p2.reshape(x.shape[0], -1)
        z = f @ self.fw.T + self.fb
        loss, dz = _cross_entropy(z, self.y)
        dfw, dfb = dz.T @ f, dz.sum(axis=0)
        dp2 = (dz @ self.fw).reshape(p2.shape)
        dh2 = _relu_pool_backward(dp2, p2, ar2, h2)
        dc2w, dc2b, dp1 = _conv3x3_backward(dh2, cols2, self.c2w, p1.shape, True)
        dh1 = _relu_pool_backward(dp1, p1, ar1, h1)
        dc1w, dc1b, _ = _conv3x3_backward(dh1, cols1, self.c1w, x.shape, False)
        for prm, g in ((self.c1w, dc1w), (self.c1b, dc1b), (self.c2w, dc2w), (self.c2b, dc2b),
                       (self.fw, dfw), (self.fb, dfb)):
            prm -= self.lr * g
        self.loss, self.grad = loss, dc1w
        return loss

    def check(self):
        return float(self.loss), float(np.abs(self.grad).sum())


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


class LSTM:
    """W4: one-layer LSTM (PyTorch gate order i, f, g, o), loss = sum(h_T^2), forward + backward."""

    def __init__(self, d, p):
        self.x, self.w_ih, self.w_hh = d["x"], d["w_ih"], d["w_hh"]
        self.w_hh_t = np.ascontiguousarray(d["w_hh"].T)  # contiguous operand for the per-step matmul
        self.bias = d["b_ih"] + d["b_hh"]
        self.H = p["hidden"]

    def step(self):
        x, w_hh, H = self.x, self.w_hh, self.H
        T, B, I = x.shape
        x2 = x.reshape(T * B, I)
        xw = (x2 @ self.w_ih.T + self.bias).reshape(T, B, 4 * H)  # input projection of all steps at once
        hs = np.zeros((T + 1, B, H), np.float32)  # hs[t] is the state before step t
        c = np.zeros((B, H), np.float32)
        cs, acts = [c], []
        for t in range(T):
            gates = xw[t] + hs[t] @ self.w_hh_t
            s = _sigmoid(gates)  # i, f, o slices used; the g slice is recomputed with tanh
            i, f, o = s[:, :H], s[:, H:2 * H], s[:, 3 * H:]
            g = np.tanh(gates[:, 2 * H:3 * H])
            c = f * c + i * g
            tc = np.tanh(c)
            np.multiply(o, tc, out=hs[t + 1])
            cs.append(c), acts.append((i, f, g, o, tc))
        h = hs[T]
        loss = (h * h).sum()
        dh, dc = 2 * h, np.zeros_like(c)
        dgates = np.empty((T, B, 4 * H), np.float32)
        for t in reversed(range(T)):
            i, f, g, o, tc = acts[t]
            dc = dc + dh * o * (1 - tc * tc)
            dg = dgates[t]
            dg[:, :H] = dc * g * i * (1 - i)
            dg[:, H:2 * H] = dc * cs[t] * f * (1 - f)
            dg[:, 2 * H:3 * H] = dc * i * (1 - g * g)
            dg[:, 3 * H:] = dh * tc * o * (1 - o)
            dh = dg @ w_hh
            dc = dc * f
        dgm = dgates.reshape(T * B, 4 * H)
        dw_hh = dgm.T @ hs[:T].reshape(T * B, H)  # one large matmul instead of T small ones
        dw_ih, db = dgm.T @ x2, dgm.sum(axis=0)
        self.loss, self.grad, self.grads = loss, dw_ih, (dw_ih, dw_hh, db)
        return loss

    def check(self):
        return float(self.loss), float(np.abs(self.grad).sum())


def build(wid, data, params):
    cls = {"W1": Chain, "W5": Chain, "W2": MLP, "W6": MLP, "W3": CNN, "W4": LSTM}[wid]
    return cls(data, params)


def set_threads(n):
    """NumPy's BLAS threads are fixed by the environment variables the harness sets."""
