"""``OnnxBackend``: an ONNX Runtime session behind the same interface as ``TorchBackend``.

``resaction export`` writes what a predictor needs into the model's ``metadata_props`` (each
value a JSON string): ``model_name``, ``classes``, ``preprocess`` and ``protocol`` (the dicts of
docs/architecture.md), with ``resaction_format`` marking the file as ours. A model from elsewhere
still runs: the backend warns, names its classes ``class_0..`` unless given class names, and
guesses the preprocessing from the input shape.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resaction.errors import CheckpointError, ConfigError, ModelError
from resaction.models.torch_files import is_torch_file

METADATA_FORMAT = "1"
FORMAT_KEY = "resaction_format"
GUESSED_MEAN = [0.485, 0.456, 0.406]
GUESSED_STD = [0.229, 0.224, 0.225]


def read_classes_file(path: str | Path) -> list[str]:
    """Class names, one per line (blank lines ignored), in the model's output order."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"class names file {path} does not exist; give one name per line")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [name for name in names if name]
    if not names:
        raise ConfigError(f"class names file {path} is empty; give one name per line")
    return names


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The resaction metadata of an ONNX file, decoded ({} when it has none)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return decode_metadata({prop.key: prop.value for prop in model.metadata_props})


def decode_metadata(props: dict[str, str]) -> dict[str, Any]:
    """Decode the JSON values of ``metadata_props``; {} for a file that is not ours."""
    if FORMAT_KEY not in props:
        return {}
    decoded: dict[str, Any] = {}
    for key, value in props.items():
        try:
            decoded[key] = json.loads(value)
        except json.JSONDecodeError:
            decoded[key] = value
    return decoded


class OnnxBackend:
    """Runs an ONNX model with ONNX Runtime: clips (N, C, T, H, W) float32 in, logits out.

    ``providers`` defaults to the CPU provider; ``threads`` (intra-op) defaults to torch's thread
    count, so both backends use the same cores. ``classes`` names the outputs of a model without
    our metadata (or replaces the stored names); ``preprocess`` overrides stored keys.
    """

    def __init__(
        self,
        path: str | Path,
        providers: list[str] | None = None,
        threads: int | None = None,
        *,
        classes: list[str] | None = None,
        preprocess: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.session = _open_session(self.path, providers, threads)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise ModelError(
                f"{self.path} takes {len(inputs)} inputs; a clip model takes one (N, C, T, H, W)"
            )
        self.input_name = inputs[0].name
        self.input_shape = list(inputs[0].shape)
        self.output_name = outputs[0].name
        props = self.session.get_modelmeta().custom_metadata_map
        self.metadata = decode_metadata(dict(props))
        self.has_metadata = bool(self.metadata)
        self.model_name: str | None = self.metadata.get("model_name")
        self.classes = self._classes(classes, outputs[0].shape)
        self.preprocess = {**self._preprocess(), **(preprocess or {})}
        self.protocol: dict[str, Any] = dict(self.metadata.get("protocol") or {})
        quantization = self.metadata.get("quantization")
        self.name = "onnx-int8" if quantization else "onnx"
        self.providers = self.session.get_providers()

    def _classes(self, given: list[str] | None, output_shape: list[Any]) -> list[str]:
        stored = self.metadata.get("classes")
        width = output_shape[-1] if output_shape and isinstance(output_shape[-1], int) else None
        width = width or (len(stored) if stored else None)
        if given is not None:
            if width is not None and len(given) != width:
                raise ConfigError(
                    f"{len(given)} class names given but {self.path} has {width} outputs"
                )
            return list(given)
        if stored:
            return list(stored)
        if width is None:
            raise ModelError(
                f"{self.path} has no resaction metadata and no fixed number of outputs; "
                "pass its class names (classes= or --classes FILE, one name per line)"
            )
        warnings.warn(
            f"{self.path} has no resaction metadata (not made by `resaction export`): its "
            f"{width} outputs are named class_0..class_{width - 1} and the preprocessing is "
            "guessed from the input shape; pass class names with classes= or --classes FILE",
            UserWarning,
            stacklevel=3,
        )
        return [f"class_{index}" for index in range(width)]

    def _preprocess(self) -> dict[str, Any]:
        stored = self.metadata.get("preprocess")
        if stored:
            return dict(stored)
        shape = self.input_shape
        clip_len = shape[2] if len(shape) == 5 and isinstance(shape[2], int) else 16
        crop = shape[-1] if shape and isinstance(shape[-1], int) else 112
        return {
            "clip_len": clip_len,
            "sampling": "dense",
            "frame_interval": 1,
            "target_fps": None,
            "resize": round(crop * 128 / 112),
            "crop": crop,
            "mean": GUESSED_MEAN,
            "std": GUESSED_STD,
        }

    def __call__(self, batch: np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(batch, torch.Tensor):
            batch = batch.detach().cpu().numpy()
        clips = np.ascontiguousarray(batch, dtype=np.float32)
        self._check_shape(clips.shape)
        fixed = self.input_shape[0]
        if not isinstance(fixed, int) or len(clips) == fixed:
            (logits,) = self.session.run([self.output_name], {self.input_name: clips})
            return np.asarray(logits, dtype=np.float32)
        outputs = []  # a file exported with a fixed batch: runs of that size, the last padded
        for start in range(0, len(clips), fixed):
            part = clips[start : start + fixed]
            filler = np.zeros((fixed - len(part), *part.shape[1:]), dtype=part.dtype)
            feed = np.concatenate([part, filler]) if len(filler) else part
            outputs.append(self.session.run([self.output_name], {self.input_name: feed})[0])
            outputs[-1] = outputs[-1][: len(part)]
        return np.asarray(np.concatenate(outputs), dtype=np.float32)

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        """Refuse clips of a shape the file cannot take; their number is free (a fixed batch
        axis is met by ``__call__`` running the clips in runs of that size)."""
        expected = self.input_shape
        fits = len(shape) == len(expected) and all(
            not isinstance(want, int) or want == got
            for want, got in zip(expected[1:], shape[1:], strict=True)
        )
        if not fits:
            wanted = tuple(d if isinstance(d, int) else "N" for d in expected)
            raise ModelError(
                f"{self.path.name} takes clips shaped {wanted}, got {tuple(shape)}; "
                "the preprocessing (clip_len, crop) does not match the exported model"
            )

    def __repr__(self) -> str:
        return f"OnnxBackend({self.path.name}, providers={self.providers})"


def _open_session(
    path: Path,
    providers: list[str] | None,
    threads: int | None,
    model: bytes | None = None,
    spin: bool = True,
) -> Any:
    """An ONNX Runtime session for ``path`` (or for ``model``, a graph taken from it).
    ``spin=False`` stops idle worker threads from spinning: they would burn the CPU that camera
    readers share with the model.

    ORT's QDQ propagation is off: it moves the quantisation after a ResNet's fp32 first
    convolution (kept in fp32 by ``quantize``) above the max-pool, which then runs on uint8 in
    NCHW, a slow kernel: 2.0 of 13.9 ms a frame for TSN-R18 int8 at 160 px on one AVX2 core.
    Pooling before quantising gives the same numbers (quantisation is monotonic) and the frame
    takes 12.0 ms; a model whose first convolution is quantised runs 2% slower without it."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError(
            f"running {path.name} needs ONNX Runtime: pip install 'resaction[onnx]'"
        ) from None

    if model is None and not path.is_file():
        raise CheckpointError(f"ONNX model {path} does not exist")
    available = ort.get_available_providers()
    chosen = list(providers or ["CPUExecutionProvider"])
    missing = [name for name in chosen if name not in available]
    if missing:
        raise ConfigError(
            f"ONNX Runtime provider {missing[0]} is not available here; "
            f"available: {', '.join(available)}"
        )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        source = str(path) if model is None else model
        return ort.InferenceSession(
            source,
            sess_options=options,
            providers=chosen,
            disabled_optimizers=["QDQPropagationTransformer"],
        )
    except Exception as error:  # ORT raises its own types for bad protobufs and graphs
        if model is None and is_torch_file(Path(path)):
            raise CheckpointError(
                f"{path} is a PyTorch checkpoint, not an ONNX model: export it first "
                f"(resaction export {path})"
            ) from None
        text = str(error).strip().splitlines()
        reason = text[0][:200] if text else type(error).__name__
        raise CheckpointError(f"{path} is not a usable ONNX model: {reason}") from None
