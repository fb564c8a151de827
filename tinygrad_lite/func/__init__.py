"""tl.func: function transforms with torch.func's names and semantics. They compose: jacfwd(jacrev(f)),
grad(grad(f)), jvp of grad (forward over reverse), vmap(grad(f)) for per-sample gradients."""
from .transforms import grad, grad_and_value, vjp, jvp, jacrev, jacfwd, hessian
from .functional_call import functional_call
from .vmap import vmap

__all__ = ["grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "vmap", "functional_call"]
