from __future__ import annotations

import functools
import hashlib
import http.server
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from resaction.errors import WeightsError
from resaction.models import create_model, list_models, model_info
from resaction.models.checkpoint import save_checkpoint
from resaction.models.weights import (
    WEIGHTS,
    WeightSpec,
    fetch_state_dict,
    identify_architecture,
    kinetics400_classes,
    load_weights,
    weight_spec,
    weights_preprocess,
)

# ----------------------------------------------------------------------------- the table


def test_every_file_name_carries_its_hash_prefix_and_lives_at_torchvision() -> None:
    for tags in WEIGHTS.values():
        for spec in tags.values():
            _stem, prefix = spec.file_name.removesuffix(".pth").rsplit("-", 1)
            assert spec.url == f"https://download.pytorch.org/models/{spec.file_name}"
            assert prefix == spec.sha256_prefix and len(prefix) == 8
            assert spec.cache_path() == Path(torch.hub.get_dir()) / "checkpoints" / spec.file_name


def test_every_registered_weight_name_resolves_to_a_file() -> None:
    for name in list_models():
        for tag in model_info(name).weights:
            arch, spec = weight_spec(name, tag)
            assert spec.file_name.startswith(arch + "-")


def test_kinetics_classes_are_the_reference_list_in_order(reference: Path) -> None:
    expected = (reference / "kinetics400_classes.txt").read_text().split("\n")
    expected = [line for line in expected if line]

    assert list(kinetics400_classes()) == expected
    assert WEIGHTS["r3d_18"]["kinetics400"].class_names() == expected


def test_own_weights_bring_their_preprocessing_and_trunk_weights_only_normalisation() -> None:
    kinetics = weights_preprocess("r3d_18", "kinetics400")
    trunk = weights_preprocess("tsn_resnet50", "imagenet_v2")

    assert kinetics["resize"] == [128, 171] and kinetics["crop"] == 112
    assert kinetics["target_fps"] == 15 and kinetics["clip_len"] == 16
    assert trunk["crop"] == model_info("tsn_resnet50").input_size
    assert trunk["mean"] == list(WEIGHTS["resnet50"]["imagenet_v2"].preprocess["mean"])


def test_fine_tuning_uses_the_named_weights_preprocessing(tmp_path: Path) -> None:
    from resaction.engine.config import TrainConfig
    from resaction.engine.train_inputs import training_pipeline
    from resaction.models import default_preprocess
    from resaction.models.weights import training_preprocess

    assert training_preprocess("r2plus1d_18", "kinetics400") == weights_preprocess(
        "r2plus1d_18", "kinetics400"
    )
    assert training_preprocess("r2plus1d_18", "kinetics400")["antialias"] is False
    checkpoint = tmp_path / "mine.pt"
    checkpoint.write_bytes(b"")
    for weights in (None, "none", str(checkpoint)):
        assert training_preprocess("r2plus1d_18", weights) == default_preprocess("r2plus1d_18")
    config = TrainConfig(
        data="x", model="r2plus1d_18", weights="kinetics400", preprocess={"crop": 96}
    )
    preprocess, _ = training_pipeline(config, [])
    assert preprocess["resize"] == [128, 171] and preprocess["antialias"] is False
    assert preprocess["crop"] == 96


def test_unknown_weight_name_lists_the_available_ones() -> None:
    with pytest.raises(WeightsError, match=r"no weights named 'kinetics700'.*imagenet"):
        create_model("tsn_resnet18", weights="kinetics700")


# ----------------------------------------------------------------------------- download


def _hashed_file(folder: Path, stem: str, state: dict) -> tuple[Path, str]:
    """Save ``state`` as ``<stem>-<first 8 hex of its SHA-256>.pth``, torch.hub's naming."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "tmp.pth"
    torch.save(state, tmp)
    prefix = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    return tmp.rename(folder / f"{stem}-{prefix}.pth"), prefix


@pytest.fixture
def hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    return hub


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server for a folder; yields (base URL, folder)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", folder
    httpd.shutdown()
    httpd.server_close()


def _spec(url: str, prefix: str) -> WeightSpec:
    return WeightSpec(url, prefix, None, 1000, {}, "test")


@pytest.fixture(scope="module")
def resnet18_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return create_model("resnet18").state_dict()


def test_download_checks_the_hash_and_fills_the_hub_cache(
    hub_dir: Path, server: tuple[str, Path], resnet18_state: dict
) -> None:
    base, folder = server
    path, prefix = _hashed_file(folder, "resnet18", resnet18_state)
    spec = _spec(base + path.name, prefix)

    state = fetch_state_dict(spec)

    assert (hub_dir / "checkpoints" / path.name).is_file()
    assert state.keys() == resnet18_state.keys()
    torch.testing.assert_close(
        state["layer2.1.conv2.weight"], resnet18_state["layer2.1.conv2.weight"]
    )


def test_cached_file_loads_without_network(hub_dir: Path, resnet18_state: dict) -> None:
    path, prefix = _hashed_file(hub_dir / "checkpoints", "resnet18", resnet18_state)
    spec = _spec(f"http://127.0.0.1:9/{path.name}", prefix)  # port 9 (discard): nobody answers

    assert fetch_state_dict(spec).keys() == resnet18_state.keys()


def test_download_with_a_wrong_hash_fails_clearly_and_caches_nothing(
    hub_dir: Path, server: tuple[str, Path]
) -> None:
    base, folder = server
    torch.save({"w": torch.ones(3)}, folder / "resnet18-00000000.pth")

    with pytest.raises(WeightsError, match="does not match its SHA-256 prefix 00000000") as error:
        fetch_state_dict(_spec(base + "resnet18-00000000.pth", "00000000"))

    assert "\n" not in str(error.value)
    assert not (hub_dir / "checkpoints" / "resnet18-00000000.pth").exists()


def test_a_wrong_file_copied_into_the_cache_is_refused(hub_dir: Path) -> None:
    cached = hub_dir / "checkpoints" / "resnet18-00000000.pth"
    cached.parent.mkdir(parents=True)
    torch.save({"w": torch.ones(3)}, cached)

    with pytest.raises(WeightsError, match="is not the expected file"):
        fetch_state_dict(_spec("http://127.0.0.1:9/resnet18-00000000.pth", "00000000"))


def test_offline_error_says_which_file_to_put_where(hub_dir: Path) -> None:
    spec = _spec("http://127.0.0.1:9/resnet18-f37072fd.pth", "f37072fd")

    with pytest.raises(WeightsError) as error:
        fetch_state_dict(spec)

    message = str(error.value)
    assert "\n" not in message
    assert str(hub_dir / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert spec.url in message


def test_named_weights_go_through_the_table_into_models_and_trunks(
    hub_dir: Path,
    server: tuple[str, Path],
    resnet18_state: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, folder = server
    path, prefix = _hashed_file(folder, "resnet18", resnet18_state)
    monkeypatch.setitem(WEIGHTS, "resnet18", {"imagenet": _spec(base + path.name, prefix)})

    image_model = create_model("resnet18", weights="imagenet")
    tsn = create_model("tsn_resnet18", weights="imagenet", num_classes=5)
    trunk = fetch_state_dict(weight_spec("i3d_resnet18", "imagenet")[1])

    assert image_model.get_classifier().out_features == 1000
    assert not image_model.load_report.replaced_head
    torch.testing.assert_close(image_model.fc.weight, resnet18_state["fc.weight"])
    assert tsn.load_report.replaced_head and sorted(tsn.load_report.dropped) == [
        "fc.bias",
        "fc.weight",
    ]
    torch.testing.assert_close(tsn.layer4[0].conv1.weight, resnet18_state["layer4.0.conv1.weight"])
    assert trunk.keys() == resnet18_state.keys()


def test_imagenet_weights_inflate_into_i3d(
    hub_dir: Path, server: tuple[str, Path], resnet18_state: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, folder = server
    path, prefix = _hashed_file(folder, "resnet18", resnet18_state)
    monkeypatch.setitem(WEIGHTS, "resnet18", {"imagenet": _spec(base + path.name, prefix)})

    model = create_model("i3d_resnet18", weights="imagenet", num_classes=3)

    assert model.load_report.missing == [] and model.load_report.unexpected == []
    assert model.load_report.replaced_head
    assert model.layer1[0].conv1[0].weight.dim() == 5


# ----------------------------------------------------------------------------- local files


def _saved(path: Path, state: dict, wrap: str | None = None) -> Path:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, path)
    else:
        torch.save({wrap: state} if wrap else state, path)
    return path


@pytest.mark.parametrize(
    ("file_name", "wrap"),
    [
        ("plain.pth", None),
        ("lightning.pt", "state_dict"),
        ("other.pt", "model"),
        ("w.safetensors", None),
    ],
)
def test_loads_every_file_layout(
    tmp_path: Path, resnet18_state: dict, file_name: str, wrap: str | None
) -> None:
    path = _saved(tmp_path / file_name, resnet18_state, wrap)

    model = create_model("resnet18", weights=str(path))

    assert model.load_report.missing == [] and not model.load_report.replaced_head
    torch.testing.assert_close(
        model.state_dict()["layer1.0.bn1.running_var"], resnet18_state["layer1.0.bn1.running_var"]
    )


def test_strips_the_ddp_prefix(tmp_path: Path, resnet18_state: dict) -> None:
    path = _saved(tmp_path / "ddp.pth", {f"module.{k}": v for k, v in resnet18_state.items()})

    report = load_weights(create_model("resnet18"), path)

    assert report.missing == [] and report.unexpected == []


def test_our_checkpoint_keeps_its_classes(tmp_path: Path) -> None:
    trained = create_model("tsn_resnet18", num_classes=3)
    path = save_checkpoint(
        tmp_path / "best.pt", trained, model_name="tsn_resnet18", classes=["clap", "run", "wave"]
    )

    model = create_model("tsn_resnet18", weights=str(path))

    assert model.get_classifier().out_features == 3
    assert model.load_report.classes == ["clap", "run", "wave"]
    torch.testing.assert_close(model.fc.weight, trained.fc.weight)


def test_another_class_count_replaces_the_head_and_says_so(
    tmp_path: Path, resnet18_state: dict, caplog: pytest.LogCaptureFixture
) -> None:
    path = _saved(tmp_path / "r18.pth", resnet18_state)

    with caplog.at_level(logging.INFO, logger="resaction.models.weights"):
        model = create_model("resnet18", num_classes=4, weights=str(path))

    report = model.load_report
    assert report.replaced_head and sorted(report.dropped) == ["fc.bias", "fc.weight"]
    assert report.missing == [] and report.unexpected == []
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    torch.testing.assert_close(model.conv1.weight, resnet18_state["conv1.weight"])
    assert "new classifier (fc.weight, fc.bias)" in caplog.text


def test_unused_tensors_are_reported(tmp_path: Path) -> None:
    weighted = create_model("tsn_resnet18", num_classes=1000, consensus="weighted")
    path = _saved(tmp_path / "tsn.pth", weighted.state_dict())

    report = create_model("resnet18", weights=str(path)).load_report

    assert report.unexpected == ["consensus.weight"]


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("r3d_18", "resnet50"),
        ("resnet18", "resnet34"),
        ("resnet34", "resnet18"),
        ("resnet18", "r3d_18"),
    ],
)
def test_another_architecture_is_refused_in_one_line_naming_both(
    tmp_path: Path, source: str, target: str
) -> None:
    path = _saved(tmp_path / "other.pth", create_model(source).state_dict())

    with pytest.raises(WeightsError) as error:
        create_model(target, weights=str(path))

    message = str(error.value)
    assert "\n" not in message
    assert f"weights of {source}, not {target}" in message


def test_identifies_a_plain_state_dict() -> None:
    assert identify_architecture(create_model("mc3_18", num_classes=7).state_dict()) == "mc3_18"
    assert identify_architecture({"foo.weight": torch.zeros(3)}) is None


def test_missing_corrupt_and_unsafe_files_are_weights_errors(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "extra": functools.partial(print)}, unsafe)
    empty = tmp_path / "empty.pt"
    torch.save({"epoch": 3}, empty)

    for path, reason in [
        (tmp_path / "absent.pth", "does not exist"),
        (corrupt, "cannot be read"),
        (unsafe, "cannot be read"),
        (empty, "holds no state dict"),
    ]:
        with pytest.raises(WeightsError, match=reason):
            create_model("resnet18", weights=str(path))


@pytest.mark.parametrize("name", ["r3d_18", "mc3_18", "r2plus1d_18"])
def test_kinetics_weights_carry_torchvisions_video_preprocessing(name: str) -> None:
    from resaction.data.transforms import kinetics_preprocess
    from resaction.models.weights import weights_preprocess

    assert weights_preprocess(name, "kinetics400") == kinetics_preprocess()
