#!/usr/bin/env python
"""Segmentation cost per distinct text: tie-prone blocks split at inert characters vs not.

A Han block in which a unit repeats three times (哈哈哈) is cut by jieba's own pure-Python code,
because jieba and jieba-rs could break a tie between its routes differently. The segmenter also
splits a block at the characters no dictionary word of two or more characters holds (``.``,
``-``, ``_``, ``%`` with the shipped dictionary), so "不过下周放假吗..." is no longer sent to jieba
for its "...". This script times both rules in one run, on the same texts, alternating, with
every cache cleared before each pass (whole texts, jieba's cuts, the HMM's cuts: the cost of a
text the first time it is seen), and counts the texts each rule sends to jieba. The tokens are
the same either way (tests/test_speed_parity.py).

    python bench/segment_speed.py /tmp/gs/200k.csv ../shared/datasets/lccc_train.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from classifier import native  # noqa: E402
from classifier.formats import iter_messages  # noqa: E402
from classifier.normalize import normalize  # noqa: E402
from classifier.segment import Segmenter, _RE_HAN, _tie_prone  # noqa: E402


def distinct_texts(path: str) -> list[str]:
    """The distinct message texts of an export (a shared pool reads as a generic JSONL export)."""
    return list(dict.fromkeys(m.text for m in iter_messages(path) if m.kind != "system"))


def timed(seg: Segmenter, norms: list[str]) -> float:
    cut = type(seg)._cut_cached.__wrapped__  # no whole-text cache
    seg.__dict__.pop("_periodic", None)  # nor the cache of jieba's cuts
    seg._rj[2].cache.clear()  # nor the HMM's cuts of unknown runs
    t0 = time.perf_counter()
    for n in norms:
        cut(seg, n)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help="exports (any supported format) or shared JSONL pools")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args(argv)
    seg = Segmenter()
    eng = seg._fast_engine()
    if eng is None:
        print("rjieba is not installed: every block goes to jieba, nothing to compare", file=sys.stderr)
        return 2
    rj, freq, hmm_cut, inert, parts = eng
    rules = {"periodic anywhere (before)": (rj, freq, hmm_cut, "", None),
             f"split at {inert!r} (now)": eng}
    print(f"compiled inner loops: {'on' if native.module() is not None else 'off'}")
    print("| input | distinct texts | rule | texts sent to jieba | µs per text (best of "
          f"{a.rounds}) | ratio |\n|---|---:|---|---:|---:|---:|")
    for path in a.inputs:
        texts = distinct_texts(path)
        norms = [normalize(t) for t in texts]
        best = {name: float("inf") for name in rules}
        for e in rules.values():  # warm-up, untimed: first calls into rjieba, jieba and the HMM
            seg._rj = e
            timed(seg, norms)
        for _ in range(a.rounds):
            for name, e in rules.items():
                seg._rj = e
                best[name] = min(best[name], timed(seg, norms))
        base = best[next(iter(rules))]
        for name, e in rules.items():
            sent = sum(any(_tie_prone(b, e[4]) for b in _RE_HAN.split(n)[1::2]) for n in norms)
            print(f"| {Path(path).name} | {len(texts):,} | {name} | {sent:,} | "
                  f"{1e6 * best[name] / len(texts):.2f} | {base / best[name]:.2f}× |")
        seg._rj = eng
    return 0


if __name__ == "__main__":
    sys.exit(main())
