#!/usr/bin/env python3
"""Render a span map in headless Chromium and check the picture is not blank: the map's
cell colour and the prompt shading are both on screen. Exits 77 (ctest: skipped) when no
Chromium is installed.

usage: spanmap_render_test.py SPANMAP_SCRIPT SSPAN_GENERATE MODEL_DIR PROMPT_FILE
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

SKIP = 77
CELL = (0x1F, 0x4E, 0x99)    # .cell, attended by a sparse token
PROMPT = (0xE8, 0xEE, 0xF7)  # .prompt shading


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def read_png(path: str) -> tuple[int, int, list[bytes]]:
    """(width, height, RGB rows) of an 8-bit RGB or RGBA PNG."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            if depth != 8 or color not in (2, 6):
                raise ValueError(f"unsupported PNG depth {depth} colour type {color}")
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line[j] for j in range(stride) if j % channels < 3))
        prev = line
    return width, height, rows


def main() -> int:
    script, generate, model, prompt = sys.argv[1:5]
    chromium = find_chromium()
    if not chromium:
        print("skipped: no Chromium installed (Debian package `chromium`)")
        return SKIP
    with tempfile.TemporaryDirectory() as tmp:
        trace = os.path.join(tmp, "trace.jsonl")
        subprocess.run([generate, "-m", model, "-f", prompt, "--span", "arith", "--span-trace", trace, "-q"],
                       check=True, timeout=300, stdout=subprocess.DEVNULL)
        page = os.path.join(tmp, "map.html")
        subprocess.run([sys.executable, script, trace, "-o", page], check=True, timeout=120)
        png = os.path.join(tmp, "map.png")
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={tmp}/profile", "--window-size=1120,1200", f"--screenshot={png}",
                        "file://" + page], capture_output=True, timeout=120, check=True)
        w, h, rows = read_png(png)
        counts = {CELL: 0, PROMPT: 0}
        distinct = set()
        for r in rows:
            for i in range(0, len(r), 3):
                px = (r[i], r[i + 1], r[i + 2])
                distinct.add(px)
                if px in counts:
                    counts[px] += 1
        print(f"{w}x{h} screenshot: {len(distinct)} colours, {counts[CELL]} cell pixels, {counts[PROMPT]} prompt pixels")
        if len(distinct) < 8 or counts[CELL] < 500 or counts[PROMPT] < 500:
            print("FAILED: the rendered span map looks blank")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
