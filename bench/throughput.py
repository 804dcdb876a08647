#!/usr/bin/env python
"""Throughput and peak memory of scoring, against a naive anchor, on the same export.

Stages, each run in its OWN subprocess so time and peak RSS do not mix:

- ``read``    — reading the export alone (``iter_messages``): the floor for this machine;
- ``anchor``  — naive baseline: ``jieba.lcut`` per message + scikit-learn ``TfidfVectorizer``
  + ``LogisticRegression.predict`` (fitted beforehand on the shared qq_group labels; fitting
  is not timed), over the texts of every non-system message, in chunks of 4,096;
- ``predict`` — ``classifier.predict_proba`` over the same texts, same chunks (no dedup, no
  pipeline: the library call a developer would make);
- ``score``   — ``score_exports`` end to end: read → classify → aggregate → write
  messages.jsonl / report.json / report.html;
- ``latency`` — single-message ``predict(text, topic)`` on distinct unseen texts: median, p99;
- ``overlap`` (not run by default) — every input read twice through one overlap filter, as
  ``score`` reads several files (the second copy is all overlap): compare with ``read``.

Messages/second count every record of the export (anchor/predict: every non-system
message). Peak RSS is the stage process's own ``ru_maxrss`` (plus its children's, if any).
Model loading and jieba start-up happen before the clock starts, and are reported apart.

    python bench/make_export.py --format csv -n 1000000 --groups 20 --out /tmp/gs/1m.csv
    python bench/throughput.py /tmp/gs/1m.csv --topic "私域运营 社群"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHUNK = 4096
DATASETS = REPO.parent / "shared" / "datasets"


def _peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + kids) / 1024.0  # Linux reports KiB


def _texts(path: str, limit: int | None) -> list[str]:
    from classifier.formats import iter_messages

    out = []
    for m in iter_messages(path):
        if m.kind != "system":
            out.append(m.text)
            if limit is not None and len(out) >= limit:
                break
    return out


def stage_read(a) -> dict:
    from classifier.formats import iter_messages

    t0 = time.perf_counter()
    n = 0
    for p in a.inputs:
        for _ in iter_messages(p):
            n += 1
    return {"messages": n, "seconds": time.perf_counter() - t0}


def stage_overlap(a) -> dict:
    """Reading as ``score`` does with several files: every input, then every input again, through
    one overlap filter (the second copy is all overlap). Compare its messages/s with ``read``."""
    from classifier.formats import iter_messages
    from classifier.formats.overlap import OverlapFilter

    files = list(a.inputs) * 2
    f = OverlapFilter()
    t0 = time.perf_counter()
    kept = dropped = 0
    for k, p in enumerate(files):
        for _ in f.filter(iter_messages(p), remember=k < len(files) - 1):
            kept += 1
        dropped += f.dropped
    return {"messages": kept + dropped, "kept": kept, "seconds": time.perf_counter() - t0}


def stage_anchor(a) -> dict:
    import jieba
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    jieba.setLogLevel(60)
    jieba.initialize()
    train = [json.loads(line) for line in (DATASETS / "qq_group_train.jsonl").open(encoding="utf-8")]
    train = [r for r in train if r.get("label")]

    def identity(x):
        return x

    vec = TfidfVectorizer(analyzer=identity, sublinear_tf=True, min_df=1)
    X = vec.fit_transform([jieba.lcut(r["text"]) for r in train])
    lr = LogisticRegression(max_iter=1000).fit(X, [r["label"] for r in train])
    texts = [t for p in a.inputs for t in _texts(p, a.limit)]
    t0 = time.perf_counter()
    n = 0
    for i in range(0, len(texts), CHUNK):
        chunk = texts[i : i + CHUNK]
        lr.predict(vec.transform([jieba.lcut(t) for t in chunk]))
        n += len(chunk)
    return {"messages": n, "seconds": time.perf_counter() - t0}


def stage_predict(a) -> dict:
    from classifier import load_model

    t_load = time.perf_counter()
    clf = load_model(a.model)
    topic = clf.make_topic(a.topic) if a.topic else None
    clf.predict_proba(["预热"], topic)  # jieba/rjieba start-up outside the clock
    load_s = time.perf_counter() - t_load
    texts = [t for p in a.inputs for t in _texts(p, a.limit)]
    t0 = time.perf_counter()
    for i in range(0, len(texts), CHUNK):
        clf.predict_proba(texts[i : i + CHUNK], topic)
    return {"messages": len(texts), "seconds": time.perf_counter() - t0, "load_seconds": load_s}


class PssSampler:
    """Peak of the summed PSS (proportional set size) of this process and its children.

    Worker processes share the model's pages with the parent copy-on-write; PSS charges each
    shared page to its sharers in equal parts, so the sum is the memory the run really uses,
    where adding up peak RSS counts the shared model once per process.
    """

    def __init__(self, every: float = 0.1) -> None:
        import threading

        self.peak_kb = 0
        self._stop = threading.Event()
        self._every = every
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _pss_kb(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _pids(self) -> list[int]:
        me = os.getpid()
        kids = []
        try:
            with open(f"/proc/{me}/task/{me}/children") as fh:
                kids = [int(p) for p in fh.read().split()]
        except OSError:
            pass
        return [me, *kids]

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, sum(self._pss_kb(p) for p in self._pids()))
            self._stop.wait(self._every)

    def __enter__(self) -> "PssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def stage_score(a) -> dict:
    from classifier import load_model
    from classifier.pipeline import score_exports

    t_load = time.perf_counter()
    clf = load_model(a.model)
    clf.predict_proba(["预热"], None)
    load_s = time.perf_counter() - t_load
    with tempfile.TemporaryDirectory() as out:
        with PssSampler() as pss:
            t0, c0 = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
            report = score_exports(a.inputs, clf, topic=a.topic, out_dir=out, progress=False, jobs=a.jobs)
            dt, main_cpu = time.perf_counter() - t0, _cpu(resource.RUSAGE_SELF) - c0
        size = (Path(out) / "messages.jsonl").stat().st_size
    return {"messages": report["records"], "seconds": dt, "load_seconds": load_s, "jsonl_mb": size / 1e6,
            "groups": len(report["groups"]), "jobs": a.jobs, "peak_pss_mb": round(pss.peak_kb / 1024.0, 1),
            # Where the CPU went while timed: this process (read, aggregate, write, dispatch) and
            # the worker processes (classification), which are reaped when the run ends.
            "cpu_main_s": round(main_cpu, 2), "cpu_workers_s": round(_cpu(resource.RUSAGE_CHILDREN), 2)}


def _cpu(who: int) -> float:
    u = resource.getrusage(who)
    return u.ru_utime + u.ru_stime


def stage_latency(a) -> dict:
    import statistics

    from classifier import load_model

    clf = load_model(a.model)
    topic = clf.make_topic(a.topic) if a.topic else None
    clf.predict("预热", topic)
    # Distinct texts never seen before (normalisation/segmentation caches are cold for them).
    seen: set[str] = set()
    texts = []
    for t in _texts(a.inputs[0], None):
        if t not in seen:
            seen.add(t)
            texts.append(t)
            if len(texts) >= a.latency_n:
                break
    times = []
    for t in texts:
        t0 = time.perf_counter()
        clf.predict(t, topic)
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"messages": len(times), "seconds": sum(times), "median_ms": 1000 * statistics.median(times),
            "p99_ms": 1000 * times[int(0.99 * (len(times) - 1))]}


STAGES = {"read": stage_read, "anchor": stage_anchor, "predict": stage_predict, "score": stage_score,
          "latency": stage_latency, "overlap": stage_overlap}


def run_stage(name: str, a) -> dict:
    """Run one stage in a fresh interpreter; returns its JSON result plus peak RSS."""
    cmd = [sys.executable, __file__, *a.inputs, "--stage", name, "--topic", a.topic or "",
           "--latency-n", str(a.latency_n), "--jobs", str(a.jobs)]
    if a.model:
        cmd += ["--model", str(a.model)]
    if a.limit:
        cmd += ["--limit", str(a.limit)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"stage {name} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def machine() -> str:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "?"
    load = os.getloadavg()
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--topic", default="私域运营 社群")
    ap.add_argument("--model", default=None)
    ap.add_argument("--stages", default="read,anchor,predict,score,latency")
    ap.add_argument("--limit", type=int, default=None, help="anchor/predict: at most this many texts")
    ap.add_argument("--latency-n", type=int, default=2000)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="score: processes in total (this one + jobs-1 classifying workers)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--stage", default=None, help=argparse.SUPPRESS)  # internal: run one stage here
    a = ap.parse_args(argv)
    a.topic = a.topic or None
    if a.stage:
        out = STAGES[a.stage](a)
        out["peak_rss_mb"] = round(_peak_mb(), 1)
        # Apart: this process, and the largest of its (finished) worker processes. Workers share
        # the model's pages with it copy-on-write, so the sum above over-counts real memory.
        out["rss_main_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
        out["rss_worker_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0, 1)
        out["cpu_seconds"] = round(_cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN), 1)
        print(json.dumps(out))
        return

    results = {}
    for name in a.stages.split(","):
        print(f"… {name}", file=sys.stderr, flush=True)
        results[name] = run_stage(name, a)
    anchor = results.get("anchor")
    from classifier import native

    compiled = ("on" if native.module() is not None else "off (GROUPSCORE_NATIVE=0)") if native.built() \
        else "not built (no C compiler at install?)"
    print(f"\nmachine: {machine()}\ncompiled inner loops: {compiled}\ninput: {', '.join(a.inputs)}\n")
    print("| stage | messages | seconds | messages/s | × anchor | CPU s | peak RSS MB (main + largest worker) "
          "| peak PSS MB (all processes) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        if name == "latency":
            continue
        rate = r["messages"] / r["seconds"] if r["seconds"] else float("inf")
        ratio = f"{rate / (anchor['messages'] / anchor['seconds']):.1f}" if anchor else "–"
        rss = f"{r['peak_rss_mb']:.0f}"
        if r.get("rss_worker_mb", 0) > 1:
            rss += f" ({r['rss_main_mb']:.0f} + {r['rss_worker_mb']:.0f})"
        pss = f"{r['peak_pss_mb']:.0f}" if "peak_pss_mb" in r else "–"
        label = f"{name} (jobs {r['jobs']})" if "jobs" in r else name
        print(f"| {label} | {r['messages']:,} | {r['seconds']:.1f} | {rate:,.0f} | {ratio} | {r.get('cpu_seconds', 0):.0f} "
              f"| {rss} | {pss} |")
    r = results.get("score")
    if r and r["messages"]:
        n = r["messages"]
        print(f"\nscore CPU while timed: main process {r['cpu_main_s']:.1f} s ({1e6 * r['cpu_main_s'] / n:.1f} µs/message), "
              f"worker processes {r['cpu_workers_s']:.1f} s ({1e6 * r['cpu_workers_s'] / n:.1f} µs/message)")
    if "latency" in results:
        r = results["latency"]
        print(f"\nsingle-message predict: median {r['median_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms "
              f"over {r['messages']:,} distinct texts; peak RSS {r['peak_rss_mb']:.0f} MB")
    if a.json:
        a.json.write_text(json.dumps({"machine": machine(), "inputs": a.inputs, "results": results}, indent=1))


if __name__ == "__main__":
    main()
