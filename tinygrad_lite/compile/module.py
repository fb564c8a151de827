"""What `tl.compile(module)` returns, as `torch.compile` does: `OptimizedModule`, a Module that holds the original
as its child `_orig_mod` and calls it through tl.compile. So `model = tl.compile(model)` keeps a training script
working unchanged: `model.parameters()` are the original's, `model.train()/eval()` reach it, attributes it does not
have itself are looked up on it (`model.fc1`), and `state_dict()` keys carry PyTorch's `_orig_mod.` prefix
(`model._orig_mod.state_dict()`, or `module.compile()` which compiles in place, keeps the original keys)."""
from ..nn.module import Module


class OptimizedModule(Module):
    """A Module whose forward is `tl.compile` of the wrapped one (`_orig_mod`); `.stats` are the compiled call's."""

    def __init__(self, mod, compiled):
        super().__init__()
        self._orig_mod = mod
        self.__dict__["_compiled"] = compiled

    def forward(self, *args, **kwargs):
        return self._compiled(*args, **kwargs)

    @property
    def stats(self):
        return self._compiled.stats

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            mods = self.__dict__.get("_modules")
            if not mods or "_orig_mod" not in mods:
                raise
            return getattr(mods["_orig_mod"], name)

    def _get_name(self):
        return "OptimizedModule"
