"""The picture's structure, read from the tape: nodes, edges and module clusters. No graphviz here.

Built from `recorder.reachable` (the one graph walker) in one linear pass over the entries; module scopes
are walked upwards through `scope.parent` (a chain as long as the module nesting, never recursion).
"""
from ..autograd import recorder
from ..autograd.recorder import Entry
from ._loops import periodic_runs, reads_back


class Node:
    """One box of the picture: a primitive ("op"), a leaf ("param"/"input"), a constant ("const"), a collapsed
    module call ("module"), a folded run of repeated calls ("fold"), or the max_nodes note ("note")."""
    __slots__ = ("key", "kind", "order", "cluster", "entries", "tensor", "name", "scope", "count", "params",
                 "consts", "shape", "exits", "is_output", "highlight", "only", "group")

    def __init__(self, key, kind, order, cluster=None):
        self.key, self.kind, self.order, self.cluster = key, kind, order, cluster
        self.entries = []
        self.tensor = self.name = self.scope = self.shape = self.only = self.group = None
        self.count = 1
        self.params = None   # leaves drawn inside a collapsed node (their only consumer)
        self.consts = None   # scalar constants of an op (value, or None once released)
        self.exits = None    # entry -> call position, for entries whose output leaves a collapsed node
        self.is_output = self.highlight = False


class Graph:
    """What draw() emits: `nodes` (kept, in recording order), `edges` {(src, dst): kind}, `cut` (nodes left
    out by max_nodes), `scope_depth` (every module call seen) and `folded` (number of folded groups)."""

    def __init__(self):
        self.nodes, self.edges, self.cut, self.scope_depth, self.folded = [], {}, 0, {}, 0


class _Scopes:
    """Depth of every module call, and which calls are drawn as one node (depth limit, folded repeats)."""

    def __init__(self, entries, depth, fold_repeats):
        self.depth = {}
        for e in entries:
            if e.scope is not None and e.scope not in self.depth:
                self._add(e.scope)
        self.limit = depth
        self.member = {}   # scope -> (group id, position in the group)
        self.groups = []   # [scopes of one module called repeatedly from one parent call, in call order]
        self.folded = set()
        if fold_repeats and self.depth:
            self._find_folds(entries, fold_repeats)
        self._targets = {}

    def _add(self, s):
        chain = []
        while s is not None and s not in self.depth:
            chain.append(s)
            s = s.parent
        d = 0 if s is None else self.depth[s] + 1
        for c in reversed(chain):
            self.depth[c] = d
            d += 1

    def _find_folds(self, entries, mode):
        siblings = {}
        for s in self.depth:
            m = s.module_ref() if s.module_ref is not None else None
            # the same module object called again from the same parent call (two top-level Linears share a path)
            siblings.setdefault((s.parent, s.path, s.type_name, id(m) if m is not None else None), []).append(s)
        for group in siblings.values():
            if len(group) > 1:
                group.sort(key=lambda s: s.call)
                gid = len(self.groups)
                self.groups.append(group)
                for pos, s in enumerate(group):
                    self.member[s] = (gid, pos)
        if not self.groups:
            return
        if mode == "all":
            self.folded = set(range(len(self.groups)))
            return
        # By default a module folds when called 3+ times (as loops need 3 iterations): two calls stay apart.
        # A group is recurrent when a call reads an output of the previous call (an unrolled RNN cell).
        # Folding only those keeps a pooling layer used twice in a CNN from turning into a cycle.
        memo, calls = {}, {}
        for e in entries:
            for m in self._memberships(e.scope, memo):
                calls.setdefault(m, []).append(e)
        recurrent = {g for g, grp in enumerate(self.groups) if len(grp) > 2 and self._recurrent(g, calls, memo)}
        # Per-step modules of the same loop (embedding, output head) fold along with the cell.
        loops = {(self.groups[g][0].parent, len(self.groups[g])) for g in recurrent}
        self.folded = {g for g, grp in enumerate(self.groups) if (grp[0].parent, len(grp)) in loops}

    def _recurrent(self, gid, calls, memo):
        """Does a call read the previous call's output, directly or through code of the calling scope recorded
        in between (`h = cell(cat([x[t], h])).tanh()` in a user loop), or through modules called as often from
        the same scope (`h = conv(pool(h))` in a loop)? Other module calls block the path, so conv1, conv2, conv3
        between calls of one pooling layer do not make them a recurrence."""
        parent = self.groups[gid][0].parent
        size = len(self.groups[gid])
        peers = {g for g, grp in enumerate(self.groups) if grp[0].parent is parent and len(grp) == size}
        for pos in range(1, min(len(self.groups[gid]), 4)):
            prev, cur = calls.get((gid, pos - 1)), calls.get((gid, pos))
            if not prev or not cur:
                continue
            def visit(p, pos=pos):
                mine = self._memberships(p.scope, memo)
                if (gid, pos - 1) in mine:
                    return True
                return "expand" if p.scope is parent or any(g in peers for g, _ in mine) else None
            if reads_back(cur, prev[0].seq, visit):
                return True
        return False

    def _memberships(self, s, memo):
        if s in memo:
            return memo[s]
        out, c = set(), s
        while c is not None:
            if c in self.member:
                out.add(self.member[c])
            c = c.parent
        memo[s] = out
        return out

    def target(self, s):
        """None when entries of call `s` are drawn one by one; else (key, kind, scope, cluster, count, position)
        of the node that stands for the outermost collapsed call containing `s`."""
        if s in self._targets:
            return self._targets[s]
        chain, c = [], s
        while c is not None:
            chain.append(c)
            c = c.parent
        found = None
        for c in reversed(chain):
            if self.limit is not None and self.depth[c] >= self.limit:
                found = (f"m{c.call}", "module", c, c.parent, 1, 0)
                break
            m = self.member.get(c)
            if m is not None and m[0] in self.folded:
                found = (f"f{m[0]}", "fold", c, c.parent, len(self.groups[m[0]]), m[1])
                break
        self._targets[s] = found
        return found


def _direct_params(module):
    """(name, parameter) pairs registered directly on a module, tolerant of Module implementations."""
    try:
        return list(module.named_parameters(recurse=False))
    except (TypeError, AttributeError):
        pass
    own = getattr(module, "_parameters", None)
    return [(k, v) for k, v in own.items() if v is not None] if isinstance(own, dict) else []


def _all_params(module):
    try:
        return list(module.named_parameters())
    except (TypeError, AttributeError):
        return []


def _param_names(params, scopes):
    """id(leaf) -> (dotted name, owning module call or None): `params` first, then the module scopes on the tape
    (the innermost module owning a parameter directly names it; a recursive pass catches the rest)."""
    names = {}
    if params is not None:
        if hasattr(params, "named_parameters"):  # a Module
            params = params.named_parameters()
        items = params.items() if hasattr(params, "items") else params
        for n, t in items:
            names[id(t)] = (str(n), None)
    ordered = sorted(scopes.depth, key=lambda s: (-scopes.depth[s], s.call))
    for lister in (_direct_params, _all_params):
        seen = set()
        for s in ordered:
            m = s.module_ref() if s.module_ref is not None else None
            if m is None or id(m) in seen:
                continue
            seen.add(id(m))
            for n, p in lister(m):
                old = names.get(id(p))
                if old is None:
                    names[id(p)] = (f"{s.path}.{n}" if s.path else n, s)
                elif old[1] is None and lister is _direct_params:
                    names[id(p)] = (old[0], s)
    return names


def build(outputs, params=None, depth=None, fold_repeats=True, show_constants=True, highlight=None,
          max_nodes=2000):
    """Read the tape behind `outputs` into a Graph (see draw() for the options)."""
    entries = recorder.reachable(outputs)
    scopes = _Scopes(entries, depth, fold_repeats)
    graph = Graph()
    graph.scope_depth = scopes.depth
    nodes = {}
    rep, pos = {}, {}
    for e in entries:
        t = scopes.target(e.scope) if e.scope is not None else None
        if t is None:
            node = nodes[f"e{e.seq}"] = Node(f"e{e.seq}", "op", e.seq, e.scope)
            node.entries.append(e)
        else:
            key, kind, s, cluster, count, p = t
            node = nodes.get(key)
            if node is None:
                node = nodes[key] = Node(key, kind, e.seq, cluster)
                node.scope, node.count, node.exits, node.params = s, count, {}, []
                node.group = key if kind == "fold" else None
            node.entries.append(e)
            pos[e] = p
        rep[e] = node
    if fold_repeats:
        _fold_loops(entries, nodes, rep, pos, fold_repeats == "all")
    graph.folded = sum(1 for n in nodes.values() if n.kind in ("fold", "loop"))

    names = _param_names(params, scopes)
    edges = graph.edges
    leaves, consts = {}, {}
    for e in entries:
        dst = rep[e]
        for i, p in enumerate(e.parents):
            if p.__class__ is Entry:
                src = rep[p]
                if src.group is not None and dst.group is not None and pos[p] != pos[e]:
                    edges[(src.key, dst.key)] = "loop"  # into the next iteration of a folded loop
                elif src is not dst:
                    edges[(src.key, dst.key)] = "data"
                else:
                    continue
                if src.kind != "op":
                    src.exits[p] = pos[p]
            elif p is not None:
                leaf = leaves.get(id(p))
                if leaf is None:
                    leaf = leaves[id(p)] = _leaf_node(p, f"l{len(leaves)}", e.seq - 0.5, names, scopes)
                    leaf.only = dst
                elif leaf.only is not dst:
                    leaf.only = False
                edges[(leaf.key, dst.key)] = "data"
            elif show_constants:
                _constant(e, i, dst, consts, edges)

    for t in outputs:
        e = getattr(t, "_entry", None)
        if e is not None and e in rep:
            rep[e].is_output = True
            if rep[e].kind != "op":
                rep[e].exits[e] = pos[e]
        elif getattr(t, "requires_grad", False):
            leaf = leaves.get(id(t))
            if leaf is None:
                leaf = leaves[id(t)] = _leaf_node(t, f"l{len(leaves)}", float("inf"), names, scopes)
            leaf.is_output = True
        else:
            c = consts[("out", id(t))] = Node(f"c{len(consts)}", "const", float("inf"))
            c.shape, c.is_output = tuple(getattr(t, "shape", ())), True

    for leaf in leaves.values():
        if leaf.only and leaf.only.kind in ("module", "fold") and leaf.kind == "param" and not leaf.is_output:
            leaf.only.params.append(leaf)  # a parameter used only inside a collapsed module is drawn inside it
            del edges[(leaf.key, leaf.only.key)]
        else:
            nodes[leaf.key] = leaf
    for c in consts.values():
        nodes[c.key] = c

    if highlight is not None:
        mark = True
        if hasattr(highlight, "path"):  # an AnomalyError: its path from origin to where it surfaced, in red
            highlight, mark = highlight.path, "path"
        wanted = {h.seq if isinstance(h, Entry) else int(h) for h in
                  (highlight if isinstance(highlight, (list, tuple, set, frozenset)) else [highlight])}
        for e in entries:
            if e.seq in wanted:
                rep[e].highlight = mark

    ordered = sorted(nodes.values(), key=lambda n: n.order)
    graph.nodes = _cap(ordered, edges, max_nodes, graph)
    return graph


def _fold_loops(entries, nodes, rep, pos, fold_all):
    """Replace the op nodes of each loop found in one module call by one node per loop-body position."""
    # The second pass sees what the first folded: maps over a folded loop's iterations, and loops whose
    # recurrence runs through a folded module call (a cell module called in a user loop).
    n = _fold_pass(entries, nodes, rep, pos, fold_all, None, 0)
    folded = {e: (rep[e].key, pos[e]) for e in entries if rep[e].kind in ("loop", "fold")}
    if folded:
        _fold_pass(entries, nodes, rep, pos, fold_all, folded, n)


def _fold_pass(entries, nodes, rep, pos, fold_all, folded, n):
    calls = {}
    for e in entries:
        if rep[e].kind == "op":
            calls.setdefault(e.scope, []).append(e)
    for scope, seq in calls.items():
        for a, period, reps in periodic_runs(seq, fold_all, folded):
            group = f"p{n}"
            n += 1
            for j in range(period):
                node = Node(f"{group}_{j}", "loop", seq[a + j].seq, scope)
                node.count, node.group, node.exits = reps, group, {}
                for k in range(reps):
                    e = seq[a + k * period + j]
                    del nodes[f"e{e.seq}"]
                    node.entries.append(e)
                    node.exits[e] = k  # every iteration's output, for the per-iteration gradient range
                    rep[e], pos[e] = node, k
                nodes[node.key] = node
    return n


def _leaf_node(t, key, order, names, scopes):
    name, owner = names.get(id(t), (None, None))
    kind = "param" if name is not None or type(t).__name__ == "Parameter" else "input"
    cluster = None
    if owner is not None:
        target = scopes.target(owner)
        cluster = owner if target is None else target[3]
    node = Node(key, kind, order, cluster)
    node.tensor, node.name, node.shape = t, name, tuple(t.shape)
    return node


def _constant(e, i, dst, consts, edges):
    saved = e.saved[i] if e.saved is not None else None
    shape = saved._data.shape if saved is not None else e.in_meta[i][0]
    size = 1
    for d in shape:
        size *= d
    if size == 1:
        if dst.kind == "op" or (dst.kind == "loop" and e is dst.entries[0]):  # written in the label, no box
            value = saved._data.item() if saved is not None else None
            if dst.consts is None:
                dst.consts = [value]
            else:
                dst.consts.append(value)
        return
    if dst.kind in ("loop", "fold"):  # one box per input slot of a folded node, not one per iteration
        key = (dst.key, e.prim.name, i, shape)
    else:
        key = ("t", id(saved)) if saved is not None else (e.seq, i)
    c = consts.get(key)
    if c is None:
        c = consts[key] = Node(f"c{len(consts)}", "const", e.seq - 0.75)
        c.shape = tuple(shape)
    edges[(c.key, dst.key)] = "const"


def _cap(ordered, edges, max_nodes, graph):
    """Keep the first and last max_nodes/2 nodes (plus outputs and highlighted ones); route cut edges through
    one note node that says how many were cut."""
    if max_nodes is None or len(ordered) <= max_nodes:
        return ordered
    if max_nodes < 1:
        raise ValueError(f"viz.draw: max_nodes must be a positive integer or None, got {max_nodes}")
    head, tail = (max_nodes + 1) // 2, max_nodes // 2
    middle = ordered[head:len(ordered) - tail]
    forced = [n for n in middle if n.is_output or n.highlight]
    kept = ordered[:head] + forced + (ordered[len(ordered) - tail:] if tail else [])
    keys = {n.key for n in kept}
    graph.cut = len(ordered) - len(kept)
    note = Node("cut_note", "note", ordered[head].order)
    note.count = graph.cut
    rerouted = {}
    for (s, d), kind in edges.items():
        s_in, d_in = s in keys, d in keys
        if s_in and d_in:
            rerouted[(s, d)] = kind
        elif s_in:
            rerouted[(s, note.key)] = "cut"
        elif d_in:
            rerouted[(note.key, d)] = "cut"
    edges.clear()
    edges.update(rerouted)
    kept.insert(head, note)
    return kept
