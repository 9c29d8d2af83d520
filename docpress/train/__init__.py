"""Training for the encoder lanes: ColPali's in-batch objective on (query, page) pairs or distilled pseudo-queries.

- data:    Pair / load_pairs (JSONL), pseudo-queries cut from page text, TrainSet and its sampler;
- loss:    MaxSim scores, the ColPali in-batch softmax cross-entropy, cell regression;
- lanes:   the Lane protocol (frozen prefix cached once, trainable parts) and OpticalLane;
- distill: TrainSets from labelled pairs or, with the text lane as teacher, from the PDFs alone;
- loop:    fit (AdamW, seed, time budget, progress callback) and retrieval metrics.
"""

from docpress.train.data import Pair, TrainSet, load_pairs, pseudo_queries, sentences
from docpress.train.distill import DistillOptions, cell_targets, distill_set, pairs_set
from docpress.train.lanes import Lane, OpticalLane, OpticalPage
from docpress.train.loop import StepInfo, TrainConfig, TrainReport, fit, retrieval_metrics, score_matrix
from docpress.train.loss import cell_regression_loss, colpali_loss

__all__ = ["Pair", "TrainSet", "load_pairs", "pseudo_queries", "sentences", "DistillOptions",
           "cell_targets", "distill_set", "pairs_set", "Lane", "OpticalLane", "OpticalPage",
           "StepInfo", "TrainConfig", "TrainReport", "fit", "retrieval_metrics", "score_matrix",
           "cell_regression_loss", "colpali_loss"]
