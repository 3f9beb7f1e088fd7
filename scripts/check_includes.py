#!/usr/bin/env python3
"""check_includes.py — every `#include "..."` in compiler/, codegen/ and runtime/
goes down the pipeline, never up or sideways.

Each folder is one stage (docs/internals.md, "Layout"). ALLOWED says which
other stages a stage may include; a stage may always include its own headers.
Each quoted include is resolved to a file the way the build finds it (the
including file's folder first, then the stage folders, whose headers have
distinct names) and fails the check, listed as file:line, if its stage is not
allowed. EXCEPTIONS are the known breaches that need more than moving a
declaration to fix; an exception that no longer matches anything fails too,
so the list cannot outlive the code it excuses.

Usage: check_includes.py [--root DIR]   (exit 0 clean, 1 on a breach)
"""
import argparse
import os
import re
import sys

# folder -> stage
STAGES = {
    "compiler/base": "base",
    "compiler/ir": "ir",
    "compiler/front": "front",
    "compiler/interp": "interp",
    "compiler/loopir": "loopir",
    "codegen/kernels": "kernels",
    "compiler/passes": "passes",
    "codegen/c": "c",
    "codegen/llvm": "llvm",
    "compiler/run": "run",
    "compiler/driver": "driver",
    "runtime": "runtime",
}

# stage -> the other stages it may include (libc and system headers are always fine)
ALLOWED = {
    "base": set(),
    "runtime": set(),  # linked by generated code: libc and its own headers only
    "ir": {"base"},
    "front": {"ir", "base", "grammar"},
    "interp": {"ir", "base", "runtime"},  # one safetensors rule set, the runtime's
    "loopir": {"ir", "base"},
    "kernels": {"loopir", "ir", "base"},  # what passes may ask of a kernel
    # the kernels written once (codegen/kernels/*.c but kernels_*.c): code that ends up in
    # generated C and LLVM modules, so it may use what generated code uses and nothing else
    "kernel_src": {"runtime"},
    "passes": {"kernels", "loopir", "ir", "base"},
    "c": {"kernels", "loopir", "ir", "base"},
    "llvm": {"kernels", "loopir", "ir", "base", "runtime"},  # never c: see EXCEPTIONS
    "run": {"passes", "c", "llvm", "kernels", "loopir", "interp", "ir", "base", "runtime"},
    "driver": {"front", "run", "passes", "c", "llvm", "kernels", "loopir", "interp", "ir",
               "base", "runtime"},
}

# headers the build generates (Flex/Bison, into the build tree)
GENERATED = {"parser.h": "grammar", "lexer.h": "grammar"}

# (including file, included header): why it is allowed
EXCEPTIONS = {
    # The LLVM backend reports the same op counts and reads the same runtime
    # knob table as the C backend; both live in codegen/c today. Moving them to
    # a shared backend stage means splitting emit_count.c/emit_knobs.c from the
    # C text they also print, more than moving a declaration.
    ("codegen/llvm/emit_llvm_api.c", "emit_knobs.h"): "shared knob table",
    ("codegen/llvm/emit_llvm_knobs.c", "emit_knobs.h"): "shared knob table",
    ("codegen/llvm/emit_llvm_ctl.c", "emit_knobs.h"): "shared knob table",
    ("codegen/llvm/emit_llvm_ctl.c", "emit_count.h"): "shared op counts",
    ("codegen/llvm/emit_llvm_count.c", "emit_count.h"): "shared op counts",
    ("codegen/llvm/emit_llvm_count.c", "emit_c.h"): "op counts take the C backend's options",
}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def include_find_all(root):
    """Every .c/.h under the stage folders, as repository-relative paths."""
    files = []
    for folder in STAGES:
        base = os.path.join(root, folder)
        for dirpath, _, names in os.walk(base):
            for n in sorted(names):
                if n.endswith((".c", ".h")):
                    files.append(os.path.relpath(os.path.join(dirpath, n), root))
    return sorted(files)


def include_stage_of(path):
    if os.path.dirname(path) == "codegen/kernels" and not os.path.basename(path).startswith("kernels_"):
        return "kernel_src"
    folder = os.path.dirname(path)
    while folder and folder not in STAGES:
        folder = os.path.dirname(folder)
    return STAGES.get(folder)


def include_resolve(root, src, name):
    """The repository path `#include "name"` in src reaches, a generated
    header's stage, or None."""
    local = os.path.normpath(os.path.join(os.path.dirname(src), name))
    if os.path.isfile(os.path.join(root, local)):
        return local
    hits = [os.path.join(f, name) for f in STAGES if os.path.isfile(os.path.join(root, f, name))]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        return ("ambiguous", hits)
    return GENERATED.get(name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    root = os.path.abspath(ap.parse_args().root)
    errors, used = [], set()
    for src in include_find_all(root):
        stage = include_stage_of(src)
        with open(os.path.join(root, src), encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                m = INCLUDE_RE.match(line)
                if not m:
                    continue
                name = m.group(1)
                target = include_resolve(root, src, name)
                where = f"{src}:{lineno}"
                if target is None:
                    errors.append(f"{where}: \"{name}\" is no file of the stage folders")
                    continue
                if isinstance(target, tuple):
                    errors.append(f"{where}: \"{name}\" is ambiguous: {', '.join(target[1])}")
                    continue
                to = "grammar" if target == "grammar" else include_stage_of(target)
                if to == stage or to in ALLOWED[stage]:
                    continue
                if (src, name) in EXCEPTIONS:
                    used.add((src, name))
                    continue
                errors.append(f"{where}: {stage} may not include {to} (\"{name}\")")
    for key in sorted(set(EXCEPTIONS) - used):
        errors.append(f"{key[0]}: exception for \"{key[1]}\" is no longer needed; remove it")
    for e in errors:
        print(e)
    if errors:
        print(f"check_includes: {len(errors)} include(s) against the table", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
