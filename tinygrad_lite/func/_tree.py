"""Nested structures of Tensors (tuples, lists, dicts; namedtuples kept) for the transforms' inputs and outputs."""


def flatten(tree):
    """(leaves, rebuild): the leaves in order, and a function that rebuilds the structure from new leaves."""
    leaves = []

    def walk(node):
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            parts = [walk(n) for n in node]
            return lambda it: type(node)(*[p(it) for p in parts])
        if isinstance(node, (tuple, list)):
            parts = [walk(n) for n in node]
            kind = type(node)
            return lambda it: kind(p(it) for p in parts)
        if isinstance(node, dict):
            parts = {k: walk(v) for k, v in node.items()}
            return lambda it: {k: p(it) for k, p in parts.items()}
        leaves.append(node)
        return lambda it: next(it)

    build = walk(tree)
    return leaves, lambda new: build(iter(new))


def tree_map(fn, tree):
    leaves, rebuild = flatten(tree)
    return rebuild([fn(x) for x in leaves])
