"""Training data for scripts/train_tiny.py: tokenized arith records, their span masks in
a compact form, length-sorted batches under a token budget, and the additive attention
mask of a batch.

A record is BOS + encode(prompt) + encode(completion) + EOS; the model reads ids[:-1] and
predicts ids[1:], with the loss on the completion and EOS only.

Span masks are stored as segments of rows (scripts/span_segments.py): a 1,000-token
record keeps ~150 numbers instead of a 1,000 x 1,000 matrix, and a batch's mask is a
few thousand slice assignments.

Preparation runs the Python span rule over every token, about 15 us per token, so it is
cached next to the output directory (a .npz keyed by the data file, the tokenizer and
the mask kind) and computed in parallel processes.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
from dataclasses import dataclass
from multiprocessing import Pool

import numpy as np
import sentencepiece as spm
import torch

from span_mask import token_texts
from span_rule import attended_ranges
from span_segments import row_segments

CACHE_VERSION = 1


@dataclass
class Prepared:
    """Records of one JSONL file, tokenized, with span segments when attn == 'span'."""
    ids: np.ndarray          # [total tokens] int32, records concatenated
    offsets: np.ndarray      # [n + 1] int64, record i is ids[offsets[i]:offsets[i+1]]
    n_prompt: np.ndarray     # [n] int32, BOS + prompt tokens of record i
    seg: np.ndarray          # [total segments, 3 + 2 * max_fixed] int32 (rb, re, own_begin, lo, hi, ...)
    seg_offsets: np.ndarray  # [n + 1] int64, segments of record i
    answers: list            # [n] str
    attn: str

    def __len__(self) -> int:
        return len(self.n_prompt)

    def length(self, i: int) -> int:
        return int(self.offsets[i + 1] - self.offsets[i])

    def record_ids(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]:self.offsets[i + 1]]

    def segments(self, i: int) -> np.ndarray:
        return self.seg[self.seg_offsets[i]:self.seg_offsets[i + 1]]

    def subset(self, n: int) -> "Prepared":
        """The first n records."""
        n = min(n, len(self))
        return Prepared(self.ids[:self.offsets[n]], self.offsets[:n + 1], self.n_prompt[:n],
                        self.seg[:self.seg_offsets[n]], self.seg_offsets[:n + 1], self.answers[:n], self.attn)


def _prepare_one(args):
    """(line, attn, max_completion) -> (ids, n_prompt, segments, answer) or None (too long)."""
    line, attn, max_completion = args
    rec = json.loads(line)
    sp = _worker_sp
    p = sp.encode(rec["prompt"])
    c = sp.encode(rec["completion"])
    if max_completion and len(c) > max_completion:
        return None
    ids = [sp.bos_id()] + p + c + [sp.eos_id()]
    n_prompt = 1 + len(p)
    segs = []
    if attn == "span":
        # rows of the inputs ids[:-1]; the rule is incremental, so these are the first rows
        segs = row_segments(attended_ranges(token_texts(sp, ids[:-1]), n_prompt, "arith"))
    return ids, n_prompt, segs, str(rec.get("answer", ""))


_worker_sp = None


def _init_worker(tokenizer: str):
    global _worker_sp
    _worker_sp = spm.SentencePieceProcessor(model_file=tokenizer)


def _cache_key(path: str, tokenizer: str, attn: str, max_completion: int, limit: int) -> str:
    h = hashlib.sha256()
    for f in (path, tokenizer):
        st = os.stat(f)
        h.update(f"{os.path.abspath(f)}:{st.st_size}:{st.st_mtime_ns}".encode())
    with open(tokenizer, "rb") as f:
        h.update(f.read())
    h.update(f"{attn}:{max_completion}:{limit}:{CACHE_VERSION}".encode())
    return h.hexdigest()[:16]


def prepare(path: str, tokenizer: str, attn: str, max_completion: int = 0, limit: int = 0,
            cache_dir: str | None = None, workers: int = 1, log=print) -> Prepared:
    """Tokenize (and for 'span', run the span rule over) the records of a JSONL file."""
    cache = None
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
        name = os.path.basename(path).replace(".jsonl", "")
        cache = os.path.join(cache_dir, f"{name}.{attn}.{_cache_key(path, tokenizer, attn, max_completion, limit)}.npz")
        if os.path.exists(cache):
            z = np.load(cache, allow_pickle=False)
            log(f"{path}: {len(z['n_prompt'])} records from cache {cache}")
            return Prepared(z["ids"], z["offsets"], z["n_prompt"], z["seg"], z["seg_offsets"],
                            list(z["answers"]), attn)
    with open(path, encoding="utf-8") as f:
        lines = [ln for ln in f if ln.strip()]
    if limit:
        lines = lines[:limit]
    jobs = [(ln, attn, max_completion) for ln in lines]
    if workers > 1:
        with Pool(workers, initializer=_init_worker, initargs=(tokenizer,)) as pool:
            out = pool.map(_prepare_one, jobs, chunksize=64)
    else:
        _init_worker(tokenizer)
        out = [_prepare_one(j) for j in jobs]
    out = [o for o in out if o is not None]
    max_fixed = max((len(s[3]) for o in out for s in o[2]), default=0)
    ids, offsets, n_prompt, seg_rows, seg_offsets, answers = [], [0], [], [], [0], []
    for rec_ids, npr, segs, answer in out:
        ids.extend(rec_ids)
        offsets.append(len(ids))
        n_prompt.append(npr)
        for rb, re_, ob, fixed in segs:
            flat = [v for r in fixed for v in r]
            seg_rows.append([rb, re_, ob] + flat + [0, 0] * (max_fixed - len(fixed)))
        seg_offsets.append(len(seg_rows))
        answers.append(answer)
    prepared = Prepared(np.asarray(ids, dtype=np.int32), np.asarray(offsets, dtype=np.int64),
                        np.asarray(n_prompt, dtype=np.int32),
                        np.asarray(seg_rows, dtype=np.int32).reshape(len(seg_rows), 3 + 2 * max_fixed),
                        np.asarray(seg_offsets, dtype=np.int64), answers, attn)
    log(f"{path}: {len(prepared)} records ({len(lines) - len(prepared)} over the length limit), "
        f"{len(ids)} tokens, {len(seg_rows)} mask segments")
    if cache:
        tmp = cache + ".tmp.npz"
        np.savez(tmp, ids=prepared.ids, offsets=prepared.offsets, n_prompt=prepared.n_prompt,
                 seg=prepared.seg, seg_offsets=prepared.seg_offsets, answers=np.asarray(answers))
        os.replace(tmp, cache)
    return prepared


def epoch_batches(data: Prepared, token_budget: int, seed: int, epoch: int, pool: int = 4096) -> list:
    """One epoch of batches (lists of record indices), a pure function of (seed, epoch):
    shuffle, sort pools of `pool` records by length, cut each pool into batches whose
    padded size (records x longest input) stays within token_budget, shuffle the batches."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(data)))
    rng.shuffle(order)
    batches = []
    for p in range(0, len(order), pool):
        chunk = sorted(order[p:p + pool], key=data.length)
        cur, longest = [], 0
        for i in chunk:
            n = data.length(i) - 1
            if cur and (len(cur) + 1) * max(longest, n) > token_budget:
                batches.append(cur)
                cur, longest = [], 0
            cur.append(i)
            longest = max(longest, n)
        if cur:
            batches.append(cur)
    rng.shuffle(batches)
    return batches


_TRI_CACHE: dict = {}


def _tri(n: int) -> torch.Tensor:
    """[n, n] float: 0 where key <= query, -inf above the diagonal."""
    size = 1 << max(6, math.ceil(math.log2(n)))
    t = _TRI_CACHE.get(size)
    if t is None:
        t = torch.full((size, size), float("-inf")).triu(1)
        _TRI_CACHE.clear()
        _TRI_CACHE[size] = t
    return t[:n, :n]


def segment_mask(segs: np.ndarray, n: int, length: int, out: torch.Tensor) -> None:
    """Fill out [length, length] (float, -inf everywhere on entry) with one record's
    additive span mask over its n input rows; padding rows (n..length-1) are causal."""
    tri = _tri(length)
    for s in segs.tolist():
        rb, re_, ob = s[0], s[1], s[2]
        out[rb:re_, ob:re_] = tri[rb:re_, ob:re_]
        for k in range(3, len(s), 2):
            lo, hi = s[k], s[k + 1]
            if hi > lo:
                out[rb:re_, lo:hi] = 0.0
    if n < length:
        out[n:, :] = tri[n:, :]


def make_batch(data: Prepared, idx: list) -> tuple:
    """-> ids [B, T] int64, targets [B, T] int64 (-100: no loss), mask [B, 1, T, T] float
    additive (0 attend, -inf not) for span data or None for dense (causal) data."""
    lengths = [data.length(i) - 1 for i in idx]
    t_max = max(lengths)
    b = len(idx)
    ids = torch.zeros((b, t_max), dtype=torch.long)
    targets = torch.full((b, t_max), -100, dtype=torch.long)
    mask = None
    if data.attn == "span":
        mask = torch.full((b, 1, t_max, t_max), float("-inf"))
    for r, i in enumerate(idx):
        rec = torch.from_numpy(data.record_ids(i).astype(np.int64))
        n = lengths[r]
        ids[r, :n] = rec[:-1]
        npr = int(data.n_prompt[i])
        targets[r, npr - 1:n] = rec[npr:]  # position t predicts t + 1: completion and EOS
        if mask is not None:
            segment_mask(data.segments(i), n, t_max, mask[r, 0])
    return ids, targets, mask


def mask_rows(data: Prepared, i: int) -> list:
    """The attended ranges of every input row of record i as make_batch builds them
    (sorted, merged), for tests against the engine's --span-trace."""
    n = data.length(i) - 1
    m = torch.full((n, n), float("-inf"))
    segment_mask(data.segments(i), n, n, m)
    allowed = (m == 0).numpy()
    rows = []
    for t in range(n):
        cols = np.flatnonzero(allowed[t])
        ranges, start = [], int(cols[0])
        for a, b in zip(cols[:-1], cols[1:]):
            if b != a + 1:
                ranges.append((start, int(a) + 1))
                start = int(b)
        ranges.append((start, int(cols[-1]) + 1))
        rows.append(ranges)
    return rows
