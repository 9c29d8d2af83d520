"""The `docpress tune` and `docpress calibrate` commands: fitting an index to its own pages, without labels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from docpress.cli.common import err, open_index, out, run


def tune(
    index: Annotated[Optional[Path], typer.Option(
        "--index", "-i", help="Index folder [default: $DOCPRESS_INDEX or ./.docpress].", show_default=False)] = None,
    minutes: Annotated[Optional[float], typer.Option(help="Time budget for the training steps, in minutes.")] = None,
    steps: Annotated[int, typer.Option(
        help="Optimizer steps (fewer when --minutes runs out); more steps fit the pseudo-queries better "
             "and real questions worse (README, Tuning).")] = 80,
    dims: Annotated[int, typer.Option(help="Size of the tuned token vectors (the head's output).")] = 128,
    pages: Annotated[int, typer.Option(help="Pages sampled to train on (besides the held-out ones).")] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed (runs repeat exactly).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Tune the text lane's token vectors on the index's own pages, without labels, and search with them."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from docpress.tune import TuneOptions, tune_index

    options = run(lambda: TuneOptions(dims=dims, steps=steps, pages=pages, seed=seed,
                                       max_seconds=minutes * 60 if minutes else None))
    idx = run(lambda: open_index(index))
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, disable=as_json or not err.is_terminal) as bar:
            task = bar.add_task("reading pages", total=None)

            def progress(what: str, done: int, total: int) -> None:
                bar.update(task, description=what[:40], completed=done, total=total)

            report = run(lambda: tune_index(idx, options, progress))
    finally:
        idx.close()
    result = report.to_dict()
    if as_json:
        print(json.dumps(result, indent=2))
        return
    before, after = report.held_out.get("before"), report.held_out.get("after")
    line = (f"tuned a {report.dims}-d head on {report.queries} pseudo-queries from {report.pages} pages: "
            f"{report.steps} steps in {report.train_seconds:.0f}s"
            f"{' (time budget reached)' if report.stopped == 'time' else ''}")
    if before and after:
        line += (f"; held-out Recall@1 {before['R@1']:.1f}% -> {after['R@1']:.1f}% "
                 f"({report.eval_queries} queries)")
    line += (f"; used by {', '.join(report.methods) or 'no method'}; "
             f"+{report.bytes_per_page:,.0f} bytes a page -> {report.folder}")
    out.print(line, highlight=False, soft_wrap=True)


def calibrate(
    index: Annotated[Optional[Path], typer.Option(
        "--index", "-i", help="Index folder [default: $DOCPRESS_INDEX or ./.docpress].", show_default=False)] = None,
    queries: Annotated[int, typer.Option(help="Pseudo-queries cut from the index's pages (half fit, half check).")] = 400,
    min_gain: Annotated[float, typer.Option(
        help="nDCG@5 points the fitted weights must gain over the defaults on the held-out half.")] = 1.0,
    reset: Annotated[bool, typer.Option("--reset", help="Forget a calibration: search with the defaults.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed (runs repeat exactly).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Fit hybrid's BM25 and MaxSim weights to this index's pages, without labels (opt-in: see the README)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from docpress.tune.calibrate import CalibrateOptions, calibrate_fusion

    idx = run(lambda: open_index(index))
    try:
        if reset:
            idx.set_fusion({})
            out.print("hybrid searches with the default weights again", highlight=False)
            return
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, disable=as_json or not err.is_terminal) as bar:
            task = bar.add_task("calibrating", total=None)

            def progress(what: str, done: int, total: int) -> None:
                bar.update(task, description=what[:40], completed=done, total=total)

            options = CalibrateOptions(queries=queries, seed=seed, min_gain=min_gain)
            report = run(lambda: calibrate_fusion(idx, options, progress))
    finally:
        idx.close()
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    held = report.held_out
    verdict = ("kept: hybrid now uses them" if report.applied
               else "not kept (gain below --min-gain): hybrid keeps the defaults")
    out.print(f"best on {report.queries // 2} pseudo-queries: bm25 {report.chosen['bm25']}, maxsim "
              f"{report.chosen['maxsim']}; held-out nDCG@5 {held['chosen']['nDCG@5']} against "
              f"{held['default']['nDCG@5']} for the defaults; {verdict}", highlight=False, soft_wrap=True)
