"""Calibration to a false-alarm budget, and alarms measured as events, on generated long videos
whose incidents are known: bright stretches are incidents, dimmer blips are distractors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from resaction.detection.event_metrics import Span
from resaction.errors import ConfigError
from resaction.inference import Predictor
from resaction.inference.calibrate import Target, calibrate, choose, write_calibration
from resaction.inference.event_eval import evaluate_events, video_key
from resaction.inference.timeline import TimelineConfig, run_timeline

from .conftest import recording, tiny_preprocess

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class LevelBackend:
    """``incident`` grows with the clip's brightness: blips reach about 0.74, incidents 0.99."""

    name = "level"

    def __call__(self, batch: Any) -> np.ndarray:
        level = torch.as_tensor(batch).float().mean(dim=(1, 2, 3, 4)).numpy()
        return np.stack([np.zeros_like(level), 4.0 * level], axis=1)


def predictor(decisions: dict[str, Any] | None = None) -> Predictor:
    return Predictor(
        LevelBackend(),
        ["calm", "incident"],
        tiny_preprocess(),
        model_name="level",
        decisions={"background": "calm", **(decisions or {})},
    )


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[Span]]]:
    folder = tmp_path_factory.mktemp("footage")
    return {name: recording(folder / f"{name}.mp4", seed) for name, seed in (("a", 1), ("b", 2))}


def test_calibration_meets_its_budget_on_held_out_footage(footage, tmp_path: Path) -> None:
    video, truth = footage["a"]
    result = calibrate(predictor(), [video], {video_key(video): truth}, Target(1.0))
    point = result.record["classes"]["incident"]
    assert point["false_alarms"] == 0 and point["recall"] == 1.0
    assert 0.74 < result.thresholds["incident"] < 0.99  # above every blip, below incidents
    assert result.record["decision"]["smooth"] == 3 and result.record["rate"] == 4.0
    files = write_calibration(result, tmp_path)
    assert files["plot"].stat().st_size > 0 and files["json"].stat().st_size > 0

    held_out, facts = footage["b"]
    calibrated = predictor({"thresholds": result.thresholds, "calibration": result.record})
    scores = {}
    for name, model in (("calibrated", calibrated), ("default", predictor())):
        timeline = run_timeline(model, held_out, TimelineConfig(rate=4.0))
        scores[name] = evaluate_events(
            [timeline], {video_key(held_out): facts}, labels=["incident"], background="calm"
        )
    alarms = scores["calibrated"]["alarms"]["overall"]
    assert alarms["false_alarms"]["count"] == 0 <= 1.0  # within the budget on new footage
    assert alarms["at_tiou"]["1e-06"]["recall"] == 1.0
    assert alarms["at_tiou"]["0.5"]["recall"] >= 0.75
    # A bare 0.5 alarms on the blips too.
    assert scores["default"]["alarms"]["overall"]["false_alarms"]["count"] > 0
    assert scores["calibrated"]["frames"]["accuracy"] > 0.9
    assert 0.5 < scores["calibrated"]["ap"]["map"] <= 1.0


def test_a_budget_no_threshold_meets_names_the_best_rate() -> None:
    points = [
        {"threshold": 0.5, "recall": 1.0, "false_alarms_per_hour": 9.0, "precision": 0.5},
        {"threshold": 0.9, "recall": 0.5, "false_alarms_per_hour": 3.0, "precision": 0.8},
    ]
    with pytest.raises(ConfigError, match=r"the fewest is 3\.00 per hour \(threshold 0\.90;"):
        choose(points, Target(1.0), "fight")
    assert choose(points, Target(5.0), "fight")["threshold"] == 0.9
    assert choose(points, Target(9.0), "fight")["threshold"] == 0.5
    plateau = [{**points[1], "threshold": t} for t in (0.6, 0.7, 0.8)]
    assert choose(plateau, Target(5.0), "fight")["threshold"] == 0.7  # the middle of equals
    points[1]["alarms"] = points[0]["alarms"] = 4
    assert choose(points, Target(precision=0.8), "fight")["threshold"] == 0.9
    with pytest.raises(ConfigError, match="one of --false-alarms-per-hour or --precision"):
        Target(1.0, 0.9)
