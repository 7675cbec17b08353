#!/usr/bin/env python3
"""The span rule of docs/span-semantics.md in pure Python (stdlib only).

Given the text of every token of a sequence (position 0 is BOS with text ""), say for
each position t whether x_t is sparse and which key positions it attends to. Training
masks and reference comparisons use this module; the C++ engine (src/span/) implements
the same rule, and the two are compared on the engine's span traces.

Decisions where docs/span-semantics.md is silent (the C++ engine follows the same):
- A prompt line is a line whose first token is a prompt token.
- The anchor `[k]` of an `arith` line must lie after the line's reference list, so a
  line that is only `[3]` is a reference list, not an anchor. Spaces may surround k.
- Ids are decimal numbers of at most 9 digits; a longer id makes the list malformed
  (anchors with longer ids are no anchors).
- Lists: arith `[` item (`,` item)* `]` with item `-1` or an id; summary `(` item
  (`,` item)* `)` with item `a` or `a-b` (a <= b); spaces around items and around the
  parts of a range are ignored. Nothing else inside.
- summary implicit line: the most recent earlier line that began with a closed,
  well-formed reference list (even one naming unknown anchors).
- A token whose text holds several `\n` ends its line at the first one; the text after
  it starts the following line(s), which own no token until the next one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_ID_DIGITS = 9

GRAMMARS = ("arith", "summary")


@dataclass
class _Line:
    start: int                 # first position of the line
    end: int = -1              # one past its last position once ended, else -1
    text: str = ""             # text without the terminating newline
    anchor: int | None = None  # id this line defines (set when it ends)
    prompt: bool = False       # its first token is a prompt token
    has_list: bool = False     # began with a closed, well-formed reference list


@dataclass
class SpanEvents:
    sparse_lines: int = 0
    dense_fallbacks: int = 0
    unknown_anchors: int = 0
    malformed_lists: int = 0
    redefined_anchors: int = 0


@dataclass
class _ListState:
    # Resolution of the current line's reference list, decided when it closes.
    closed: bool = False
    ok: bool = False
    ranges: list = field(default_factory=list)  # [(begin, end)] of the referenced lines


_ARITH_ANCHOR = re.compile(r"\[ *([0-9]+) *\] *$")
_SUMMARY_ANCHOR = re.compile(r"^ *([0-9]+) *:")


def _list_open(grammar: str) -> str:
    return "[" if grammar == "arith" else "("


def _list_close(grammar: str) -> str:
    return "]" if grammar == "arith" else ")"


def _parse_id(s: str) -> int | None:
    s = s.strip(" ")
    if not s or not s.isascii() or not s.isdigit() or len(s) > MAX_ID_DIGITS:
        return None
    return int(s)


def _parse_items(body: str, grammar: str):
    """Items of a list body (text between the brackets) -> list of ('id', k) / ('prev',)
    / ('range', a, b), or None when malformed."""
    if body == "":
        return None
    items = []
    for raw in body.split(","):
        item = raw.strip(" ")
        if grammar == "arith":
            if item == "-1":
                items.append(("prev",))
                continue
            k = _parse_id(item)
            if k is None:
                return None
            items.append(("id", k))
        else:
            at = item.find("-")
            if at > 0:  # "a-b"; a leading '-' is no range (and no valid id)
                a, b = _parse_id(item[:at]), _parse_id(item[at + 1:])
                if a is None or b is None or a > b:
                    return None
                items.append(("range", a, b))
            else:
                k = _parse_id(item)
                if k is None:
                    return None
                items.append(("range", k, k))
    return items


def _line_anchor(text: str, grammar: str, list_len: int) -> int | None:
    """Anchor id a finished line defines. list_len: length of the leading reference list
    (leading spaces included) or 0."""
    if grammar == "arith":
        m = _ARITH_ANCHOR.search(text)
        if m is None or m.start() < list_len:
            return None
        return _parse_id(m.group(1))
    m = _SUMMARY_ANCHOR.match(text)
    return _parse_id(m.group(1)) if m else None


class SpanRule:
    """The span rule applied token by token (mirror of sspan::SpanState)."""

    def __init__(self, grammar: str):
        if grammar not in GRAMMARS:
            raise ValueError(f"unknown span grammar '{grammar}' (known: {', '.join(GRAMMARS)})")
        self.grammar = grammar
        self.events = SpanEvents()
        self.lines: list[_Line] = [_Line(start=0)]
        self.anchors: dict[int, int] = {}   # anchor id -> line index
        self.first_anchor_line: int | None = None
        self._list = _ListState()
        self._t = -1

    # ---- per-line helpers
    def _cur(self) -> _Line:
        return self.lines[-1]

    def _list_span(self, text: str) -> tuple[bool, int]:
        """(line began with a list, length of the list incl. leading spaces, 0 if open)."""
        stripped = text.lstrip(" ")
        if not stripped.startswith(_list_open(self.grammar)):
            return False, 0
        close = stripped.find(_list_close(self.grammar))
        if close < 0:
            return True, 0
        return True, len(text) - len(stripped) + close + 1

    def _header_ranges(self) -> list[tuple[int, int]]:
        out = [(0, 1)]
        for i, ln in enumerate(self.lines[:-1]):
            if self.first_anchor_line is not None and i >= self.first_anchor_line:
                break
            if ln.prompt and ln.end > ln.start:
                out.append((ln.start, ln.end))
        return out

    def _resolve_list(self, text: str) -> None:
        """Called once, when the current line's list has just closed."""
        st = self._list
        st.closed = True
        stripped = text.lstrip(" ")
        body = stripped[1:stripped.find(_list_close(self.grammar))]
        items = _parse_items(body, self.grammar)
        line_idx = len(self.lines) - 1
        if items is None:
            self.events.malformed_lists += 1
            self.events.dense_fallbacks += 1
            return
        self._cur().has_list = True
        ranges = []
        for it in items:
            if it[0] == "prev":
                if line_idx == 0:
                    self.events.unknown_anchors += 1
                    self.events.dense_fallbacks += 1
                    return
                ranges.append(line_idx - 1)
                continue
            ids = [it[1]] if it[0] == "id" else range(it[1], it[2] + 1)
            for k in ids:
                if k not in self.anchors:
                    self.events.unknown_anchors += 1
                    self.events.dense_fallbacks += 1
                    return
                ranges.append(self.anchors[k])
        st.ok = True
        st.ranges = [(self.lines[i].start, self.lines[i].end) for i in ranges]
        if self.grammar == "summary":
            for i in range(line_idx - 1, -1, -1):
                if self.lines[i].has_list:
                    st.ranges.append((self.lines[i].start, self.lines[i].end))
                    break
        self.events.sparse_lines += 1

    def _end_line(self, t: int) -> None:
        ln = self._cur()
        ln.end = t + 1
        began, list_len = self._list_span(ln.text)
        if began and not self._list.closed:
            # unterminated list: the whole line was dense
            self.events.malformed_lists += 1
            self.events.dense_fallbacks += 1
        anchor = _line_anchor(ln.text, self.grammar, list_len if began else 0)
        idx = len(self.lines) - 1
        if anchor is not None:
            ln.anchor = anchor
            if anchor in self.anchors:
                self.events.redefined_anchors += 1
            self.anchors[anchor] = idx
            if self.first_anchor_line is None:
                self.first_anchor_line = idx
        self.lines.append(_Line(start=t + 1))
        self._list = _ListState()

    # ---- the rule
    def push(self, text: str, n_prompt: int) -> tuple[bool, list[tuple[int, int]]]:
        """Process the next token; returns (sparse, sorted merged half-open ranges)."""
        self._n_prompt = n_prompt
        self._t += 1
        t = self._t
        line = self._cur()
        if line.start == t:
            line.prompt = t < n_prompt
        own_start = line.start
        nl = text.find("\n")
        ends_line = nl >= 0
        line.text += text if not ends_line else text[:nl]
        if not self._list.closed:
            began, list_len = self._list_span(line.text)
            if began and list_len > 0:
                self._resolve_list(line.text)
        sparse = (not ends_line) and self._list.closed and self._list.ok
        if sparse:
            ranges = self._header_ranges() + self._list.ranges + [(own_start, t + 1)]
            result = (True, _merge(ranges))
        else:
            result = (False, [(0, t + 1)])
        if ends_line:
            self._end_line(t)
            rest = text[nl + 1:]
            # further newlines inside the same token end tokenless lines
            while "\n" in rest:
                piece, _, rest = rest.partition("\n")
                self._cur().text += piece
                self._end_line(t)
            self._cur().text += rest
        return result


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for b, e in sorted(r for r in ranges if r[1] > r[0]):
        if out and b <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([b, e])
    return [(b, e) for b, e in out]


def attended_ranges(token_texts: list[str], n_prompt: int, grammar: str,
                    events: SpanEvents | None = None) -> list[tuple[bool, list[tuple[int, int]]]]:
    """For each position: (sparse?, sorted merged half-open attended ranges incl. t).

    token_texts[0] is BOS (""); positions < n_prompt are prompt tokens (BOS included).
    Pass a SpanEvents to receive the event counts."""
    rule = SpanRule(grammar)
    out = [rule.push(tx, n_prompt) for tx in token_texts]
    if events is not None:
        for k, v in vars(rule.events).items():
            setattr(events, k, v)
    return out


def mask_matrix(token_texts: list[str], n_prompt: int, grammar: str):
    """T x T attention mask, row t = keys of x_t (True = attend). A torch bool tensor when
    torch is importable, else a list of lists of bool."""
    rows = attended_ranges(token_texts, n_prompt, grammar)
    n = len(rows)
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        torch = None
    if torch is not None:
        m = torch.zeros((n, n), dtype=torch.bool)  # [T, T]
        for t, (_, ranges) in enumerate(rows):
            for b, e in ranges:
                m[t, b:e] = True
        return m
    m = [[False] * n for _ in range(n)]
    for t, (_, ranges) in enumerate(rows):
        for b, e in ranges:
            for j in range(b, e):
                m[t][j] = True
    return m


def _self_test() -> None:
    fig5_prompt = "(42 * 56) + (5 * 32) [0]\n"
    fig5_completion = ("[-1] 42 * 56=42 * (50 + 6)=2100 + 252=2352\n"
                       "[-1] So 42 * 56=2352 [1]\n"
                       "[0,1] 5 * 32=160 [2]\n"
                       "[0,1,2] 2512")
    # one token per character keeps line boundaries easy to read
    texts = [""] + list(fig5_prompt) + list(fig5_completion)
    n_prompt = 1 + len(fig5_prompt)
    ev = SpanEvents()
    rows = attended_ranges(texts, n_prompt, "arith", ev)
    line_starts = [0]
    pos = 1
    for ch in (fig5_prompt + fig5_completion):
        pos += 1
        if ch == "\n":
            line_starts.append(pos)
    _, l1, l2, l3, l4 = line_starts
    # "[-1]" of line 1: tokens up to "]" are dense; "]" is sparse: BOS + line 0 + own
    close1 = l1 + 3
    assert rows[close1 - 1] == (False, [(0, close1)]), rows[close1 - 1]
    assert rows[close1] == (True, [(0, close1 + 1)]), rows[close1]
    # line 3 "[0,1] ...": header BOS, line 0, line 2 (anchor 1), own line
    close3 = l3 + 4
    assert rows[close3] == (True, [(0, l1), (l2, l3 + 5)]), rows[close3]
    # its newline is dense
    assert rows[l4 - 1] == (False, [(0, l4)]), rows[l4 - 1]
    # last line "[0,1,2] 2512": BOS+line0, line 2, line 3, own line (contiguous from l2)
    last = len(texts) - 1
    assert rows[last] == (True, [(0, l1), (l2, last + 1)]), rows[last]
    assert ev.sparse_lines == 4 and ev.dense_fallbacks == 0, ev
    m = mask_matrix(texts, n_prompt, "arith")
    for t, (_, ranges) in enumerate(rows):
        want = [any(b <= j < e for b, e in ranges) for j in range(len(texts))]
        assert [bool(x) for x in m[t]] == want, t
    # errors: unknown anchor and malformed list fall back to dense
    ev = SpanEvents()
    bad = [""] + list("1 + 2 [0]\n[5] x\n[0,,1] y\n[0 z\n")
    rows = attended_ranges(bad, 11, "arith", ev)
    assert all(not s for s, _ in rows), rows
    assert ev.unknown_anchors == 1 and ev.malformed_lists == 2 and ev.dense_fallbacks == 3, ev
    # summary grammar: header is the instruction line, implicit previous summary line
    summ = ["", "Summarize:\n", "0 : A .\n", "1 : B .\n", "(0-1)", " X", ".\n", "(1)", " Y", "."]
    rows = attended_ranges(summ, 4, "summary")
    assert rows[4] == (True, [(0, 5)]), rows[4]
    assert rows[8] == (True, [(0, 2), (3, 9)]), rows[8]
    print("span_rule self-test: ok")


if __name__ == "__main__":
    _self_test()
