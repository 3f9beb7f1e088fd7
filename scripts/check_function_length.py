#!/usr/bin/env python3
"""check_function_length.py — no C function in compiler/, codegen/ or runtime/ over 150 lines.

A function is counted from the first line of its definition (the column-0 line that
starts its declarator) to its closing `}` at column 0, both included. The project's
formatting puts every definition and its closing brace at column 0, so this plain
line scan needs no C parser (the rule itself: docs/internals.md, "Coding rules"). Generated C is
emitted from string tables (initializers, not functions), which the scan skips.

Exit status 1, listing `file:line name length`, when a function is too long, or when
an entry of ALLOWED no longer exists or is now short (so the list cannot go stale).
Usage: check_function_length.py [--root DIR] [--max N]
"""
import argparse
import os
import re
import sys

MAX_LINES = 150
DIRS = ("compiler", "codegen", "runtime")

# (file, function): the only functions allowed over the limit.
ALLOWED = {
    # the LLVM backend's entry points built one by one; to be table-driven and shared with
    # the C backend's API emission
    ("codegen/llvm/emit_llvm_api.c", "ll_emit_api"),
}

NAME_RE = re.compile(r"([A-Za-z_]\w*)\s*\($")
SKIP_STARTS = ("typedef", "struct", "enum", "union", "extern \"C\"")


def function_name(header):
    """The declared name of a definition header, or None when it is no function."""
    paren = header.find("(")
    if paren < 0 or "=" in header[:paren]:
        return None  # no parameter list, or an initialized object
    m = NAME_RE.search(header[: paren + 1])
    return m.group(1) if m else None


def scan_functions(path):
    """Yields (line, name, length) for every function defined in the file at path."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    i, n = 0, len(lines)
    in_comment = False
    while i < n:
        line = lines[i]
        if in_comment:
            in_comment = "*/" not in line
            i += 1
            continue
        if line.startswith("/*"):
            in_comment = "*/" not in line
            i += 1
            continue
        if not line or not (line[0].isalpha() or line[0] == "_") or line.startswith(SKIP_STARTS):
            i += 1
            continue
        # a column-0 declarator: gather its lines up to the `{` of a body or a `;`
        start, header = i, line.rstrip()
        while not header.endswith(("{", ";", "}")) and i + 1 < n:
            nxt = lines[i + 1].rstrip()
            if nxt == "{":  # brace on a line of its own
                header += " {"
                i += 1
                break
            if nxt.startswith("#") or not nxt.strip():
                break
            header += " " + nxt.strip()
            i += 1
        if not header.endswith("{") or not header[:-1].rstrip().endswith(")"):
            i += 1
            continue
        name = function_name(header)
        end = i + 1
        while end < n and not lines[end].startswith("}"):
            end += 1
        if name:
            yield start + 1, name, end - start + 1
        i = end + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--max", type=int, default=MAX_LINES)
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    problems, seen, count = [], {}, 0
    for d in DIRS:
        for dirpath, _, files in os.walk(os.path.join(root, d)):
            for fn in sorted(files):
                if not fn.endswith(".c"):
                    continue
                path = os.path.join(dirpath, fn)
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                for line, name, length in scan_functions(path):
                    count += 1
                    if (rel, name) in ALLOWED:
                        seen[(rel, name)] = length
                        continue
                    if length > args.max:
                        problems.append(f"{rel}:{line} {name} {length} lines (limit {args.max})")
    for rel, name in sorted(ALLOWED):
        if (rel, name) not in seen:
            problems.append(f"{rel} {name}: allowlisted but not found; remove it from ALLOWED")
        elif seen[(rel, name)] <= args.max:
            problems.append(f"{rel} {name} {seen[(rel, name)]} lines: allowlisted but now short; "
                            "remove it from ALLOWED")
    if count == 0:
        problems.append(f"no functions found under {root} ({', '.join(DIRS)}): wrong --root?")
    for p in problems:
        print(p)
    if problems:
        print(f"check_function_length: {len(problems)} problem(s); split long functions into "
              "static helpers (docs/internals.md, \"Coding rules\")")
        return 1
    print(f"check_function_length: {count} functions, none over {args.max} lines "
          f"({len(ALLOWED)} allowlisted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
