#!/usr/bin/env python3
"""Runs gattnc on a .gat program that must fail and checks its diagnostics.

Each program carries its expectations in comments:

    # expect: 7:12: error: shape mismatch ...

Every expected line must appear in gattnc's stderr as
`<file>:7:12: error: shape mismatch ...` (the message may go on after the
expected text), followed by the source line and a caret line whose caret
sits under column 12. gattnc must exit with status 1 (not crash, not succeed)
and must not report an internal error. Options for gattnc may be given with
`# args: --max-seq 16`.
"""
import re
import subprocess
import sys


def main():
    gattnc, src = sys.argv[1], sys.argv[2]
    text = open(src, encoding="utf-8").read()
    expects = re.findall(r"#\s*expect:\s*(\d+):(\d+):\s*(.*\S)", text)
    args = []
    m = re.search(r"#\s*args:\s*(.*\S)", text)
    if m:
        args = m.group(1).split()
    if not expects:
        print(f"{src}: no '# expect:' lines")
        return 1
    p = subprocess.run([gattnc, src, "--dump-ir"] + args, capture_output=True, text=True, timeout=60)
    err = p.stderr
    ok = True
    if p.returncode != 1:
        print(f"FAIL: exit status {p.returncode}, expected 1")
        ok = False
    if "internal error" in err:
        print("FAIL: internal error reported")
        ok = False
    lines = err.splitlines()
    for line, col, msg in expects:
        prefix = f"{src}:{line}:{col}: "
        found = False
        for i, l in enumerate(lines):
            if l.startswith(prefix) and l[len(prefix):].startswith(msg):
                found = True
                caret = lines[i + 2] if i + 2 < len(lines) else ""
                # the source line and the caret line are indented by two spaces
                if caret.strip() != "^" or caret.index("^") != int(col) + 1:
                    print(f"FAIL: caret line for {line}:{col} is {caret!r}")
                    ok = False
                break
        if not found:
            print(f"FAIL: missing diagnostic: {prefix}{msg}")
            ok = False
    if not ok:
        print("---- gattnc stderr ----")
        print(err)
        return 1
    print(f"ok: {len(expects)} diagnostic(s) matched")
    return 0


if __name__ == "__main__":
    sys.exit(main())
