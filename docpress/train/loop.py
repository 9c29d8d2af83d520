"""The training loop: AdamW on a learner's trainable parts, ColPali loss, seed, time budget, metrics."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from docpress.errors import DocpressError
from docpress.maxsim import padded_maxsim
from docpress.train.data import TrainSet
from docpress.train.learners import Learner
from docpress.train.loss import DEFAULT_TEMPERATURE, cell_regression_loss, colpali_loss, pad


@dataclass
class TrainConfig:
    """Hyper-parameters of one run.

    steps: optimizer steps (an upper bound when max_seconds is set).
    batch_size: pages per step, each with one of its queries (in-batch negatives: the others).
    temperature: softmax temperature of the ColPali loss (scores are per-token means).
    cell_weight: weight of the cell regression term (needs targets); 0 turns it off.
    reg_weight: weight of the learner's own regulariser (`learner.regularizer()`); 0 turns it off.
    warmup: steps of linear learning-rate warm-up.
    max_seconds: stop after this much wall time (None: no limit).
    """

    steps: int = 500
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.01
    temperature: float = DEFAULT_TEMPERATURE
    cell_weight: float = 0.0
    reg_weight: float = 0.0
    warmup: int = 20
    seed: int = 0
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2:
            raise DocpressError("training needs at least 1 step and batches of at least 2 pages")
        if self.temperature <= 0 or self.lr <= 0:
            raise DocpressError("the temperature and the learning rate must be positive")


@dataclass
class StepInfo:
    """Passed to the progress callback after every step."""

    step: int
    steps: int
    loss: float
    contrastive: float
    cell: float
    seconds: float


@dataclass
class TrainReport:
    """What a run did: steps taken, why it stopped, time, and the loss per step."""

    steps: int
    stopped: str  # "steps" or "time"
    seconds: float
    losses: list[float] = field(default_factory=list)
    config: dict = field(default_factory=dict)

    @property
    def final_loss(self) -> float:
        tail = self.losses[-20:]
        return float(np.mean(tail)) if tail else float("nan")


def fit(learner: Learner, data: TrainSet, config: TrainConfig,
        on_step: Callable[[StepInfo], None] | None = None) -> TrainReport:
    """Train the learner's trainable parts in place; deterministic on a CPU for a given seed."""
    if config.cell_weight and not data.targets:
        raise DocpressError("the cell regression term needs teacher targets (distill builds them)")
    if config.reg_weight and not callable(getattr(learner, "regularizer", None)):
        raise DocpressError("this learner has no regulariser; train it with reg_weight 0")
    params = learner.parameters()
    if not params:
        raise DocpressError("the learner has nothing to train")
    rng = np.random.default_rng(config.seed)  # batches; torch's own RNG is seeded below
    batches = data.batches(config.batch_size, rng)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    warmup = max(1, config.warmup)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    targets = _target_cache(learner, data) if config.cell_weight else None
    report = TrainReport(0, "steps", 0.0, config=asdict(config))
    started = time.perf_counter()
    learner.train(True)
    # a learner with dropout draws from torch's RNG: seed it without touching the caller's state
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        try:
            for step in range(config.steps):
                if config.max_seconds is not None and time.perf_counter() - started >= config.max_seconds:
                    report.stopped = "time"
                    break
                loss, contrastive, cell = _loss(learner, data, config, *next(batches), targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                report.steps = step + 1
                report.losses.append(float(loss.detach()))
                if on_step:
                    on_step(StepInfo(step + 1, config.steps, report.losses[-1], float(contrastive.detach()),
                                     float(cell.detach()), time.perf_counter() - started))
        finally:
            learner.train(False)
    report.seconds = time.perf_counter() - started
    return report


def _loss(learner: Learner, data: TrainSet, config: TrainConfig, page_idx: np.ndarray, query_idx: np.ndarray,
          targets: list | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, contrastive, cell) losses of one batch: query i belongs to page i.

    The batch's hard negatives (data.negatives) join the pages every query is scored against;
    a page of a query's own group (its source page) is masked out of that query's negatives.
    """
    columns = np.asarray(page_idx)
    if data.negatives is not None:
        extra = data.negatives[query_idx]
        columns = np.concatenate([columns, extra[extra >= 0]])
    with learner.autocast():
        pages, page_mask = learner.page_vectors([data.pages[i] for i in columns])
        queries, query_mask = learner.query_vectors([data.queries[i] for i in query_idx])
        scores = padded_maxsim(queries.float(), query_mask, pages.float(), page_mask)
        if data.groups is not None and len(columns) > len(page_idx):
            same = data.groups[np.asarray(page_idx)][:, None] == data.groups[columns][None, :]
            same[np.arange(len(page_idx)), np.arange(len(page_idx))] = False
            scores = scores.masked_fill(torch.from_numpy(same).to(scores.device), float("-inf"))
        contrastive = colpali_loss(scores, config.temperature)
        pages = pages[:len(page_idx)]
        page_mask = page_mask[:len(page_idx)]
        cell = pages.new_zeros(())
        if targets is not None:
            goal, _ = pad([targets[i][0] for i in page_idx])
            have, _ = pad([targets[i][1] for i in page_idx])  # (B, n, 1) 0/1
            have = have[..., 0].to(pages.device) > 0
            width = goal.shape[1]  # the hard negatives may have padded the pages wider
            cell = cell_regression_loss(pages[:, :width], goal.to(pages.device), have & page_mask[:, :width])
        total = contrastive + config.cell_weight * cell
        if config.reg_weight:
            total = total + config.reg_weight * learner.regularizer()
        return total, contrastive, cell


def _target_cache(learner: Learner, data: TrainSet) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per page: (n, dim) targets in the learner's space and an (n, 1) float mask, on the CPU.

    Projected once, with the query projection as it is before training: the targets stay
    fixed while the projection trains (a moving target could collapse onto the page vectors).
    """
    out = []
    for page, target in zip(data.pages, data.targets):
        n = len(page)
        if target is None:
            out.append((torch.zeros((n, learner.dim)), torch.zeros((n, 1))))
            continue
        raw, mask = target
        mapped = torch.nn.functional.normalize(learner.target_vectors(torch.as_tensor(raw)).float(), dim=-1)
        out.append((mapped.cpu(), torch.as_tensor(mask, dtype=torch.float32).reshape(-1, 1)))
    return out


def score_matrix(learner: Learner, queries: list, pages: list, batch: int = 64) -> np.ndarray:
    """(n_queries, n_pages) MaxSim scores (per-token means) with the learner as it is now."""
    learner.train(False)
    with torch.no_grad(), learner.autocast():
        page_parts = [learner.page_vectors(pages[b:b + batch]) for b in range(0, len(pages), batch)]
        rows = []
        for b in range(0, len(queries), batch):
            q, q_mask = learner.query_vectors(queries[b:b + batch])
            rows.append(torch.cat([padded_maxsim(q.float(), q_mask, p.float(), m)
                                   for p, m in page_parts], dim=1).cpu())
    return torch.cat(rows).numpy() if rows else np.zeros((0, len(pages)), np.float32)


def retrieval_metrics(scores: np.ndarray, positives: np.ndarray) -> dict[str, float]:
    """Recall@1, Recall@5 and MRR (percent) of each query's page among all pages.

    >>> retrieval_metrics(np.array([[0.9, 0.1], [0.8, 0.2]]), np.array([0, 1]))
    {'R@1': 50.0, 'R@5': 100.0, 'MRR': 75.0}
    """
    if len(scores) == 0:
        return {"R@1": 0.0, "R@5": 0.0, "MRR": 0.0}
    own = scores[np.arange(len(scores)), positives]
    rank = (scores >= own[:, None]).sum(1)  # ties count against the query (pessimistic)
    return {"R@1": float(100 * (rank == 1).mean()), "R@5": float(100 * (rank <= 5).mean()),
            "MRR": float(100 * (1.0 / rank).mean())}
