#!/usr/bin/env python3
"""No islands (ARCHITECTURE.md): every engine module is reachable from the engine's
entry points: the composition root (`engine/src/root/mod.rs`, `Engine::start`) and the
two binaries (`engine serve`/`token`/`upstream`, the worker program). A module that only
scenarios or tests use is an island: a green scenario over it proves nothing about the
product.

How: each file of engine/src is a module; a file refers to another module when it names
a path into it (`crate::a::b`, `super::x`, `self::x`, a child module `x::`, or an item
of a module imported with `use`). Starting from the entry points, follow references
(transitively: a `pub use` in a `mod.rs` reaches the child it re-exports). Files under
`#[cfg(test)]` modules are test code, not product, and are neither roots nor islands.
Prints the unreached files and exits 1 when there are any.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "engine" / "src"
ENTRY = ["root/mod.rs", "bin/engine.rs", "bin/worker.rs"]


def module_of(path: Path):
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "bin":
        return None
    if parts[-1] == "mod" or parts == ["lib"]:
        parts = parts[:-1]
    return tuple(parts)


files = {}  # module path tuple -> file
for f in sorted(SRC.rglob("*.rs")):
    m = module_of(f)
    if m is not None:
        files[m] = f

STRIP = re.compile(r'//[^\n]*|"(?:\\.|[^"\\])*"')


def code_of(f: Path) -> str:
    return STRIP.sub("", f.read_text())


def children(text: str):
    """Child modules declared here, and those declared under #[cfg(test)]."""
    declared, tests = [], []
    for m in re.finditer(r"(#\[cfg\(test\)\]\s*)?(?:pub(?:\([a-z]+\))?\s+)?mod\s+([a-z_0-9]+)\s*;", text):
        (tests if m.group(1) else declared).append(m.group(2))
    return declared, tests


test_only = set()
for m, f in files.items():
    _, tests = children(code_of(f))
    for t in tests:
        test_only.add(m + (t,))


def is_test(m):
    return any(m[: i + 1] in test_only for i in range(len(m)))


def impl_only(f: Path) -> bool:
    text = code_of(f)
    defines = re.search(r"^(?:pub(?:\([a-z]+\))?\s+)?(?:struct|enum|trait|fn|const|static|type)\s", text, re.M)
    return "impl " in text and not defines


def resolve(base, segments):
    """The longest module prefix of `base + segments` that exists."""
    best = None
    path = list(base)
    if (tuple(path)) in files:
        best = tuple(path)
    for s in segments:
        path.append(s)
        if tuple(path) in files:
            best = tuple(path)
        else:
            break
    return best


def refs_of(m, f):
    text = code_of(f)
    here = list(m) if m is not None else []
    is_mod_file = f.name in ("mod.rs", "lib.rs")
    # `super` of a mod.rs is its parent's parent; of a leaf file, its parent.
    parent = here[:-1] if here else []
    declared, _ = children(text)
    out = set()
    # use-trees are flattened: `use crate::a::{b, c::d}` -> crate::a::b, crate::a::c::d
    for u in re.finditer(r"\buse\s+([^;]+);", text, re.S):
        for path in flatten(u.group(1).replace("\n", " ")):
            out |= path_ref(path, here, parent, declared, m)
    for p in re.finditer(r"\b((?:crate|super|self|engine|[a-z_][a-z0-9_]*)(?:::[a-z_][A-Za-z0-9_]*)+)", text):
        out |= path_ref(p.group(1), here, parent, declared, m)
    return {r for r in out if r is not None}


def flatten(tree: str):
    tree = tree.strip()
    m = re.match(r"^(.*?)::\{(.*)\}$", tree, re.S)
    if not m:
        return [re.sub(r"\s+as\s+\w+$", "", tree)]
    prefix, inner = m.group(1), m.group(2)
    items, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    out = []
    for it in items:
        it = it.strip()
        if not it:
            continue
        for sub in flatten(it):
            out.append(prefix if sub == "self" else f"{prefix}::{sub}")
    return out


def path_ref(path, here, parent, declared, m):
    segs = [s for s in path.split("::") if s]
    if not segs:
        return set()
    head, rest = segs[0], segs[1:]
    if head in ("crate", "engine"):
        return {resolve((), rest)}
    if head == "self":
        return {resolve(tuple(here), rest)}
    if head == "super":
        base = list(parent)
        while rest and rest[0] == "super":
            base = base[:-1]
            rest = rest[1:]
        return {resolve(tuple(base), rest)}
    if head in declared:
        return {resolve(tuple(here) + (head,), rest)}
    return set()


reached = set()
queue = []
for e in ENTRY:
    f = SRC / e
    queue.append((module_of(f), f))
seen_files = set()
while queue:
    m, f = queue.pop()
    if f in seen_files:
        continue
    seen_files.add(f)
    if m is not None:
        reached.add(m)
        # A module's ancestors hold its declaration: reaching it reaches them.
        for i in range(len(m)):
            anc = m[:i]
            if anc in files and files[anc] not in seen_files:
                queue.append((anc, files[anc]))
    for r in refs_of(m, f):
        if r in files and files[r] not in seen_files and not is_test(r):
            queue.append((r, files[r]))
    # A child module that only adds `impl` blocks to its parent's types is part of the
    # parent (it is used through those types, never by path).
    if m is not None:
        for child in children(code_of(f))[0]:
            c = m + (child,)
            if c in files and files[c] not in seen_files and impl_only(files[c]):
                queue.append((c, files[c]))

islands = [files[m] for m in sorted(files) if m not in reached and not is_test(m)]
if islands:
    print("engine modules not reachable from the engine's entry points (islands):")
    for f in islands:
        print(f"  {f.relative_to(ROOT)}")
    sys.exit(1)
print(f"no islands: {len(reached)} engine modules reachable from {', '.join(ENTRY)}")
