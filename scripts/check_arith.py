#!/usr/bin/env python3
"""Independent checker for sspan-datagen arith records (docs/datasets.md, "arith").

Re-evaluates every line of every trace: each `=` chain is numerically consistent, each
step solves the next ready operation of the expression (post-order) with the right
value, multi-digit products and quotients are split as documented, every reference list
names existing lines and exactly the lines the step needs (the task line [0] plus the
live results; "[-1]" for the previous line), anchors are unique and increasing, and the
final line equals the expression's value and the record's answer.

The `lines` layout (a left chain, one operation per prompt line "op b [k]", the last one
"op b = [k]") is recognised by its prompt of several lines: step k must name exactly
prompt line k and the line before it ("[0,1]" for the first step, "[-1,k]" after it),
and the last step is followed by its value on a line of its own, "[-1] v".

Usage: check_arith.py FILE.jsonl [...]   (stdlib only; exits 1 on the first failure)
"""
import json
import re
import sys

REFS = re.compile(r"^\[(-1|\d+(?:,\d+)*)\] ")
ANCHOR = re.compile(r" \[(\d+)\]$")
INT = r"-?\d+"


class CheckError(Exception):
    pass


def floor_div(a, b):
    if b == 0:
        raise CheckError("division by zero")
    return a // b  # Python's // is floor division


def apply(op, a, b):
    return {"+": a + b, "-": a - b, "*": a * b, "/": None}[op] if op != "/" else floor_div(a, b)


# ---- expressions: integers, + - * /, parentheses, unary minus on literals
def tokenize(text):
    toks = re.findall(r"\d+|[-+*/()]|\S", text)
    for t in toks:
        if not (t.isdigit() or t in "+-*/()"):
            raise CheckError(f"unexpected character '{t}' in '{text}'")
    return toks


class Parser:
    """Builds a tree: ("num", v) or (op, lhs, rhs)."""

    def __init__(self, text):
        self.toks, self.i, self.text = tokenize(text), 0, text

    def parse(self):
        node = self.sum()
        if self.i != len(self.toks):
            raise CheckError(f"trailing '{self.toks[self.i]}' in '{self.text}'")
        return node

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else None

    def sum(self):
        node = self.product()
        while self.peek() in ("+", "-"):
            op = self.toks[self.i]
            self.i += 1
            node = (op, node, self.product())
        return node

    def product(self):
        node = self.atom()
        while self.peek() in ("*", "/"):
            op = self.toks[self.i]
            self.i += 1
            node = (op, node, self.atom())
        return node

    def atom(self):
        t = self.peek()
        if t == "(":
            self.i += 1
            node = self.sum()
            if self.peek() != ")":
                raise CheckError(f"missing ')' in '{self.text}'")
            self.i += 1
            return node
        if t == "-" and self.i + 1 < len(self.toks) and self.toks[self.i + 1].isdigit():
            self.i += 2
            return ("num", -int(self.toks[self.i - 1]))
        if t is not None and t.isdigit():
            self.i += 1
            return ("num", int(t))
        if t == "-":  # unary minus on a parenthesised group
            self.i += 1
            return ("-", ("num", 0), self.atom())
        raise CheckError(f"expected a number in '{self.text}'")


def evaluate(node):
    if node[0] == "num":
        return node[1]
    return apply(node[0], evaluate(node[1]), evaluate(node[2]))


def value_of(text):
    return evaluate(Parser(text).parse())


def check_chain(text):
    """All parts of 'x=y=z' evaluate equal; returns the common value."""
    parts = text.split("=")
    values = [value_of(p) for p in parts]
    for p, v in zip(parts[1:], values[1:]):
        if v != values[0]:
            raise CheckError(f"'{parts[0]}' is {values[0]} but '{p}' is {v}")
    return values[0]


def place_terms(v):
    digits = str(abs(v))
    return [int(d) * 10 ** (len(digits) - 1 - k) for k, d in enumerate(digits) if d != "0"]


def digit_like(v):
    return len(place_terms(v)) <= 1


def needs_split(op, a, b):
    if op == "*":
        return not digit_like(a) and not digit_like(b)
    if op == "/":
        return abs(a) >= 10 and abs(b) >= 10 and abs(a) >= abs(b)
    return False


# ---- the split forms
def check_product_split(body, a, b):
    parts = body.split("=")
    if len(parts) < 3 or parts[0] != f"{a} * {b}":
        raise CheckError(f"product split must start '{a} * {b}=', got '{body}'")
    split_a = len(str(abs(a))) < len(str(abs(b)))
    kept, split = (b, a) if split_a else (a, b)
    terms = [t if split >= 0 else -t for t in place_terms(split)]
    want = f"{kept} * (" + " + ".join(str(t) for t in terms) + ")"
    if parts[1] != want:
        raise CheckError(f"split should be '{want}', got '{parts[1]}'")
    partial = [kept * t for t in terms]
    rest = parts[2:]
    while True:
        want = " + ".join(str(p) for p in partial)
        if not rest or rest[0] != want:
            raise CheckError(f"expected '{want}' in the product split, got '{rest[0] if rest else ''}'")
        rest = rest[1:]
        if len(partial) == 1:
            break
        partial = [partial[0] + partial[1]] + partial[2:]
    if rest:
        raise CheckError(f"product split continues after its value: '{'='.join(rest)}'")
    for p in parts:
        value_of(p)
    return check_chain(body)


def check_quotient_split(body, a, b):
    head = f"{a} / {b}: "
    if not body.startswith(head):
        raise CheckError(f"quotient split must start '{head}', got '{body}'")
    clauses = body[len(head):].split(", ")
    if len(clauses) < 2 or not clauses[-1].startswith("so "):
        raise CheckError(f"quotient split must end with ', so {a} / {b}=...'")
    A, B = abs(a), abs(b)
    rem, mults, last_place = A, [], None
    for c in clauses[:-1]:
        m = re.fullmatch(rf"(\d+) - (\d+) \* (\d+)=(\d+) - (\d+)=({INT})", c)
        if not m:
            raise CheckError(f"bad subtraction clause '{c}'")
        r, bb, mult, r2, prod, nxt = (int(x) for x in m.groups())
        check_chain(c)
        if r != rem or r2 != rem or bb != B:
            raise CheckError(f"clause '{c}' should subtract from {rem} multiples of {B}")
        place = 10 ** (len(str(mult)) - 1)
        d = mult // place
        if mult != d * place or d == 0 or (last_place is not None and place >= last_place):
            raise CheckError(f"clause '{c}': multiplier {mult} is not a digit at a lower place")
        if d != rem // (B * place):
            raise CheckError(f"clause '{c}': greedy digit at place {place} is {rem // (B * place)}")
        rem, last_place = nxt, place
        mults.append(mult)
    if not 0 <= rem < B:
        raise CheckError(f"remainder {rem} is not in [0, {B})")
    for place in [10 ** k for k in range(len(str(A)))]:
        if (last_place is None or place < last_place) and rem >= B * place:
            raise CheckError(f"remainder {rem} still holds {B} * {place}")
    so = clauses[-1][3:]
    value = check_chain(so)
    if not so.startswith(f"{a} / {b}="):
        raise CheckError(f"'{clauses[-1]}' must restate '{a} / {b}'")
    q0 = sum(mults)
    negative = (a < 0) != (b < 0)
    want = q0 if not negative else (-q0 if rem == 0 else -(q0 + 1))
    if value != want or value != floor_div(a, b):
        raise CheckError(f"quotient {value}, expected {floor_div(a, b)}")
    return value


# ---- the trace
class Trace:
    def __init__(self, expr_text):
        self.root = Parser(expr_text).parse()
        self.done = {}  # id(node) -> anchor of its result line (or None for the final)

    def next_ready(self):
        """(node, a, b) of the post-order next operation."""
        def walk(node):
            if node[0] == "num" or id(node) in self.done:
                return None
            for child in (node[1], node[2]):
                found = walk(child)
                if found:
                    return found
            return node
        node = walk(self.root)
        if node is None:
            raise CheckError("the expression is already solved")
        return node, self.value(node[1]), self.value(node[2])

    def value(self, node):
        return evaluate(node)

    def children_anchors(self, node):
        return [self.done[id(c)] for c in (node[1], node[2]) if c[0] != "num"]


PROMPT_OP_LINE = re.compile(r"([-+*/]) (-?\d+)( =)? \[(\d+)\]")


def check_lines_record(rec):
    """The lines layout: returns the number of trace lines."""
    prompt = rec["prompt"]
    if not prompt.endswith("\n"):
        raise CheckError("prompt must end with a newline", 0)
    plines = prompt[:-1].split("\n")
    first = re.fullmatch(r"(-?\d+) \[0\]", plines[0])
    if not first:
        raise CheckError(f"prompt line 0 must be 'NUMBER [0]', got '{plines[0]}'", 0)
    n = len(plines) - 1
    ops = []
    for k, line in enumerate(plines[1:], 1):
        m = PROMPT_OP_LINE.fullmatch(line)
        if not m:
            raise CheckError(f"prompt line {k} must be 'op NUMBER [{k}]', got '{line}'", 0)
        if int(m.group(4)) != k:
            raise CheckError(f"prompt line {k} carries anchor [{m.group(4)}]", 0)
        if bool(m.group(3)) != (k == n):
            raise CheckError(f"prompt line {k}: only the last operation line ends with ' ='", 0)
        ops.append((m.group(1), int(m.group(2))))
    lines = rec["completion"].split("\n")
    value, i = int(first.group(1)), 0
    for k, (op, b) in enumerate(ops, 1):
        if i >= len(lines):
            raise CheckError(f"the trace ends before step {k}", len(lines))
        refs = "[0,1] " if k == 1 else f"[-1,{k}] "
        try:
            if not lines[i].startswith(refs):
                raise CheckError(f"step {k} must start '{refs}' (its operation's line and the line before)")
            body = lines[i][len(refs):]
            v = apply(op, value, b)
            if needs_split(op, value, b):
                got = check_product_split(body, value, b) if op == "*" else check_quotient_split(body, value, b)
                if got != v:
                    raise CheckError(f"split gives {got}, {value} {op} {b} is {v}")
                i += 1
                want = f"[-1] So {value} {op} {b}={v}"
                if i >= len(lines) or lines[i] != want:
                    raise CheckError(f"expected '{want}' after the split")
            elif body != f"{value} {op} {b}={v}":
                raise CheckError(f"expected '{value} {op} {b}={v}', got '{body}'")
        except CheckError as e:
            raise CheckError(str(e), i + 1) from None
        value, i = v, i + 1
    # the last step is written out like the others; its value follows on a line of its own
    if i >= len(lines) or lines[i] != f"[-1] {value}":
        raise CheckError(f"the value line '[-1] {value}' must follow the last step", i + 1)
    i += 1
    if i != len(lines):
        raise CheckError("the trace continues after the final line", i + 1)
    if str(rec["answer"]) != str(value):
        raise CheckError(f"answer {rec['answer']}, the chain is {value}", len(lines))
    for num in re.findall(r"\d+", prompt + rec["completion"]):
        if len(num) > 10:
            raise CheckError(f"number {num} has more than 10 digits", len(lines))
    return len(lines)


def check_record(rec):
    for key in ("prompt", "completion", "answer"):
        if key not in rec:
            raise CheckError(f"missing '{key}'", 0)
    prompt = rec["prompt"]
    if "\n" in prompt[:-1]:
        return check_lines_record(rec)
    if not prompt.endswith(" [0]\n") or "\n" in prompt[:-1]:
        raise CheckError("prompt must be one line ending with ' [0]\\n'", 0)
    trace = Trace(prompt[:-len(" [0]\n")])
    expected_value = evaluate(trace.root)
    lines = rec["completion"].split("\n")
    anchor_line = {0: 0}  # anchor -> line number (the prompt line is line 0)
    live = []
    pending_split = None  # (node, a, op, b, value) waiting for its "So" line
    prev_anchor = 0
    for n, line in enumerate(lines, start=1):
        try:
            m = REFS.match(line)
            if not m:
                raise CheckError("line does not start with a reference list")
            refs = [int(x) for x in m.group(1).split(",")]
            for r in refs:
                if r != -1 and r not in anchor_line:
                    raise CheckError(f"reference [{r}] names no earlier line")
            named = sorted({n - 1 if r == -1 else anchor_line[r] for r in refs})
            rest = line[m.end():]
            am = ANCHOR.search(rest)
            anchor = int(am.group(1)) if am else None
            body = rest[:am.start()] if am else rest
            last = n == len(lines)
            if pending_split is not None:
                node, a, op, b, value = pending_split
                if named != [n - 1]:
                    raise CheckError("the line after a split must reference only it ([-1])")
                want = str(value) if last else f"So {a} {op} {b}={value}"
                if body != want:
                    raise CheckError(f"expected '{want}', got '{body}'")
                pending_split = None
                if last:
                    if anchor is not None:
                        raise CheckError("the final line carries no anchor")
                    final = value
                    break
                result_node = node
            else:
                node, a, b = trace.next_ready()
                op = node[0]
                state = [0] + live
                want_named = sorted(anchor_line[x] for x in state)
                if named != want_named:
                    raise CheckError(f"references name lines {named}, the step needs lines {want_named}")
                if len(state) == 1 and prev_anchor == state[0] and refs != [-1]:
                    raise CheckError("a step needing only the previous line writes [-1]")
                for x in trace.children_anchors(node):
                    live.remove(x)
                value = apply(op, a, b)
                if needs_split(op, a, b):
                    got = check_product_split(body, a, b) if op == "*" else check_quotient_split(body, a, b)
                    if got != value:
                        raise CheckError(f"split gives {got}, {a} {op} {b} is {value}")
                    if anchor is not None:
                        raise CheckError("a split line carries no anchor")
                    pending_split = (node, a, op, b, value)
                    trace.done[id(node)] = None
                    prev_anchor = None
                    continue
                if last:
                    if anchor is not None:
                        raise CheckError("the final line carries no anchor")
                    if body != str(value):
                        raise CheckError(f"final line should be {value}, got '{body}'")
                    final = value
                    break
                want = f"{a} {op} {b}={value}"
                if body != want:
                    raise CheckError(f"expected '{want}', got '{body}'")
                check_chain(body)
                result_node = node
            if anchor is None:
                raise CheckError("a result line must end with an anchor")
            if anchor in anchor_line or anchor <= max(anchor_line):
                raise CheckError(f"anchor [{anchor}] is not new and increasing")
            anchor_line[anchor] = n
            trace.done[id(result_node)] = anchor
            live.append(anchor)
            prev_anchor = anchor
        except CheckError as e:
            raise CheckError(str(e), n) from None
    else:
        raise CheckError("the trace ends before the final line", len(lines))
    if final != expected_value:
        raise CheckError(f"final value {final}, the expression is {expected_value}", len(lines))
    if str(rec["answer"]) != str(expected_value):
        raise CheckError(f"answer {rec['answer']}, the expression is {expected_value}", len(lines))
    if not all(id(x) in trace.done for x in ops_of(trace.root)[:-1]):
        raise CheckError("not every operation was solved", len(lines))
    for num in re.findall(r"\d+", prompt + rec["completion"]):
        if len(num) > 10:
            raise CheckError(f"number {num} has more than 10 digits", len(lines))
    return len(lines)


def ops_of(node):
    if node[0] == "num":
        return []
    return ops_of(node[1]) + ops_of(node[2]) + [node]


def main(paths):
    if not paths:
        sys.exit(__doc__)
    records = lines = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for k, text in enumerate(f, 1):
                if not text.strip():
                    continue
                try:
                    rec = json.loads(text)
                    lines += check_record(rec)
                except json.JSONDecodeError as e:
                    print(f"check_arith: {path} record {k}: not JSON ({e})", file=sys.stderr)
                    sys.exit(1)
                except CheckError as e:
                    msg, line_no = e.args if len(e.args) == 2 else (e.args[0], 0)
                    where = "prompt" if line_no == 0 else f"completion line {line_no}"
                    print(f"check_arith: {path} record {k}, {where}: {msg}", file=sys.stderr)
                    sys.exit(1)
                records += 1
    print(f"check_arith: {records} records, {lines} trace lines: all correct")


if __name__ == "__main__":
    main(sys.argv[1:])
