"""Training the encoders: ColPali's in-batch objective on (query, page) pairs or distilled pseudo-queries.

- data:     Pair / load_pairs (JSONL), the pages of a PDF, TrainSet and its sampler;
- pseudo:   pseudo-queries cut from page text (sentences, random spans), shared with docpress.tune;
- loss:     MaxSim scores, the ColPali in-batch softmax cross-entropy, cell regression;
- learners: the Learner protocol (frozen prefix cached once, trainable parts) and OpticalLearner;
- distill:  TrainSets from labelled pairs or, with the text encoder as teacher, from the PDFs alone;
- loop:     fit (AdamW, seed, time budget, progress callback) and retrieval metrics.
"""

from docpress.train.data import Pair, TrainSet, load_pairs
from docpress.train.distill import DistillOptions, cell_targets, distill_set, pairs_set
from docpress.train.learners import Learner, OpticalLearner, OpticalPage
from docpress.train.loop import StepInfo, TrainConfig, TrainReport, fit, retrieval_metrics, score_matrix
from docpress.train.loss import cell_regression_loss, colpali_loss
from docpress.train.pseudo import pseudo_queries, sentences

__all__ = ["Pair", "TrainSet", "load_pairs", "pseudo_queries", "sentences", "DistillOptions",
           "cell_targets", "distill_set", "pairs_set", "Learner", "OpticalLearner", "OpticalPage",
           "StepInfo", "TrainConfig", "TrainReport", "fit", "retrieval_metrics", "score_matrix",
           "cell_regression_loss", "colpali_loss"]
