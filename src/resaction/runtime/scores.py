"""Scores, computed in one place: softmax, the average over a video's views, top-k."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Probabilities from logits along ``axis``, in float64 (stable for large logits)."""
    values = np.asarray(logits, dtype=np.float64)
    shifted = values - values.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def video_probabilities(view_logits: np.ndarray) -> np.ndarray:
    """One video's class probabilities: the softmax of each view (V, K), averaged."""
    return softmax(view_logits).mean(axis=0)


def top_k(probabilities: np.ndarray, k: int) -> np.ndarray:
    """The indices of the ``k`` largest probabilities, largest first (ties: lower index)."""
    order = np.argsort(-np.asarray(probabilities), kind="stable")
    return order[: max(1, min(k, len(order)))]
