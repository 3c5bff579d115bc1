"""Inference: score videos (``Predictor``), whole-video timelines and live streams.

``Predictor`` holds a model behind a backend (``TorchBackend``; an ONNX Runtime backend plugs in
the same way) with its class names, preprocessing and evaluation protocol.
"""

from resaction.inference.backends import Backend, TorchBackend
from resaction.inference.predictor import Prediction, Predictor, VideoFailure

__all__ = ["Backend", "Prediction", "Predictor", "TorchBackend", "VideoFailure"]
