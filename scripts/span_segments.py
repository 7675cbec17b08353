"""Span masks as segments of rows (stdlib only; the training representation of
scripts/train_data.py).

Row t of a span mask (span_rule.attended_ranges) is a sorted union of ranges whose last
one is the row's own part, [own_begin, t + 1). Consecutive rows with the same earlier
("fixed") ranges and the same own_begin form one segment (rb, re, own_begin, fixed):
rows rb..re-1 attend `fixed` plus [own_begin, t + 1). Dense rows are (.., .., 0, ()).
A line of an arith trace makes about three segments (its dense reference list, its
sparse rest, its dense newline).
"""
from __future__ import annotations


def row_segments(rows: list) -> list:
    """attended_ranges output for positions 0..T-1 -> [[rb, re, own_begin, fixed ranges]]."""
    segs: list = []
    for t, (_, ranges) in enumerate(rows):
        own_begin, own_end = ranges[-1]
        if own_end != t + 1:
            raise ValueError(f"span rule row {t} does not end at its own position: {ranges}")
        fixed = tuple(ranges[:-1])
        if segs and segs[-1][1] == t and segs[-1][2] == own_begin and segs[-1][3] == fixed:
            segs[-1][1] = t + 1
        else:
            segs.append([t, t + 1, own_begin, fixed])
    return segs


def segment_ranges(segs: list, n: int) -> list:
    """The inverse: the attended ranges of rows 0..n-1, as attended_ranges gives them."""
    out = []
    for rb, re_, own_begin, fixed in segs:
        for t in range(rb, min(re_, n)):
            out.append(list(fixed) + [(own_begin, t + 1)])
    if len(out) != n:
        raise ValueError(f"segments cover {len(out)} rows, expected {n}")
    return out
