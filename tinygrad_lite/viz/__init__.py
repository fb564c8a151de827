"""tl.viz: draw the gradient tape with graphviz — module clusters, gradient heatmaps, highlighted entries — as a
static picture or an interactive page, and watch gradients flow through training.

`tl.viz.draw(loss)` returns a graphviz.Digraph; `tl.viz.save(graph, "path")` writes .dot (and .svg when graphviz's
`dot` program is installed). `tl.viz.html(loss)` returns an HTMLGraph: a self-contained page (zoom, search, a
node's values and gradients on click). `tl.viz.GradFlow(model)` records per-parameter gradient statistics and
flags vanishing, exploding and dead layers. The `graphviz` Python package is imported only when drawing.
"""
from ._dot import draw, save, INSTALL_HINT
from ._graph import build
from .gradflow import GradFlow
from .html import html, HTMLGraph

__all__ = ["draw", "save", "build", "html", "HTMLGraph", "GradFlow", "DotNotFoundError", "INSTALL_HINT"]


def __getattr__(name):
    if name == "DotNotFoundError":  # subclasses graphviz.ExecutableNotFound, so it exists once graphviz imports
        from ._dot import digraph_classes
        return digraph_classes()[1]
    raise AttributeError(f"module 'tinygrad_lite.viz' has no attribute '{name}'")
