"""tl.viz: draw the gradient tape with graphviz — module clusters, gradient heatmaps, highlighted entries.

`tl.viz.draw(loss)` returns a graphviz.Digraph; `tl.viz.save(graph, "path")` writes .dot (and .svg when graphviz's
`dot` program is installed). The `graphviz` Python package is imported only when drawing.
"""
from ._dot import draw, save, INSTALL_HINT
from ._graph import build

__all__ = ["draw", "save", "build", "DotNotFoundError", "INSTALL_HINT"]


def __getattr__(name):
    if name == "DotNotFoundError":  # subclasses graphviz.ExecutableNotFound, so it exists once graphviz imports
        from ._dot import digraph_classes
        return digraph_classes()[1]
    raise AttributeError(f"module 'tinygrad_lite.viz' has no attribute '{name}'")
