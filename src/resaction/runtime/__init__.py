"""What runs a model, below both ``engine`` and ``inference``: backends (PyTorch, ONNX Runtime),
the one loader of model files, and scores (softmax, view averaging, top-k)."""

from resaction.runtime.backends import Backend, TorchBackend
from resaction.runtime.loading import LoadedModel, load_model, resolve_spec
from resaction.runtime.scores import softmax, top_k, video_probabilities

__all__ = [
    "Backend",
    "LoadedModel",
    "TorchBackend",
    "load_model",
    "resolve_spec",
    "softmax",
    "top_k",
    "video_probabilities",
]
