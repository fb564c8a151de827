"""What `tl.compile(module)` returns, as `torch.compile` does: `OptimizedModule`, a Module that holds the original
as its child `_orig_mod` and calls it through tl.compile. So `model = tl.compile(model)` keeps a training script
working unchanged: `model.parameters()` are the original's, `model.train()/eval()` and `model.training` are the
original's, attributes it does not have itself are looked up on it (`model.fc1`) and attributes assigned to it are
assigned to the original (`model.fc = nn.Linear(512, 10)` replaces the original's head, as in PyTorch), and
`state_dict()` keys carry PyTorch's `_orig_mod.` prefix (`model._orig_mod.state_dict()`, or `module.compile()`
which compiles in place, keeps the original keys)."""
from ..nn.module import Module


class OptimizedModule(Module):
    """A Module whose forward is `tl.compile` of the wrapped one (`_orig_mod`); `.stats` are the compiled call's."""

    def __init__(self, mod, compiled):
        super().__init__()
        self.__dict__["_modules"]["_orig_mod"] = mod
        self.__dict__["_compiled"] = compiled

    def _orig(self):
        mods = self.__dict__.get("_modules")
        return None if not mods else mods.get("_orig_mod")

    @property
    def training(self):  # the original's, as PyTorch's OptimizedModule (which mirrors it the same way)
        orig = self._orig()
        return self.__dict__.get("training", True) if orig is None else orig.training

    @training.setter
    def training(self, value):
        orig = self._orig()
        if orig is not None:
            orig.training = value

    def __setattr__(self, name, value):
        # as PyTorch's: an attribute of the wrapper's class (forward, training, ...) stays the wrapper's; any other
        # is the original's, which its forward reads (a new head, a setting)
        orig = self._orig()
        if orig is None or name == "_orig_mod" or hasattr(type(self), name):
            super().__setattr__(name, value)
        else:
            setattr(orig, name, value)

    def __delattr__(self, name):
        orig = self._orig()
        if orig is None or name == "_orig_mod" or hasattr(type(self), name):
            super().__delattr__(name)
        else:
            delattr(orig, name)

    def forward(self, *args, **kwargs):
        return self._compiled(*args, **kwargs)

    @property
    def stats(self):
        return self._compiled.stats

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            orig = self._orig()
            if orig is None:
                raise
            return getattr(orig, name)

    def _get_name(self):
        return "OptimizedModule"
