"""What our own measurements say about training from scratch, as one line for the person training.

The numbers are those of ``docs/real-data.md`` (from scratch, 30 epochs, grouped folds: the fight
data is 300 clips in 5 folds, PS7 27 clips with one person left out per fold); a test checks that
they still match that page. On RGB frames, from random weights, every network stayed at or near
chance there, while the same networks on frame differences learned.
"""

from __future__ import annotations

from resaction.models import model_info

SCRATCH_TOP1: dict[tuple[str, str], float] = {
    ("fight", "tsn_resnet18"): 0.567,
    ("fight", "tsm_resnet18"): 0.540,
    ("fight", "r2plus1d_18"): 0.573,
    ("fight", "baseline"): 0.600,
    ("ps7", "tsn_resnet18"): 0.333,
    ("ps7", "tsm_resnet18"): 0.444,
    ("fight", "tsn_diff_resnet18"): 0.727,
    ("fight", "tsm_diff_resnet18"): 0.727,
}
"""Video top-1 (mean over folds) from scratch, per (dataset, model), from docs/real-data.md."""

PS7_CHANCE = 1 / 3
NO_WEIGHTS = (None, "", "none", "None")


def difference_model_for(model: str) -> str:
    """The RGB-difference model to try instead of ``model`` (same family and depth if any)."""
    info = model_info(model)
    depth = "50" if info.extra.get("backbone") == "resnet50" else "18"
    family = info.family if info.family in ("tsn", "tsm") else "tsm"
    return f"{family}_diff_resnet{depth}"


def scratch_advice(model: str, weights: str | None) -> str | None:
    """One line when ``model`` reads RGB frames and starts from random weights, else None."""
    if weights not in NO_WEIGHTS:
        return None
    info = model_info(model)
    if info.extra.get("modality", "rgb") != "rgb":
        return None
    top = SCRATCH_TOP1
    instead = difference_model_for(model)
    measured = (
        f"fight, 2 classes: TSN {top['fight', 'tsn_resnet18']:.1%}, "
        f"TSM {top['fight', 'tsm_resnet18']:.1%}, "
        f"R(2+1)D-18 {top['fight', 'r2plus1d_18']:.1%} against chance 50% and a "
        f"{top['fight', 'baseline']:.1%} non-learned baseline; PS7, 3 classes: TSN "
        f"{top['ps7', 'tsn_resnet18']:.1%}, TSM {top['ps7', 'tsm_resnet18']:.1%}, chance "
        f"{PS7_CHANCE:.1%}"
    )
    pretrained = f", or --weights {info.weights[0]} if it can be downloaded" if info.weights else ""
    learned = (
        f"tsn_diff_resnet18 {top['fight', 'tsn_diff_resnet18']:.1%} and "
        f"tsm_diff_resnet18 {top['fight', 'tsm_diff_resnet18']:.1%} on fight"
    )
    return (
        f"note: {model} from random weights on RGB frames stayed at or near chance in our "
        f"measurements ({measured}) while the frame-difference models learned ({learned}; "
        f"docs/real-data.md): try --model {instead}{pretrained}"
    )
