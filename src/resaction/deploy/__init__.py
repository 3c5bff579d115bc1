"""Deployment: ONNX export, int8 quantisation, channel pruning and benchmarks.

These make the files that ``inference`` runs: ``export_checkpoint`` writes an ONNX model that
``runtime.onnx_backend.OnnxBackend`` serves behind the same ``Predictor``; ``quantize_onnx``
turns it into a static int8 model calibrated on the user's videos; ``prune_checkpoint`` removes
channels and writes a smaller checkpoint that loads wherever a checkpoint does; ``bench``
measures all of them side by side.
"""

from resaction.deploy.bench import BenchReport, BenchRow, bench
from resaction.deploy.export import ExportResult, export_checkpoint, export_model
from resaction.deploy.prune import PruneReport, PruneResult, prune_checkpoint, prune_model
from resaction.deploy.quantize import QuantizeResult, quantize_onnx
from resaction.deploy.quantize_accuracy import AccuracyComparison

__all__ = [
    "AccuracyComparison",
    "BenchReport",
    "BenchRow",
    "ExportResult",
    "PruneReport",
    "PruneResult",
    "QuantizeResult",
    "bench",
    "export_checkpoint",
    "export_model",
    "prune_checkpoint",
    "prune_model",
    "quantize_onnx",
]
