"""Label-free tuning of the text lane on an index's own pages (`docpress tune`).

- pseudo:  pseudo-queries cut from page text (the positive is the page minus the cut), BM25 hard negatives;
- head:    TokenHead, the PCA-initialised projection of token vectors, saved as a folder;
- learner: TextHeadLearner, the head over frozen stored vectors, trained by docpress.train.fit;
- run:     tune_index (sample, train, measure held-out, install into the index atomically).
Search reads the installed head without this package (retriever.lanes, the tuned lane).
"""

from docpress.tune.head import TokenHead
from docpress.tune.learner import TextHeadLearner, TextPage
from docpress.tune.pseudo import PseudoQuery, cut_queries, hard_negatives
from docpress.tune.run import DEFAULT_METHODS, TuneOptions, TuneReport, tune_index

__all__ = ["TokenHead", "TextHeadLearner", "TextPage", "PseudoQuery", "cut_queries", "hard_negatives",
           "DEFAULT_METHODS", "TuneOptions", "TuneReport", "tune_index"]
