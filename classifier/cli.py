"""The ``groupscore`` command line. Commands only parse arguments, call the library and print."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import load_model
from .base import GroupscoreError

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.callback()
def main() -> None:
    """groupscore: classify Chinese group-chat messages and score groups (有效活跃度, 垂直度)."""


@app.command()
def score(
    inputs: List[Path] = typer.Argument(..., metavar="INPUT...", help="Chat exports (format detected from content)."),
    topic: Optional[str] = typer.Option(None, "--topic", help="Topic description/keywords for every group not in --groups."),
    groups: Optional[Path] = typer.Option(
        None, "--groups", help='JSON: {"群名": {"topic": "...", "members": 500, "admins": ["..."]}}.'),
    out: Path = typer.Option(Path("groupscore-out"), "--out", help="Output directory."),
    fmt: Optional[str] = typer.Option(None, "--format", help="Force the input format."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model directory (default: the shipped model)."),
    anonymize: bool = typer.Option(False, "--anonymize", help="Pseudonymise member names and ids in every output."),
    columns: Optional[str] = typer.Option(None, "--columns", help='Generic CSV/JSONL columns, e.g. "text=content,sender=user".'),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar and no summary table."),
) -> None:
    """Classify every message and score each group: report.json, messages.jsonl, report.html."""
    from rich.console import Console

    from .pipeline import load_groups_config, parse_columns, score_exports
    from .report import summary_table

    try:
        config = load_groups_config(groups) if groups else None
        report = score_exports(
            inputs, load_model(model), fmt=fmt, topic=topic, groups_config=config, anonymize=anonymize,
            out_dir=out, columns=parse_columns(columns), progress=not quiet,
        )
    except GroupscoreError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    if not quiet:
        console = Console()
        console.print(summary_table(report))
        skipped = sum(i.get("skipped", 0) for i in report["inputs"])
        if skipped:
            console.print(f"[yellow]{skipped} malformed records skipped; see report.json inputs[].errors[/yellow]")
        console.print(f"wrote {out / 'report.json'}, {out / 'messages.jsonl'}, {out / 'report.html'}")
