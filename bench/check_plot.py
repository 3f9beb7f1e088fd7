#!/usr/bin/env python3
"""Test of `gattnc bench FILE --plot OUT.svg` (compiler/driver/driver_plot.c): runs
the T sweep on a tiny model (examples/tiny_lm.gat at max T = 256, so
T = 64, 128, 256), then checks that the SVG parses as XML (Python's own
parser), is an <svg> document with one series per level (-O0, -O2), each
with one marker per swept T carrying data-x = T and data-y = the time the
bench printed in its sweep table, markers inside the plot's view box and
ordered along x as T grows, and one polyline through them.

  /usr/bin/python3 bench/check_plot.py --gattnc build/gattnc [--workdir DIR]"""
import argparse
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
NS = "{http://www.w3.org/2000/svg}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gattnc", required=True)
    ap.add_argument("--workdir", default="/tmp/gattnc-check-plot")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    svg = os.path.join(a.workdir, "sweep.svg")
    if os.path.exists(svg):
        os.remove(svg)
    model = os.path.join(HERE, "..", "examples", "tiny_lm.gat")
    p = subprocess.run([a.gattnc, "bench", model, "--max-seq", "256", "-T", "64", "--decode", "2", "--reps", "1",
                        "--plot", svg], capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"gattnc bench failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    # the sweep table the bench printed: T, -O0 ms, -O2 ms
    table = re.search(r"prefill time sweep \(ms\), plotted to .*?:\n.*?\n((?:\s+\d+\s+[0-9.]+\s+[0-9.]+\n)+)", p.stdout)
    if not table:
        sys.exit(f"no sweep table in the output:\n{p.stdout}")
    printed = [tuple(float(v) for v in ln.split()) for ln in table.group(1).strip().splitlines()]
    want_T = [64.0, 128.0, 256.0]
    errors = []
    if [r[0] for r in printed] != want_T:
        errors.append(f"sweep lengths {[r[0] for r in printed]}, expected {want_T}")
    root = ET.parse(svg).getroot()  # raises on malformed XML
    if root.tag != NS + "svg":
        errors.append(f"root element {root.tag}")
    vb = [float(v) for v in root.get("viewBox", "0 0 0 0").split()]
    series = {g.get("data-name"): g for g in root.iter(NS + "g") if g.get("class") == "series"}
    if sorted(series) != ["-O0", "-O2"]:
        errors.append(f"series {sorted(series)}, expected -O0 and -O2")
    for col, name in ((1, "-O0"), (2, "-O2")):
        g = series.get(name)
        if g is None:
            continue
        pts = [c for c in g.iter(NS + "circle") if c.get("class") == "point"]
        xs = [float(c.get("data-x")) for c in pts]
        ys = [float(c.get("data-y")) for c in pts]
        if xs != want_T:
            errors.append(f"{name}: points at T = {xs}, expected {want_T}")
        for y, row in zip(ys, printed):
            if not (y > 0 and abs(y - row[col]) <= 0.0005 + 1e-6 * row[col]):
                errors.append(f"{name}: point y = {y} but the bench printed {row[col]} ms")
        cx = [float(c.get("cx")) for c in pts]
        cy = [float(c.get("cy")) for c in pts]
        if cx != sorted(cx) or len(set(cx)) != len(cx):
            errors.append(f"{name}: markers not increasing along x: {cx}")
        if any(not (vb[0] <= x <= vb[0] + vb[2]) for x in cx) or any(not (vb[1] <= y <= vb[1] + vb[3]) for y in cy):
            errors.append(f"{name}: markers outside the view box")
        # log scale: a longer time is drawn higher (smaller y)
        for i in range(len(ys)):
            for j in range(len(ys)):
                if ys[i] < ys[j] and not cy[i] > cy[j]:
                    errors.append(f"{name}: y axis not monotone")
        lines = list(g.iter(NS + "polyline"))
        if len(lines) != 1 or len(lines[0].get("points", "").split()) != len(pts):
            errors.append(f"{name}: expected one polyline through the {len(pts)} points")
    if errors:
        print("\n".join(errors))
        return 1
    print(f"ok: {svg} is well-formed SVG with -O0 and -O2 sweeps at T = {want_T}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
