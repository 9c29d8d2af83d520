"""The `docpress train` and `docpress distill` commands (registered on the app in docpress.cli)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from docpress.cli.common import err, fail, run
from docpress.cli.common import out as console
from docpress.pdf.ocr import OcrMode

WeightsOpt = Annotated[Path, typer.Option(
    "--weights", help="The optical model to start from: a docpress optical folder or a DeepSeek-OCR checkpoint.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder for the trained model (loadable with --weights).")]
ModeOpt = Annotated[Optional[str], typer.Option(
    help="Resolution to train at: tiny, small, base, large or gundam (default: the model's).")]
StepsOpt = Annotated[int, typer.Option(help="Optimizer steps (fewer when --minutes runs out).")]
BatchOpt = Annotated[int, typer.Option(help="Pages per step; the others in the batch are each query's negatives.")]
LrOpt = Annotated[float, typer.Option(help="AdamW learning rate.")]
TempOpt = Annotated[float, typer.Option(help="Softmax temperature of the in-batch loss.")]
ClipLayersOpt = Annotated[int, typer.Option(
    "--clip-layers", help="Also train CLIP's last N layers (default: the retrieval head and query projection only).")]
MinutesOpt = Annotated[Optional[float], typer.Option(help="Time budget for the training steps, in minutes.")]
SeedOpt = Annotated[int, typer.Option(help="Random seed (runs on a CPU repeat exactly).")]
OcrOpt = Annotated[OcrMode, typer.Option(help="OCR for pages without a text layer.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def train(
    pairs: Annotated[Path, typer.Argument(help='JSONL lines {"query": ..., "doc": PDF path, "page": 0-based}.')],
    weights: WeightsOpt,
    out: OutOpt,
    mode: ModeOpt = None,
    steps: StepsOpt = 500,
    batch_size: BatchOpt = 16,
    lr: LrOpt = 2e-3,
    temperature: TempOpt = 0.02,
    clip_layers: ClipLayersOpt = 0,
    cell_weight: Annotated[float, typer.Option(
        help="Weight of pulling each grid cell toward the text lane's vectors of its words (0: off).")] = 0.0,
    minutes: MinutesOpt = None,
    seed: SeedOpt = 0,
    ocr: OcrOpt = OcrMode.auto,
    as_json: JsonOpt = False,
) -> None:
    """Train the optical lane's retrieval head on labelled (query, page) pairs."""
    from docpress.train import TrainConfig, load_pairs, pairs_set

    rows = run(lambda: load_pairs(pairs))
    config = run(lambda: TrainConfig(steps=steps, batch_size=batch_size, lr=lr, temperature=temperature,
                                      cell_weight=cell_weight, seed=seed,
                                      max_seconds=minutes * 60 if minutes else None))
    text, learner = run(lambda: _build(weights, mode, clip_layers, need_text=cell_weight > 0))
    _train(learner, config, out, as_json,
           lambda progress: pairs_set(rows, learner, text if cell_weight > 0 else None, ocr, progress),
           f"{len(rows)} pairs")


def distill(
    pdfs: Annotated[list[Path], typer.Argument(help="PDF files and folders (searched for *.pdf).")],
    weights: WeightsOpt,
    out: OutOpt,
    mode: ModeOpt = None,
    queries_per_page: Annotated[int, typer.Option(help="Pseudo-queries cut from each page's text.")] = 8,
    holdout: Annotated[int, typer.Option(
        help="Sentences per page kept out of training to measure held-out Recall@1.")] = 1,
    steps: StepsOpt = 500,
    batch_size: BatchOpt = 16,
    lr: LrOpt = 2e-3,
    temperature: Annotated[float, typer.Option(
        help="Softmax temperature of the in-batch loss (softer than ColPali's 0.02: a model that starts "
             "far from its teacher learns faster).")] = 0.05,
    clip_layers: ClipLayersOpt = 0,
    cell_weight: Annotated[float, typer.Option(
        help="Weight of pulling each grid cell toward the text lane's vectors of its words (0: off; "
             "it helped on large print, 1-3, and hurt on dense 10-K pages at 640 px).")] = 0.0,
    minutes: MinutesOpt = None,
    seed: SeedOpt = 0,
    ocr: OcrOpt = OcrMode.auto,
    as_json: JsonOpt = False,
) -> None:
    """Train the optical lane on your own PDFs without labels, the text lane as teacher."""
    from docpress.ingest import expand_paths
    from docpress.train import DistillOptions, TrainConfig, distill_set

    files, missing = expand_paths(pdfs)
    if missing:
        fail(f"{missing[0].path}: {missing[0].reason}")
    if not files:
        fail("no PDF files found in the given paths")
    config = run(lambda: TrainConfig(steps=steps, batch_size=batch_size, lr=lr, temperature=temperature,
                                      cell_weight=cell_weight, seed=seed,
                                      max_seconds=minutes * 60 if minutes else None))
    options = DistillOptions(queries_per_page=queries_per_page, holdout=holdout, seed=seed)
    text, learner = run(lambda: _build(weights, mode, clip_layers, need_text=cell_weight > 0))
    teacher = text if cell_weight > 0 else None  # the teacher's page vectors only feed the cell term
    _train(learner, config, out, as_json,
           lambda progress: distill_set(files, learner, teacher, options, ocr, progress), f"{len(files)} PDFs")


def _build(weights: Path, mode: str | None, clip_layers: int, need_text: bool):
    """(the text encoder or None, the optical learner over a float32 encoder).

    The text lane is loaded when it is the teacher, or when it is the optical model's query
    tower (then shared, not loaded twice).
    """
    from docpress.encoders import load_encoder
    from docpress.train import OpticalLearner

    options = {"weights": str(weights), "dtype": "float32"}
    if mode:
        options["mode"] = mode
    encoder = load_encoder("optical", **options)
    same_model = {"model": encoder.text_model} if encoder.text_model else {}  # the tower's own model
    text = load_encoder("text", **same_model) if need_text or encoder.config()["query"]["tower"] == "text" \
        else None
    return text, OpticalLearner(encoder, clip_layers, query_tower=text)


def _train(learner, config, out: Path, as_json: bool, build, source: str) -> None:
    """Prepare the data with a progress bar, train, save, and report (a line, or JSON)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from docpress.train import fit, retrieval_metrics, score_matrix

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=err,
                  disable=as_json or not err.is_terminal) as bar:
        task = bar.add_task("reading pages", total=None, info="")

        def prepared(what: str, done: int, total: int) -> None:
            bar.update(task, description=what[:40], completed=done, total=total)

        data = run(lambda: build(prepared))

        def held_out() -> dict | None:
            if not len(data.eval_queries):
                return None
            return retrieval_metrics(score_matrix(learner, data.eval_queries, data.pages), data.eval_positives)

        before = held_out()
        bar.update(task, description="training", completed=0, total=config.steps)

        def step(info) -> None:
            bar.update(task, completed=info.step, info=f"loss {info.loss:.3f}")

        report = run(lambda: fit(learner, data, config, step))
        after = held_out()
    path = run(lambda: learner.save(out))
    result = {"out": str(path), "source": source, "pages": len(data.pages), "queries": len(data.queries),
              "steps": report.steps, "stopped": report.stopped, "seconds": round(report.seconds, 2),
              "first_loss": report.losses[0] if report.losses else None,
              "final_loss": report.final_loss if report.losses else None,
              "held_out": {"queries": len(data.eval_queries), "before": before, "after": after}}
    if as_json:
        print(json.dumps(result, indent=2))
        return
    line = (f"trained on {len(data.queries)} queries over {len(data.pages)} pages ({source}): "
            f"{report.steps} steps in {report.seconds:.1f}s"
            f"{' (time budget reached)' if report.stopped == 'time' else ''}"
            + (f", loss {result['first_loss']:.3f} -> {report.final_loss:.3f}" if report.losses else ""))
    if before and after:
        line += (f"; held-out Recall@1 {before['R@1']:.0f}% -> {after['R@1']:.0f}% "
                 f"({len(data.eval_queries)} queries)")
    console.print(line + f" -> {path}", highlight=False, soft_wrap=True)
