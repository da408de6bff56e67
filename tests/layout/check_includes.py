#!/usr/bin/env python3
"""The dependency rules of docs/architecture.md, checked over the #include lines.

Every source file belongs to a wing (the first matching prefix below). A file may include only
files of its own wing and of the wings its rule lists; the structure drawn from the includes
(each compilation unit, a header with its .cc, one level above the deepest unit it includes)
must have no loop and be at most MAX_DEPTH levels deep. Exit 1 names each broken rule."""

import os
import re
import sys

MAX_DEPTH = 10

# (wing, path prefix); the first match wins, so the more specific prefixes come first.
WINGS = [
    ("main", "agent/main.cc"),
    ("base", "agent/base/"),
    ("tick", "agent/tick/"),
    ("carbon", "agent/carbon/"),
    ("state", "agent/state/"),
    ("cli", "agent/cli/"),
    ("wiring", "agent/"),
    ("collectors", "collectors/"),
    ("exporters", "exporters/"),
    ("bpf", "bpf/"),
]

# What each wing may include besides itself. Read bottom-up: base is the floor; sources and
# exporters stand on it alone; the tick turns readings into shares; carbon turns shares into
# grams; state keeps totals; the wiring builds the pipeline; the CLI drives it; main is the entry.
MAY_INCLUDE = {
    "base": set(),
    "collectors": {"base"},
    "exporters": {"base"},
    "bpf": {"base", "collectors"},
    "tick": {"base", "collectors"},
    "carbon": {"base", "tick"},
    "state": {"base", "tick", "carbon"},
    "wiring": {"base", "collectors", "exporters", "bpf", "tick", "carbon", "state"},
    "cli": {"base", "collectors", "exporters", "bpf", "tick", "carbon", "state", "wiring"},
    "main": {"base", "collectors", "exporters", "bpf", "tick", "carbon", "state", "wiring", "cli"},
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
GENERATED = (".pb.h", ".skel.h", ".lskel.h")


def wing_of(path):
    for wing, prefix in WINGS:
        if path == prefix or path.startswith(prefix):
            return wing
    return None


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    root = os.path.abspath(root)
    units = {}  # unit (path without extension) -> set of included units
    files = {}
    for top in ("agent", "collectors", "exporters", "bpf"):
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for name in names:
                if not name.endswith((".h", ".cc", ".c")):
                    continue
                path = os.path.relpath(os.path.join(dirpath, name), root)
                with open(os.path.join(root, path)) as f:
                    files[path] = INCLUDE.findall(f.read())
    problems = []
    for path, includes in sorted(files.items()):
        wing = wing_of(path)
        unit = path.split(".")[0]
        units.setdefault(unit, set())
        for inc in includes:
            target = inc
            for g in GENERATED:
                if inc.endswith(g):
                    target = inc[: -len(g)] + ".h"
            if target not in files and not os.path.exists(os.path.join(root, target)):
                if os.path.basename(inc) == inc:
                    continue  # a BPF program's sibling header or vmlinux.h
                problems.append(f"{path}: includes {inc}, which is not in the tree")
                continue
            other = wing_of(target)
            if other is None:
                continue
            if other != wing and other not in MAY_INCLUDE[wing]:
                problems.append(f"{path}: the {wing} wing may not include {inc} ({other})")
            tunit = target.split(".")[0]
            if tunit != unit:
                units[unit].add(tunit)

    depth = {}
    state = {}

    def level(u, stack):
        if state.get(u) == "done":
            return depth[u]
        if state.get(u) == "open":
            loop = stack[stack.index(u):] + [u]
            problems.append("include loop: " + " -> ".join(loop))
            return 0
        state[u] = "open"
        d = 1 + max([level(v, stack + [u]) for v in sorted(units.get(u, ()))] + [0])
        state[u] = "done"
        depth[u] = d
        return d

    for u in sorted(units):
        level(u, [])
    deepest = max(depth.values())
    chain = []
    u = max(depth, key=lambda k: (depth[k], k))
    while u:
        chain.append(u)
        below = [v for v in units.get(u, ()) if depth.get(v) == depth[u] - 1]
        u = sorted(below)[0] if below else None
    print(f"{len(files)} files, {len(units)} units, {deepest} levels deep: " + " -> ".join(chain))
    if deepest > MAX_DEPTH:
        problems.append(f"the include structure is {deepest} levels deep (at most {MAX_DEPTH})")
    stray = [p for p in files if wing_of(p) == "wiring" and os.path.dirname(p) != "agent"]
    for p in stray:
        problems.append(f"{p}: a folder under agent/ that is not a wing; add it to the rules")
    for p in problems:
        print("RULE BROKEN: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
