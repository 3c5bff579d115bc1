from __future__ import annotations

import re
from pathlib import Path

import pytest

from resaction.engine.advice import SCRATCH_TOP1, difference_model_for, scratch_advice

REAL_DATA_PAGE = Path(__file__).resolve().parents[2] / "docs" / "real-data.md"


def test_the_numbers_quoted_are_those_of_the_real_data_page() -> None:
    rows = {}
    for line in REAL_DATA_PAGE.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 8 and cells[2] in ("scratch", "-"):
            model = "baseline" if cells[1].startswith("MHI") else cells[1]
            rows[cells[0], model] = float(re.match(r"([\d.]+) ±", cells[4]).group(1)) / 100
    for key, top1 in SCRATCH_TOP1.items():
        assert rows[key] == pytest.approx(top1, abs=5e-4), key


def test_an_rgb_model_from_random_weights_gets_one_line_naming_a_model_to_try() -> None:
    line = scratch_advice("tsm_resnet18", "none")
    assert line is not None and "\n" not in line
    assert "54.0%" in line and "--model tsm_diff_resnet18" in line and "--weights imagenet" in line
    assert "--model tsn_diff_resnet50" in scratch_advice("tsn_resnet50", None)
    assert difference_model_for("r2plus1d_18") == "tsm_diff_resnet18"


def test_no_advice_for_pretrained_weights_or_a_difference_model() -> None:
    assert scratch_advice("tsm_resnet18", "imagenet") is None
    assert scratch_advice("tsm_resnet18", "runs/pretrained/last.pt") is None
    assert scratch_advice("tsn_diff_resnet18", "none") is None
