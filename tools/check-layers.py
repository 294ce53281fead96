#!/usr/bin/env python3
"""Keeps user/'s folders the architecture ARCHITECTURE.md describes.

  tools/check-layers.py [ROOT]
  tools/check-layers.py --self-test

Checks, for every .c and .h file under user/:
  - a memwatch header is included by its folder: "util/hashmap.h";
  - a folder includes only its own headers and those of folders below it
    (LAYERS, lowest first; user/main.c sits above them all);
  - no include cycle between modules (a module: one folder/name.c with its
    name.h and name_*.h; e.g. host.c and web.c must not include each other's
    header, directly or through others);
  - every folder is in LAYERS and has a README.md whose first line says what
    it owns; no other source file lies in user/ itself.
Prints one line per problem and exits 1 if there is any."""
import os
import re
import sys

# Lowest first: a folder may include the folders before it, never after.
LAYERS = [
    "util",      # growable arrays, hash map, text, errors, clocks, parallel calls, sampling math
    "elf",       # ELF files, debug files in a target's root, symbolization
    "proc",      # processes: maps, mapped files, /proc readings
    "stacks",    # stacks: interning, frame-pointer checks, unwinding snapshots
    "profile",   # pprof encoding, heap and page profiles, output files
    "diagnose",  # timeline, chart, verdicts, knobs, correlation
    "kernel",    # BPF objects: loading, configuration, maps, events
    "probes",    # allocator discovery, probe placement, uprobes, latency probe
    "inject",    # the in-process fast path: agent, ptrace injection, detours, their BPF side
    "cli",       # the command line
    "session",   # the driver core: targets, the loop, -p / -- CMD
    "host",      # --all: the process table, HTTP endpoints, metrics, output dir
]
TOP = "main.c"   # user/main.c: picks the driver, above every folder

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources(user):
    for folder in sorted(os.listdir(user)):
        path = os.path.join(user, folder)
        if not os.path.isdir(path):
            continue
        for dirpath, _, names in os.walk(path):
            for name in sorted(names):
                if name.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(dirpath, name), user)


def module_of(rel):
    """folder/name for folder/name.c, name.h and name_*.h (its private parts)."""
    folder, name = rel.split("/", 1) if "/" in rel else ("", rel)
    base = os.path.splitext(name)[0]
    if base.endswith("_impl"):
        base = base[: -len("_impl")]
    return folder + "/" + base


def rank(rel):
    if "/" not in rel:
        return len(LAYERS)
    folder = rel.split("/", 1)[0]
    return LAYERS.index(folder) if folder in LAYERS else None


def check(root):
    """The problems of the tree at root, as lines."""
    user = os.path.join(root, "user")
    problems = []
    files = list(sources(user))
    headers = {f for f in files if f.endswith(".h")}
    by_name = {}
    for h in headers:
        by_name.setdefault(os.path.basename(h), []).append(h)

    for name in sorted(os.listdir(user)):
        path = os.path.join(user, name)
        if os.path.isdir(path):
            if name not in LAYERS:
                problems.append(f"user/{name}/: a folder tools/check-layers.py does not place (add it to LAYERS)")
            readme = os.path.join(path, "README.md")
            first = open(readme).readline().strip() if os.path.exists(readme) else ""
            if not first:
                problems.append(f"user/{name}/README.md: missing, or without a first line saying what it owns")
        elif name.endswith((".c", ".h")) and name != TOP:
            problems.append(f"user/{name}: belongs in a folder")
            files.append(name)

    deps = {}
    for rel in files + ([TOP] if os.path.exists(os.path.join(user, TOP)) else []):
        with open(os.path.join(user, rel), errors="replace") as f:
            text = f.read()
        here = rank(rel)
        for inc in INCLUDE.findall(text):
            if "/" not in inc:
                if inc in by_name:
                    problems.append(f"user/{rel}: #include \"{inc}\" without its folder: \"{by_name[inc][0]}\"")
                continue
            if inc not in headers:
                continue    # a generated header (.output) or one of include/
            there = rank(inc)
            if here is not None and there is not None and there > here:
                problems.append(f"user/{rel}: includes {inc}: {inc.split('/')[0]} is above "
                                f"{rel.split('/')[0] if '/' in rel else 'main'}")
            a, b = module_of(rel), module_of(inc)
            if a != b:
                deps.setdefault(a, set()).add(b)

    # Module cycles, each reported once from its smallest member.
    seen_cycles = set()
    for start in sorted(deps):
        stack, path = [(start, iter(sorted(deps.get(start, ()))))], [start]
        on_path = {start}
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                on_path.discard(path.pop())
                continue
            if nxt == start:
                cycle = tuple(path)
                key = frozenset(cycle)
                if key not in seen_cycles and min(cycle) == start:
                    seen_cycles.add(key)
                    problems.append("include cycle: " + " -> ".join(cycle + (start,)))
            elif nxt not in on_path and nxt > start:
                on_path.add(nxt)
                path.append(nxt)
                stack.append((nxt, iter(sorted(deps.get(nxt, ())))))

    return problems


def self_test():
    """A tree with one of each problem, and a clean one: each is found,
    nothing else is."""
    import tempfile
    files = {
        "user/util/README.md": "Owns helpers.\n",
        "user/util/a.h": '#include "host/h.h"\n',                  # util includes host
        "user/util/a.c": '#include "util/a.h"\n#include "b.h"\n',  # bare include
        "user/util/b.h": "",
        "user/host/README.md": "Owns the host.\n",
        "user/host/h.h": "",
        "user/host/h.c": '#include "host/h.h"\n#include "host/w.h"\n',
        "user/host/w.h": "",
        "user/host/w.c": '#include "host/w.h"\n#include "host/h.h"\n',  # h <-> w
        "user/proc/x.c": "",                                         # no README
        "user/nowhere/README.md": "Owns nothing.\n",                # not in LAYERS
        "user/stray.c": "",                                          # not in a folder
        "user/main.c": '#include "host/h.h"\n#include "util/b.h"\n',
    }
    with tempfile.TemporaryDirectory() as root:
        for path, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
            with open(os.path.join(root, path), "w") as f:
                f.write(text)
        found = check(root)
        want = ["util/a.h: includes host/h.h", 'util/a.c: #include "b.h" without its folder',
                "include cycle: host/h -> host/w -> host/h", "user/proc/README.md: missing",
                "user/nowhere/: a folder", "user/stray.c: belongs in a folder"]
        missed = [w for w in want if not any(w in p for p in found)]
        extra = [p for p in found if not any(w in p for w in want)]
        for path in ("user/util/a.h", "user/util/a.c", "user/host/w.c", "user/stray.c"):
            os.remove(os.path.join(root, path))
        os.remove(os.path.join(root, "user/nowhere/README.md"))
        os.rmdir(os.path.join(root, "user/nowhere"))
        with open(os.path.join(root, "user/proc/README.md"), "w") as f:
            f.write("Owns processes.\n")
        clean = check(root)
    for m in missed:
        print("check-layers self-test: not found: " + m, file=sys.stderr)
    for e in extra + clean:
        print("check-layers self-test: unexpected: " + e, file=sys.stderr)
    return 1 if missed or extra or clean else 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    problems = check(sys.argv[1] if len(sys.argv) > 1 else ".")
    for p in problems:
        print("check-layers: " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
