"""`tl.utils.data`, as `torch.utils.data`: the public names of `tinygrad_lite.data` (the same objects, so
`tl.utils.data.DataLoader is tl.data.DataLoader`)."""
from ..data import *  # noqa: F401,F403
from ..data import __all__  # noqa: F401
