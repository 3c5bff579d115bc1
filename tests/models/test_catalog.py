"""The catalog (registration and metadata), the factory, and how the package's modules depend."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest
import torch

import resaction.models as models_package
from resaction.models import build_model, create_model, default_preprocess, list_models, model_info
from resaction.models.checkpoint import load_checkpoint, save_checkpoint
from resaction.models.i3d import i3d_resnet
from resaction.models.resnet3d import DEPTHS
from resaction.models.tsn import TSN

PACKAGE = Path(models_package.__file__).parent


def _imports(path: Path) -> set[str]:
    """The modules of ``resaction.models`` a file imports, at any depth (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        module = getattr(node, "module", None) or ""
        if isinstance(node, ast.ImportFrom) and module == "resaction.models":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and module.startswith("resaction.models."):
            found.add(module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.count(".") >= 2}
    return found - {"__init__"}


def test_the_modules_import_each_other_without_a_cycle() -> None:
    graph = {p.stem: _imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}

    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError

    assert order.index("catalog") < order.index("weights") < order.index("factory")
    assert not any("registry" in imported for imported in graph.values())
    assert not graph["catalog"] & {"weights", "factory", "registry", "hub"}
    for family in ("resnet2d", "resnet3d", "i3d", "tsn", "tsm", "lrcn"):
        assert not graph[family] & {"weights", "factory", "registry"}, family


def test_older_import_paths_keep_their_names() -> None:
    from resaction.models.registry import (  # noqa: F401
        IMAGENET_MEAN,
        KINETICS_STD,
        ModelInfo,
        create_model,
        default_preprocess,
        list_models,
        model_info,
        model_stats,
        register_model,
    )
    from resaction.models.weights import (  # noqa: F401
        WEIGHTS,
        LoadReport,
        apply_state_dict,
        identify_architecture,
        load_weights,
        training_preprocess,
        weight_spec,
        weights_preprocess,
    )


@pytest.mark.parametrize("name", list_models())
def test_the_input_spec_is_the_default_preprocessing(name: str) -> None:
    info = model_info(name)

    assert info.input.preprocess() == default_preprocess(name)
    assert (info.clip_len, info.input_size, info.resize) == (
        info.input.clip_len,
        info.input.crop,
        info.input.resize,
    )


def test_a_difference_model_is_built_from_its_metadata() -> None:
    info = model_info("tsm_diff_resnet18")

    model = build_model("tsm_diff_resnet18", num_classes=3)
    other = build_model("tsm_diff_resnet18", num_classes=3, segment_len=2)

    assert (info.modality, info.input.segment_len) == ("rgb_diff", 3)
    assert (model.modality, model.segment_len) == ("rgb_diff", 3)
    assert other.segment_len == 2 and other.conv1.in_channels == 3


def test_extra_shows_the_facts_under_their_older_names() -> None:
    assert model_info("resnet50").extra == {"sampling": "segments", "backbone": "resnet50"}
    assert model_info("lrcn_resnet18").extra == {"frame_interval": 2, "backbone": "resnet18"}
    assert model_info("r3d_18").extra == {}
    assert model_info("i3d_resnet50").extra == {
        "frame_interval": 8,
        "inflate_from": "resnet50",
        "inflation": "mean",
    }
    assert model_info("tsn_diff_resnet18").extra == {
        "sampling": "segments",
        "segment_len": 3,
        "modality": "rgb_diff",
        "backbone": "resnet18",
    }


def test_a_checkpoint_without_model_options_rebuilds_a_difference_model(tmp_path: Path) -> None:
    """Checkpoints store only the options given at training; the rest comes from the metadata."""
    torch.manual_seed(0)
    trained = create_model("tsn_diff_resnet18", num_classes=2).eval()
    path = save_checkpoint(
        tmp_path / "diff.pt", trained, model_name="tsn_diff_resnet18", classes=["a", "b"]
    )
    clip = torch.randn(1, 3, 6, 32, 32)

    loaded = load_checkpoint(path).model

    assert loaded.conv1.in_channels == 6
    with torch.no_grad():
        torch.testing.assert_close(loaded(clip), trained(clip))


def test_tsm_shares_the_consensus_head_of_tsn() -> None:
    tsm = create_model("tsm_resnet18", num_classes=4, consensus="weighted", num_segments=3)

    assert isinstance(tsm, TSN)
    assert tsm.head_modules() == [tsm.consensus, tsm.fc]
    assert tsm(torch.randn(2, 3, 3, 32, 32)).shape == (2, 4)


def test_3d_resnets_and_i3d_read_one_depth_table() -> None:
    for depth, (block, layers) in DEPTHS.items():
        model = i3d_resnet(depth, num_classes=2)
        stages = (model.layer1, model.layer2, model.layer3, model.layer4)
        assert tuple(len(stage) for stage in stages) == layers
        assert isinstance(model.layer1[0], block)
    assert type(create_model("r3d_50").layer1[0]) is DEPTHS[50][0]
