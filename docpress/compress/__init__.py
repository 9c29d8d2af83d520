"""Hierarchical compression of page vectors: prune, merge, reduce, quantize, score on codes."""

from docpress.compress.merge import GridMerger, Merger, MergeResult, WardMerger
from docpress.compress.pipeline import PRESETS, CompressedPage, Compressor, FitReport, normalize_config
from docpress.compress.prune import LexicalPruner, Pruner, PruneResult, SignalPruner
from docpress.compress.quantize import BinaryQuantizer, HalfQuantizer, Int8Quantizer, PqQuantizer, Quantizer
from docpress.compress.reduce import PcaReducer, Reducer

__all__ = [
    "Compressor", "CompressedPage", "FitReport", "PRESETS", "normalize_config",
    "Pruner", "LexicalPruner", "SignalPruner", "PruneResult",
    "Merger", "WardMerger", "GridMerger", "MergeResult",
    "Reducer", "PcaReducer",
    "Quantizer", "HalfQuantizer", "Int8Quantizer", "PqQuantizer", "BinaryQuantizer",
]
