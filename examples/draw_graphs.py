"""Draw the README's two pictures with tl.viz and print the code that made them.

- docs/images/mlp_graph.svg: a small MLP and its cross-entropy loss, one cluster per module call, parameters
  named by their module path (`0.weight 16x4`), every primitive with its output shape.
- docs/images/grad_heatmap.svg: a deep sigmoid network after backward, each layer coloured by the norm of its
  gradient (log scale): the gradient vanishes layer by layer towards the input.

Run `python examples/draw_graphs.py [--out DIR]`. Each picture is written as .dot, and as .svg when graphviz's
`dot` program is installed (Debian/Ubuntu `apt-get install graphviz`, macOS `brew install graphviz`).
"""
import argparse
import os
import textwrap

import tinygrad_lite as tl
from tinygrad_lite import nn

HERE = os.path.dirname(os.path.abspath(__file__))

# Each picture: the setup (data), then the three lines that build the model, run it and draw it. The strings are
# executed as printed, so the README shows exactly the code that made the pictures.
PICTURES = {
    "mlp_graph": (
        """\
        x, y = tl.randn(32, 4), tl.randint(0, 3, (32,))""",
        """\
        model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
        loss = nn.CrossEntropyLoss()(model(x), y)
        tl.viz.save(tl.viz.draw(loss), f"{out}/mlp_graph.svg")"""),
    "grad_heatmap": (
        """\
        x, y = tl.randn(64, 16), tl.randn(64, 1)""",
        """\
        model = nn.Sequential(*[m for _ in range(6) for m in (nn.Linear(16, 16), nn.Sigmoid())], nn.Linear(16, 1))
        loss = nn.functional.mse_loss(model(x), y); loss.backward()
        tl.viz.save(tl.viz.draw(loss, show_grads=True, depth=1), f"{out}/grad_heatmap.svg")"""),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "docs", "images"),
                        help="directory for the pictures (default: docs/images)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    written = []
    for name, (setup, code) in PICTURES.items():
        tl.manual_seed(0)
        scope = {"tl": tl, "nn": nn, "out": args.out}
        setup, code = textwrap.dedent(setup), textwrap.dedent(code)
        # our own literal code, run so that what is printed is what ran; tooltips cite "<name>.py:LINE"
        exec(compile(setup + "\n" + code, f"{name}.py", "exec"), scope)  # noqa: S102
        paths = [p for p in (f"{args.out}/{name}.dot", f"{args.out}/{name}.svg") if os.path.exists(p)]
        written += paths
        print(f"# {name}: {', '.join(os.path.relpath(p) for p in paths)}")
        print(setup)
        print(code, end="\n\n")
    if not any(p.endswith(".svg") for p in written):
        print("graphviz's `dot` program is not installed, so only the .dot files were written; "
              "install graphviz to get the SVGs (" + tl.viz.INSTALL_HINT.split("Install graphviz: ")[1] + ")")


if __name__ == "__main__":
    main()
