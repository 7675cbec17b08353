#!/usr/bin/env python3
"""sspan-spanmap: the picture holds exactly the trace's attended ranges, line labels and
prompt shading (parsed from the SVG, not string-matched), on a hand-made trace and on
real traces of the shipped model under each policy; long traces stay small; bad traces
are clear errors.

usage: spanmap_test.py SPANMAP_SCRIPT [SSPAN_GENERATE MODEL_DIR]
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

SCRIPT = sys.argv[1] if len(sys.argv) > 1 else ""
GENERATE = sys.argv[2] if len(sys.argv) > 2 else ""
MODEL = sys.argv[3] if len(sys.argv) > 3 else ""
NS = {"s": "http://www.w3.org/2000/svg"}
MAP_SIZE = 720.0


def run_map(trace_path: str, out: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, trace_path, "-o", out, *extra],
                          capture_output=True, text=True, timeout=120)


def svg_of(path: str) -> ET.Element:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"<svg\b.*</svg>", text, re.S)
    assert m, "no <svg> element in the output"
    return ET.fromstring(m.group(0))


def row_groups(svg: ET.Element) -> list[ET.Element]:
    return svg.findall(".//s:g[@class='row']", NS)


def ranges_attr(g: ET.Element) -> list[tuple[int, int]]:
    s = g.get("data-ranges", "")
    return [tuple(int(x) for x in r.split("-")) for r in s.split(",") if r]


def cell_rects(g: ET.Element) -> list[ET.Element]:
    return [r for r in g.findall("s:rect", NS) if r.get("class", "").startswith("cell")]


def write_trace(path: str, rows: list[dict], summary: dict | None = None) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        if summary is not None:
            f.write(json.dumps(summary) + "\n")


def known_trace() -> list[dict]:
    """A 3-line trace: a 4-token prompt line, a dense line, a sparse line that skips line 1."""
    texts = ["", "1 + 2", " [0]", "\n",          # line 0: prompt (pos 0..3)
             "[-1]", " 3", "\n",                  # line 1: dense, generated (pos 4..6)
             "[0]", " 3", " [1]", "\n"]          # line 2: pos 7 dense (list open), 8, 9 sparse, 10 ends
    rows = []
    for p, t in enumerate(texts):
        line = 0 if p < 4 else (1 if p < 7 else 2)
        sparse = p in (8, 9)
        ranges = [[0, 4], [7, p + 1]] if sparse else [[0, p + 1]]
        n = sum(b - a for a, b in ranges)
        rows.append({"pos": p, "id": 10 + p, "piece": t.replace(" ", "\u2581") or "<s>", "text": t,
                     "generated": p >= 4, "line": line, "mode": "sparse" if sparse else "dense",
                     "attended": ranges, "n_attended": n, "sparsity": 1 - n / (p + 1)})
    return rows


class SpanMapTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def check_map(self, svg: ET.Element, rows: list[dict]) -> None:
        """Every row group carries its trace ranges, and its cell rectangles draw exactly them."""
        groups = row_groups(svg)
        self.assertEqual(len(groups), len(rows))
        c = MAP_SIZE / len(rows)
        x0 = None
        for g, r in zip(groups, rows):
            self.assertEqual(int(g.get("data-pos")), r["pos"])
            self.assertEqual(g.get("data-mode"), r["mode"])
            want = [tuple(a) for a in r["attended"]]
            self.assertEqual(ranges_attr(g), want)
            rects = cell_rects(g)
            self.assertEqual(len(rects), len(want))
            if x0 is None:  # the first row attends from position 0
                x0 = float(rects[0].get("x"))
            for rect, (a, b) in zip(rects, want):
                self.assertAlmostEqual(float(rect.get("x")), x0 + a * c, delta=0.011)
                self.assertAlmostEqual(float(rect.get("width")), (b - a) * c, delta=0.011)
            title = g.find("s:title", NS).text
            self.assertIn(f"pos {r['pos']} ", title)
            self.assertIn(repr(r["piece"]), title)

    def test_known_trace(self):
        rows = known_trace()
        trace = os.path.join(self.dir, "t.jsonl")
        write_trace(trace, rows, {"summary": True, "mean_sparsity": 0.1})
        out = os.path.join(self.dir, "map.html")
        res = run_map(trace, out)
        self.assertEqual(res.returncode, 0, res.stderr)
        html = open(out, encoding="utf-8").read()
        self.assertTrue(html.startswith("<!DOCTYPE html>"))
        self.assertNotRegex(html, r"(src|href)=\"https?:")  # self-contained
        svg = svg_of(out)
        self.check_map(svg, rows)
        # line labels: one per line, with the line's text (anchors and lists included)
        labels = {int(t.get("data-line")): t.text for t in svg.findall(".//s:text[@class='lab']", NS)}
        self.assertEqual(labels, {0: "L0 1 + 2 [0]", 1: "L1 [-1] 3", 2: "L2 [0] 3 [1]"})
        # the prompt (positions 0..3) is shaded on both axes of the map
        c = MAP_SIZE / len(rows)
        shades = svg.findall(".//s:rect[@class='prompt']", NS)
        sizes = sorted((round(float(r.get("width")), 2), round(float(r.get("height")), 2)) for r in shades)
        self.assertIn((round(4 * c, 2), MAP_SIZE), sizes)
        self.assertIn((MAP_SIZE, round(4 * c, 2)), sizes)
        # the sparsity panel has one point per generated token, none for the prompt
        pts = svg.findall(".//s:circle", NS)
        self.assertEqual(sorted(int(p.get("data-pos")) for p in pts), list(range(4, 11)))
        self.assertEqual(sum(p.get("class") == "pt" for p in pts), 2)  # the sparse ones filled

    def test_svg_alone(self):
        rows = known_trace()
        trace = os.path.join(self.dir, "t.jsonl")
        write_trace(trace, rows)
        out = os.path.join(self.dir, "map.svg")
        res = run_map(trace, out, "--svg")
        self.assertEqual(res.returncode, 0, res.stderr)
        svg = ET.parse(out).getroot()  # a standalone, well-formed SVG document
        self.assertEqual(svg.tag, "{http://www.w3.org/2000/svg}svg")
        self.check_map(svg, rows)

    def test_long_trace_stays_small(self):
        # 4,096 positions with lines of 32 tokens, each sparse line attending 3 ranges
        rows = []
        for p in range(4096):
            line = p // 32
            sparse = line > 2 and p % 32 not in (0, 31)
            ranges = [[0, 16], [max(16, p - 200), max(17, p - 150)], [line * 32, p + 1]] if sparse else [[0, p + 1]]
            ranges = [r for r in ranges if r[0] < r[1]]
            merged = []
            for a, b in ranges:
                if merged and a <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], b)
                else:
                    merged.append([a, b])
            n = sum(b - a for a, b in merged)
            rows.append({"pos": p, "piece": "x", "text": "x\n" if p % 32 == 31 else "x", "line": line,
                         "generated": p >= 64, "mode": "sparse" if sparse else "dense", "attended": merged,
                         "n_attended": n, "sparsity": 1 - n / (p + 1)})
        trace = os.path.join(self.dir, "long.jsonl")
        write_trace(trace, rows)
        out = os.path.join(self.dir, "long.html")
        res = run_map(trace, out)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertLess(os.path.getsize(out), 4 << 20)
        svg = svg_of(out)
        self.assertEqual(len(row_groups(svg)), 4096)
        self.assertLess(len(list(svg.iter())), 40000)
        # labels never overlap: at most one per font height of the 720 px map
        self.assertLessEqual(len(svg.findall(".//s:text[@class='lab']", NS)), int(MAP_SIZE / 10) + 1)

    def test_bad_traces_are_errors(self):
        cases = {
            "garbage": ("not json\n", r"bad\.jsonl:1: not JSON"),
            "empty": ("", r"holds no position records"),
            "missing": ('{"pos": 0}\n', r"bad\.jsonl:1: not a trace record"),
            "order": ('{"pos": 1, "line": 0, "mode": "dense", "attended": [[0, 2]], "sparsity": 0}\n',
                      r"position 1, expected 0"),
            "range": ('{"pos": 0, "line": 0, "mode": "dense", "attended": [[0, 5]], "sparsity": 0}\n',
                      r"range \[0, 5\) is not sorted inside \[0, 1\)"),
        }
        for name, (text, msg) in cases.items():
            with self.subTest(name):
                trace = os.path.join(self.dir, "bad.jsonl")
                with open(trace, "w") as f:
                    f.write(text)
                res = run_map(trace, os.path.join(self.dir, "o.html"))
                self.assertEqual(res.returncode, 1)
                self.assertRegex(res.stderr, "sspan-spanmap: error: .*" + msg)
        res = run_map(os.path.join(self.dir, "absent.jsonl"), os.path.join(self.dir, "o.html"))
        self.assertEqual(res.returncode, 1)
        self.assertIn("cannot read trace", res.stderr)

    @unittest.skipUnless(GENERATE and MODEL, "needs sspan-generate and the shipped model")
    def test_real_traces_of_every_policy(self):
        prompt = os.path.join(self.dir, "p.txt")
        with open(prompt, "w") as f:
            f.write("(1 / (7 - 6)) - (2 / (9 - 3)) [0]\n")
        for policy in ("arith", "dense"):
            with self.subTest(policy):
                trace = os.path.join(self.dir, f"{policy}.jsonl")
                gen = subprocess.run([GENERATE, "-m", MODEL, "-f", prompt, "-n", "48", "--span", policy,
                                      "--span-trace", trace, "-q"], capture_output=True, text=True, timeout=120)
                self.assertEqual(gen.returncode, 0, gen.stderr)
                with open(trace) as f:
                    rows = [json.loads(l) for l in f if "\"summary\"" not in l]
                out = os.path.join(self.dir, f"{policy}.html")
                res = run_map(trace, out)
                self.assertEqual(res.returncode, 0, res.stderr)
                svg = svg_of(out)
                self.check_map(svg, rows)
                n_lines = len({r["line"] for r in rows})
                self.assertEqual(len(svg.findall(".//s:text[@class='lab']", NS)), n_lines)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]])
