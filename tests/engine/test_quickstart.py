from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from resaction.cli import run_app


def groups_of(path: Path) -> set[str]:
    with path.open() as handle:
        return {row["group"] for row in csv.DictReader(handle)}


@pytest.mark.slow
def test_quickstart_shows_the_temporal_model_beating_tsn_on_reversed_pairs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "quickstart"
    code = run_app(["quickstart", "--quick", "--out", str(out), "--no-progress"])
    printed = capsys.readouterr()
    assert code == 0, printed.err

    summary = json.loads((out / "quickstart.json").read_text())
    temporal, orderless = summary["models"]
    assert temporal["model"] == "r3d_10" and orderless["model"] == "tsn_resnet18"
    assert temporal["reversed_pair_accuracy"] > orderless["reversed_pair_accuracy"]

    assert not groups_of(out / "train.csv") & groups_of(out / "test.csv")
    prediction = summary["prediction"]
    assert Path(prediction["video"]).is_file()
    assert prediction["top"][0][0] in summary["classes"]
    for plot in summary["plots"]:
        assert Path(plot).read_bytes()[:4] == b"\x89PNG"
    assert "reversed pairs" in printed.out
