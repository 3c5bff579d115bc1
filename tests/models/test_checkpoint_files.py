"""``read_checkpoint`` on files that are not checkpoints: one line that says what the file is,
never torch's advice to load it with ``weights_only=False``."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from resaction.errors import CheckpointError
from resaction.models import create_model
from resaction.models.checkpoint import read_checkpoint, save_checkpoint
from resaction.runtime.onnx_backend import OnnxBackend


class Custom:
    """A class torch's weights-only unpickler does not know."""


def test_foreign_files_are_named_for_what_they_are(tmp_path: Path) -> None:
    files = {
        "model.onnx": (b"\x08\x07", "is an ONNX model, not a PyTorch checkpoint"),
        "list.csv": (b"path,label\na.mp4,x\n", "is a .csv file, not a PyTorch checkpoint"),
        "half.pt": (b"\x13\x37 not a zip", "is not a PyTorch checkpoint (its first bytes"),
        "empty.pt": (b"", "is empty, not a PyTorch checkpoint"),
        "bad.pt": (b"\x80\x02garbage", "cannot be read: corrupt or not a torch file"),
    }
    for name, (content, expected) in files.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError) as error:
            read_checkpoint(tmp_path / name)
        message = str(error.value)
        assert expected in message and "\n" not in message
        assert "weights_only" not in message and "arbitrary code" not in message


def test_a_pickled_object_is_named_and_a_real_checkpoint_still_reads(tmp_path: Path) -> None:
    torch.save({"state_dict": {}, "model_name": "x", "hook": Custom()}, tmp_path / "obj.pt")
    with pytest.raises(CheckpointError, match=r"holds a Python object \(.*Custom\) besides"):
        read_checkpoint(tmp_path / "obj.pt")
    torch.save({"call": functools.partial(print)}, tmp_path / "call.pt")
    with pytest.raises(CheckpointError, match=r"holds a Python object \(functools.partial\)"):
        read_checkpoint(tmp_path / "call.pt")
    model = create_model("tsn_resnet18", num_classes=2)
    saved = save_checkpoint(
        tmp_path / "ok.pt", model, model_name="tsn_resnet18", classes=["a", "b"]
    )
    assert read_checkpoint(saved)["classes"] == ["a", "b"]


def test_a_checkpoint_given_as_onnx_says_to_export_it(tmp_path: Path) -> None:
    model = create_model("tsn_resnet18", num_classes=2)
    saved = save_checkpoint(tmp_path / "m.pt", model, model_name="tsn_resnet18", classes=["a", "b"])
    with pytest.raises(CheckpointError, match=r"is a PyTorch checkpoint, not an ONNX model"):
        OnnxBackend(saved)


def test_a_folder_given_as_a_checkpoint_or_its_destination_is_named_a_folder(
    tmp_path: Path,
) -> None:
    from resaction.errors import WeightsError
    from resaction.models.checkpoint import atomic_save
    from resaction.models.weights import read_weights_file

    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file"):
        read_checkpoint(tmp_path)
    with pytest.raises(WeightsError, match="is a folder, not a file"):
        read_weights_file(tmp_path)
    with pytest.raises(CheckpointError, match="it is a folder; give a file name"):
        atomic_save({"a": 1}, tmp_path)
    assert list(tmp_path.iterdir()) == []
