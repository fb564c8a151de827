"""Walking a Module tree, as PyTorch's: `named_modules` / `modules` (depth first, each once), `named_children` /
`children`, `named_parameters` / `parameters` and `named_buffers` / `buffers` (registration order, each once).
Installed on Module by module.py."""


def named_modules(self, memo=None, prefix="", remove_duplicate=True):
    """(dotted name, module) pairs for this module and all submodules, depth first, each once."""
    memo = set() if memo is None else memo
    stack = [(prefix, self)]
    while stack:
        name, mod = stack.pop()
        if remove_duplicate:
            if id(mod) in memo:
                continue
            memo.add(id(mod))
        yield name, mod
        children = [(f"{name}.{k}" if name else k, m) for k, m in mod._modules.items() if m is not None]
        stack.extend(reversed(children))


def modules(self):
    for _, m in self.named_modules():
        yield m


def named_children(self):
    seen = set()
    for name, m in self._modules.items():
        if m is not None and id(m) not in seen:
            seen.add(id(m))
            yield name, m


def children(self):
    for _, m in self.named_children():
        yield m


def _named_members(self, key, prefix, recurse, remove_duplicate):
    seen = set()
    mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
    for mod_prefix, mod in mods:
        for k, v in mod.__dict__[key].items():
            if v is None or id(v) in seen:
                continue
            if remove_duplicate:
                seen.add(id(v))
            yield (f"{mod_prefix}.{k}" if mod_prefix else k), v


def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
    """(dotted name, Parameter) pairs in registration order, each parameter once."""
    return self._named_members("_parameters", prefix, recurse, remove_duplicate)


def parameters(self, recurse=True):
    for _, p in self.named_parameters(recurse=recurse):
        yield p


def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
    return self._named_members("_buffers", prefix, recurse, remove_duplicate)


def buffers(self, recurse=True):
    for _, b in self.named_buffers(recurse=recurse):
        yield b
