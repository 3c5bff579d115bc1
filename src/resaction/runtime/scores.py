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


def videos_probabilities(
    view_logits: np.ndarray, video_index: np.ndarray, num_videos: int
) -> tuple[np.ndarray, np.ndarray]:
    """Many videos at once: the softmax of every view (N, K), and each video's average over its
    views (``num_videos``, K); ``video_index[i]`` is the video of view ``i``."""
    view_probs = softmax(view_logits)
    video_probs = np.zeros((num_videos, view_probs.shape[1]))
    np.add.at(video_probs, video_index, view_probs)
    video_probs /= np.bincount(video_index, minlength=num_videos)[:, None]
    return view_probs, video_probs


def top_k(probabilities: np.ndarray, k: int) -> np.ndarray:
    """The indices of the ``k`` largest probabilities, largest first (ties: lower index)."""
    order = np.argsort(-np.asarray(probabilities), kind="stable")
    return order[: max(1, min(k, len(order)))]
