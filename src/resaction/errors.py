"""Errors meant for users.

Every error a person can cause (a bad file, a wrong flag, a missing download) is a
``ResactionError`` whose message is one line that names the thing and the fix. The CLI prints
that line and exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations


class ResactionError(Exception):
    """Base class for errors whose message is meant for the user."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class VideoError(ResactionError):
    """A video cannot be opened or decoded."""


class VideoNotFoundError(VideoError):
    """The video file does not exist."""


class VideoOpenError(VideoError):
    """The file exists but is not a decodable video (empty, corrupt, no video stream)."""


class FrameIndexError(VideoError):
    """Frames were requested outside the video."""


class SourceError(ResactionError):
    """A live source (camera, network stream) cannot be opened or went away."""


class DatasetError(ResactionError):
    """A dataset, manifest or split is unusable (empty, missing files, bad rows)."""


class ModelError(ResactionError):
    """An unknown model name or bad model options."""


class WeightsError(ResactionError):
    """Weights cannot be found, downloaded, verified or loaded into a model."""


class CheckpointError(ResactionError):
    """A checkpoint is corrupt, of another model, or cannot be written."""


class ConfigError(ResactionError):
    """A config file or flag value is invalid."""


class DeployError(ResactionError):
    """Export, quantisation or pruning cannot be done."""


def first_line(error: BaseException, limit: int = 200) -> str:
    """An error's message as one line: its first line, at most ``limit`` characters, or the
    error's type name when it has no message."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__


def parse_error_line(error: BaseException) -> str:
    """A parser's error as one line that says where: PyYAML's marked errors give
    "line 3, column 7: <problem>" (its own first line names only the construct it was in)."""
    mark, problem = getattr(error, "problem_mark", None), getattr(error, "problem", None)
    if mark is None or not problem:
        return first_line(error)
    where = f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    context, start = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context and start is not None and start.line != mark.line:
        where += f" ({context.removeprefix('while ')} that starts on line {start.line + 1})"
    return where


def last_line(error: BaseException, limit: int = 300) -> str:
    """An error's last non-empty line (where Ray and other wrappers put the cause), at most
    ``limit`` characters, or the error's type name when it has no message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1][:limit] if lines else type(error).__name__


def describe_error(error: BaseException) -> str:
    """One line saying why something failed: a user error's own message, else the error's type
    and the first line of its message (for errors raised by libraries)."""
    if isinstance(error, ResactionError):
        return str(error)
    if not str(error).strip():
        return type(error).__name__
    return f"{type(error).__name__}: {first_line(error)}"
