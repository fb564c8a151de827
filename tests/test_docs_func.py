"""docs/func.md's Python snippets run as written, in order, in one namespace (a stale example fails here)."""
import pathlib
import re

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "func.md"


def test_every_snippet_of_func_md_runs():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 5
    namespace = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{DOC.name} snippet {i + 1}", "exec"), namespace)
    assert namespace["t"].grad is not None and namespace["directional_derivative"] is not None
