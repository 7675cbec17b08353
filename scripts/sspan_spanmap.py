#!/usr/bin/env python3
"""sspan-spanmap: draw a span trace (sspan-generate --span-trace) as a picture.

    sspan-spanmap TRACE.jsonl -o map.html      one self-contained HTML page (inline SVG)
    sspan-spanmap TRACE.jsonl --svg -o map.svg the static picture alone

The picture has two panels:
  (a) attention sparsity of every processed token against its position (the paper's
      Figure 8): generated tokens as points (filled: sparse, hollow: dense), the prompt
      shaded;
  (b) the attention map: one row per processed token, one column per position, the
      attended positions filled. Rows and columns of the prompt are shaded, lines are
      separated and labelled with their text (anchors and reference lists included).
      Hovering a row shows its position, piece, line, mode and attended ranges.

Every row's attended set is drawn as one rectangle per range, never per cell, so a
4k-token trace stays a few thousand elements; the map is scaled to a fixed size, so
positions are downsampled once the trace is longer than the map is wide.
Standard library only; the page needs no network.
"""
from __future__ import annotations

import argparse
import html
import json
import sys
from dataclasses import dataclass, field

MAP_SIZE = 720.0      # px, the attention map's width and height
PLOT_HEIGHT = 160.0   # px, the sparsity panel
LABEL_WIDTH = 260.0   # px, line labels left of the map
MARGIN = 40.0
LABEL_FONT = 10.0


class TraceError(Exception):
    """A trace file that cannot be drawn; the message names the file and line."""


@dataclass
class Row:
    pos: int
    piece: str
    text: str
    line: int
    sparse: bool
    generated: bool | None
    ranges: list[tuple[int, int]]
    sparsity: float


@dataclass
class Trace:
    rows: list[Row]
    summary: dict = field(default_factory=dict)

    @property
    def prompt_end(self) -> int:
        """First generated position; the whole trace when the trace does not say."""
        for r in self.rows:
            if r.generated:
                return r.pos
        return len(self.rows) if any(r.generated is not None for r in self.rows) else 0

    def lines(self) -> list[tuple[int, int, int, str]]:
        """(line index, first row, end row, text) of every line, in order."""
        out: list[tuple[int, int, int, str]] = []
        for i, r in enumerate(self.rows):
            if out and out[-1][0] == r.line:
                idx, first, _, text = out[-1]
                out[-1] = (idx, first, i + 1, text + r.text)
            else:
                out.append((r.line, i, i + 1, r.text))
        return out


def piece_text(piece: str) -> str:
    """The text of a SentencePiece piece, for traces written without a `text` key."""
    if piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
        try:
            return bytes([int(piece[3:5], 16)]).decode("latin-1")
        except ValueError:
            return piece
    if piece in ("<s>", "</s>", "<unk>"):
        return ""
    return piece.replace("\u2581", " ")


def read_trace(path: str) -> Trace:
    rows: list[Row] = []
    summary: dict = {}
    try:
        f = sys.stdin if path == "-" else open(path, encoding="utf-8", errors="replace")
    except OSError as e:
        raise TraceError(f"cannot read trace '{path}': {e.strerror}") from None
    with f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                j = json.loads(line)
            except json.JSONDecodeError as e:
                raise TraceError(f"{where}: not JSON ({e.msg})") from None
            if not isinstance(j, dict):
                raise TraceError(f"{where}: expected a JSON object")
            if j.get("summary"):
                summary = j
                continue
            try:
                pos = j["pos"]
                ranges = [(int(a), int(b)) for a, b in j["attended"]]
                row = Row(pos=int(pos), piece=str(j.get("piece", "")),
                          text=str(j["text"]) if "text" in j else piece_text(str(j.get("piece", ""))),
                          line=int(j["line"]), sparse=j["mode"] == "sparse",
                          generated=bool(j["generated"]) if "generated" in j else None,
                          ranges=ranges, sparsity=float(j["sparsity"]))
            except (KeyError, TypeError, ValueError) as e:
                raise TraceError(f"{where}: not a trace record (pos, line, mode, attended, sparsity): {e}") from None
            if row.pos != len(rows):
                raise TraceError(f"{where}: position {row.pos}, expected {len(rows)} (one record per position, in order)")
            prev = 0
            for a, b in row.ranges:
                if not (prev <= a < b <= row.pos + 1):
                    raise TraceError(f"{where}: attended range [{a}, {b}) is not sorted inside [0, {row.pos + 1})")
                prev = b
            rows.append(row)
    if not rows:
        raise TraceError(f"trace '{path}' holds no position records")
    return Trace(rows, summary)


def fmt_ranges(ranges: list[tuple[int, int]]) -> str:
    return " ".join(f"[{a},{b - 1}]" if b - a > 1 else f"[{a}]" for a, b in ranges)


def num(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


class Svg:
    """A tiny SVG writer: elements appended as strings, escaped where text goes in."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, s: str) -> None:
        self.parts.append(s)

    def rect(self, x, y, w, h, cls: str, extra: str = "") -> None:
        self.add(f'<rect class="{cls}" x="{num(x)}" y="{num(y)}" width="{num(w)}" height="{num(h)}"{extra}/>')

    def text(self, x, y, s: str, cls: str, anchor: str = "start") -> None:
        self.add(f'<text class="{cls}" x="{num(x)}" y="{num(y)}" text-anchor="{anchor}">{html.escape(s)}</text>')


STYLE = """
.bg{fill:#ffffff}.prompt{fill:#e8eef7}.cell{fill:#1f4e99}.cell.dense{fill:#8a8a8a}
.sep{stroke:#c33;stroke-width:0.5;stroke-opacity:0.6}.axis{stroke:#333;stroke-width:1;fill:none}
.grid{stroke:#ddd;stroke-width:0.5}.lab{font:10px monospace;fill:#222}.tick{font:10px sans-serif;fill:#444}
.title{font:bold 12px sans-serif;fill:#111}.pt{fill:#1f4e99}.pt.dense{fill:#fff;stroke:#8a8a8a;stroke-width:1}
.row:hover .cell{fill:#e07b00}.row .hit{fill:transparent}
"""


def sparsity_panel(svg: Svg, t: Trace, x0: float, y0: float, width: float) -> None:
    T = len(t.rows)
    P = t.prompt_end
    sx = width / T
    svg.text(x0, y0 - 8, "(a) attention sparsity of each token (1 - |S_t| / (t+1))", "title")
    svg.rect(x0, y0, width, PLOT_HEIGHT, "bg")
    if P > 0:
        svg.rect(x0, y0, P * sx, PLOT_HEIGHT, "prompt")
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = y0 + PLOT_HEIGHT * (1 - v)
        svg.add(f'<line class="grid" x1="{num(x0)}" y1="{num(y)}" x2="{num(x0 + width)}" y2="{num(y)}"/>')
        svg.text(x0 - 4, y + 3, f"{v:.2f}", "tick", "end")
    r = max(0.8, min(2.5, sx / 2))
    for row in t.rows:
        if row.generated is False:
            continue
        cx = x0 + (row.pos + 0.5) * sx
        cy = y0 + PLOT_HEIGHT * (1 - row.sparsity)
        cls = "pt" if row.sparse else "pt dense"
        svg.add(f'<circle class="{cls}" data-pos="{row.pos}" cx="{num(cx)}" cy="{num(cy)}" r="{num(r)}"/>')
    svg.add(f'<rect class="axis" x="{num(x0)}" y="{num(y0)}" width="{num(width)}" height="{num(PLOT_HEIGHT)}"/>')
    position_ticks(svg, x0, y0 + PLOT_HEIGHT + 12, T, sx)


def position_ticks(svg: Svg, x0: float, y: float, T: int, sx: float) -> None:
    step = 1
    while T / step > 10:
        step *= 5 if str(step).startswith("2") else 2
    for p in range(0, T + 1, step):
        svg.text(x0 + p * sx, y, str(p), "tick", "middle")


def attention_map(svg: Svg, t: Trace, x0: float, y0: float) -> None:
    T = len(t.rows)
    P = t.prompt_end
    c = MAP_SIZE / T  # px per position, both axes
    svg.text(x0, y0 - 8, "(b) attention map: row = processed token, column = position attended", "title")
    svg.rect(x0, y0, MAP_SIZE, MAP_SIZE, "bg")
    if P > 0:  # prompt rows and prompt columns
        svg.rect(x0, y0, MAP_SIZE, P * c, "prompt")
        svg.rect(x0, y0, P * c, MAP_SIZE, "prompt")
    svg.add('<g class="rows">')
    for i, row in enumerate(t.rows):
        y = y0 + i * c
        tip = (f"pos {row.pos} | line {row.line} | {'sparse' if row.sparse else 'dense'} | "
               f"piece {row.piece!r} | attends {fmt_ranges(row.ranges)} "
               f"({sum(b - a for a, b in row.ranges)} of {row.pos + 1}, sparsity {row.sparsity:.3f})")
        data = ",".join(f"{a}-{b}" for a, b in row.ranges)
        svg.add(f'<g class="row" data-pos="{row.pos}" data-line="{row.line}" data-mode="{"sparse" if row.sparse else "dense"}" '
                f'data-ranges="{data}"><title>{html.escape(tip)}</title>')
        svg.rect(x0, y, MAP_SIZE, c, "hit")
        cls = "cell" if row.sparse else "cell dense"
        for a, b in row.ranges:
            svg.rect(x0 + a * c, y, (b - a) * c, c, cls)
        svg.add("</g>")
    svg.add("</g>")
    # Line boundaries and labels; labels that would overlap the previous one are left out.
    last_label_y = -1e9
    for idx, first, _end, text in t.lines():
        y = y0 + first * c
        if first > 0:
            svg.add(f'<line class="sep" x1="{num(x0 - LABEL_WIDTH)}" y1="{num(y)}" x2="{num(x0 + MAP_SIZE)}" y2="{num(y)}"/>')
        if y - last_label_y >= LABEL_FONT + 1:
            label = text.replace("\n", " ").strip()
            label = label if len(label) <= 40 else label[:39] + "\u2026"
            svg.add(f'<text class="lab" data-line="{idx}" x="{num(x0 - 6)}" y="{num(y + LABEL_FONT)}" '
                    f'text-anchor="end">{html.escape(f"L{idx} {label}")}</text>')
            last_label_y = y
    svg.add(f'<rect class="axis" x="{num(x0)}" y="{num(y0)}" width="{num(MAP_SIZE)}" height="{num(MAP_SIZE)}"/>')
    position_ticks(svg, x0, y0 + MAP_SIZE + 12, T, c)


def render_svg(t: Trace) -> str:
    x0 = MARGIN + LABEL_WIDTH
    y_plot = MARGIN
    y_map = y_plot + PLOT_HEIGHT + 2 * MARGIN
    width = x0 + MAP_SIZE + MARGIN
    height = y_map + MAP_SIZE + MARGIN
    svg = Svg()
    svg.add(f'<svg xmlns="http://www.w3.org/2000/svg" width="{num(width)}" height="{num(height)}" '
            f'viewBox="0 0 {num(width)} {num(height)}" shape-rendering="crispEdges">')
    svg.add(f"<style>{STYLE}</style>")
    svg.rect(0, 0, width, height, "bg")
    sparsity_panel(svg, t, x0, y_plot, MAP_SIZE)
    attention_map(svg, t, x0, y_map)
    svg.add("</svg>")
    return "\n".join(svg.parts)


def render_html(t: Trace, source: str) -> str:
    gen = [r for r in t.rows if r.generated is not False]
    mean = t.summary.get("mean_sparsity", sum(r.sparsity for r in gen) / max(1, len(gen)))
    sparse = sum(r.sparse for r in gen)
    stats = (f"{len(t.rows)} positions ({t.prompt_end} prompt) | mean sparsity {mean:.3f} | "
             f"sparse {sparse}, dense {len(gen) - sparse} tokens")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
        f"<title>span map: {html.escape(source)}</title>"
        "<style>body{font:13px sans-serif;margin:16px;color:#111}p{margin:4px 0}</style></head><body>\n"
        f"<h3>span map: {html.escape(source)}</h3>\n<p>{html.escape(stats)}</p>\n"
        "<p>Shaded: the prompt. Blue: attended by a sparse token; grey: by a dense token. "
        "Hover a row for its piece and attended ranges.</p>\n"
        + render_svg(t) + "\n</body></html>\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sspan-spanmap", description=__doc__.split("\n\n")[0])
    ap.add_argument("trace", help="a --span-trace JSONL file ('-' for stdin)")
    ap.add_argument("-o", "--output", required=True, help="output file (.html, or .svg with --svg)")
    ap.add_argument("--svg", action="store_true", help="write the static SVG picture alone")
    a = ap.parse_args(argv)
    try:
        t = read_trace(a.trace)
        out = render_svg(t) + "\n" if a.svg else render_html(t, a.trace)
        with open(a.output, "w", encoding="utf-8") as f:
            f.write(out)
    except TraceError as e:
        print(f"sspan-spanmap: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"sspan-spanmap: error: cannot write '{a.output}': {e.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
