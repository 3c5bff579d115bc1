from __future__ import annotations

import json

import pytest

from resaction.cli import run_app
from resaction.models import list_models, model_info, model_stats


def test_json_lists_every_model_with_measured_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_app(["models", "--json"]) == 0

    rows = json.loads(capsys.readouterr().out)

    assert [row["name"] for row in rows] == list_models()
    for row in rows:
        info, stats = model_info(row["name"]), model_stats(row["name"])
        assert row["family"] == info.family and row["weights"] == list(info.weights)
        assert (row["clip_len"], row["input_size"]) == (info.clip_len, info.input_size)
        assert row["params"] == stats.params and row["gflops"] == round(stats.gflops, 3)


def test_pattern_selects_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_app(["models", "tsm_*", "--json"]) == 0

    names = [row["name"] for row in json.loads(capsys.readouterr().out)]

    assert names == list_models("tsm_*") and names


def test_table_shows_names_sizes_and_weights(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_app(["models", "tsn_*"]) == 0

    out = capsys.readouterr().out

    assert all(name in out for name in list_models("tsn_*"))
    info = model_info("tsn_resnet50")
    assert f"{info.clip_len} x {info.input_size}²" in out
    assert "GFLOPs" in out and "imagenet_v2" in out
    assert "r3d_18" not in out


def test_no_match_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_app(["models", "vit_*"]) == 1

    err = capsys.readouterr().err

    assert "no model matches 'vit_*'" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("width", [80, 60])
def test_the_table_never_cuts_a_name_short(
    width: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from resaction.cli.app import console

    monkeypatch.setattr(console, "width", width)
    assert run_app(["models"]) == 0

    lines = capsys.readouterr().out.splitlines()

    assert "…" not in "\n".join(lines)
    assert max(len(line) for line in lines) <= width
    if width == 80:  # every name and weight set whole, on one line
        cells = {cell.strip() for line in lines for cell in line.split("│")}
        assert set(list_models()) <= cells
        assert {"kinetics400", "imagenet_v2", "imagenet"} <= cells
