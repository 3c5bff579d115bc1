"""Event metrics worked by hand: tIoU, ActivityNet matching, AP/mAP, false alarms, delay, frames."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from resaction.detection.event_metrics import (
    Span,
    event_metrics,
    frame_accuracy,
    match,
    plot_event_pr,
    pr_curve_points,
    tiou,
)
from resaction.detection.poisson import chi2_ppf, gamma_p, poisson_interval
from resaction.errors import ConfigError


def S(label: str, start: float, end: float, score: float = 1.0) -> Span:
    return Span(label, start, end, score)


def metrics(truth, detections, durations=None, classes=("a",), **kwargs):
    durations = durations or {v: 3600.0 for v in {*truth, *detections}} or {"v": 3600.0}
    result = event_metrics(truth, detections, durations, classes, **kwargs)
    json.dumps(result, allow_nan=False)  # strict JSON: no NaN anywhere
    return result


# tIoU


def test_tiou_edge_cases() -> None:
    assert tiou(S("a", 0, 10), S("a", 0, 10)) == 1.0
    assert tiou(S("a", 0, 10), S("a", 20, 30)) == 0.0
    assert tiou(S("a", 0, 10), S("a", 10, 20)) == 0.0  # touching
    assert tiou(S("a", 0, 10), S("a", 2, 4)) == pytest.approx(0.2)  # contained
    assert tiou(S("a", 0, 10), S("a", 5, 15)) == pytest.approx(1 / 3)
    assert tiou(S("a", 5, 15), S("a", 0, 10)) == tiou(S("a", 0, 10), S("a", 5, 15))
    assert tiou(S("a", 0, 10), S("a", 5, 5)) == 0.0  # an instant inside a span
    assert tiou(S("a", 5, 5), S("a", 5, 5)) == 1.0  # the same instant
    assert tiou(S("a", 5, 5), S("a", 6, 6)) == 0.0


def test_span_validation() -> None:
    with pytest.raises(ConfigError, match="before it starts"):
        S("a", 5, 4)
    with pytest.raises(ConfigError, match="finite"):
        S("a", 0, math.nan)
    with pytest.raises(ConfigError, match="label"):
        S("", 0, 1)


# matching


def test_a_detection_exactly_on_the_threshold_matches() -> None:
    assert match([S("a", 0, 10)], [S("a", 0, 5)], 0.5) == [0]  # tIoU 0.5 >= 0.5
    assert match([S("a", 0, 10)], [S("a", 0, 5)], 0.51) == [None]
    # float rounding puts this one at 0.4999999999999999: still on the boundary
    assert tiou(S("a", 0.1, 0.4), S("a", 0.1, 0.25)) < 0.5
    assert match([S("a", 0.1, 0.4)], [S("a", 0.1, 0.25)], 0.5) == [0]
    at = metrics({"v": [S("a", 0, 10)]}, {"v": [S("a", 0, 5)]}, tious=(0.5, 0.7))["classes"]["a"]
    counts = {t: [at["at_tiou"][t][n] for n in ("tp", "fp", "fn", "f1")] for t in ("0.5", "0.7")}
    assert counts == {"0.5": [1, 0, 0, 1.0], "0.7": [0, 1, 1, 0.0]}


def test_two_detections_on_one_truth_the_second_is_a_false_positive() -> None:
    truth = [S("a", 0, 10)]
    found = [S("a", 0, 10, 0.9), S("a", 1, 10, 0.8)]
    assert match(truth, found, 0.5) == [0, None]
    counts = metrics({"v": truth}, {"v": found})["classes"]["a"]["at_tiou"]["0.5"]
    assert (counts["tp"], counts["fp"], counts["fn"]) == (1, 1, 0)
    assert counts["precision"] == 0.5 and counts["recall"] == 1.0
    assert counts["f1"] == pytest.approx(2 / 3)


def test_the_higher_score_takes_the_truth_first_even_with_a_lower_tiou() -> None:
    truth = [S("a", 0, 10)]
    found = [S("a", 0, 10, 0.6), S("a", 0, 6, 0.9)]  # given order is not score order
    assert match(truth, found, 0.5) == [None, 0]


def test_a_detection_takes_the_free_truth_with_the_highest_tiou() -> None:
    truth = [S("a", 0, 10), S("a", 4, 14)]
    first = S("a", 4, 13, 0.9)  # tIoU 6/13 with truth 0, 0.9 with truth 1
    second = S("a", 3, 13, 0.8)  # best is truth 1 (9/11, taken), then truth 0 (7/13 = 0.54)
    assert match(truth, [first, second], 0.5) == [1, 0]
    assert match(truth, [first, second], 0.6) == [1, None]


def test_a_class_mismatch_is_not_a_match() -> None:
    assert match([S("fight", 0, 10)], [S("fall", 0, 10)], 0.5) == [None]
    result = metrics(
        {"v": [S("fight", 0, 10)]}, {"v": [S("fall", 0, 10)]}, classes=["fight", "fall"]
    )
    fight, fall = result["classes"]["fight"], result["classes"]["fall"]
    assert fight["at_tiou"]["0.5"]["fn"] == 1 and fight["at_tiou"]["0.5"]["tp"] == 0
    assert fall["at_tiou"]["0.5"]["fp"] == 1
    assert fall["false_alarms"]["count"] == 1  # no "fall" truth to overlap


# AP and mAP

# Ranked: d1 0.9 hits T1, d2 0.8 hits nothing, d3 0.7 hits T2, d4 0.6 repeats T1; T3 is missed.
# precision 1, 1/2, 2/3, 1/2 at recall 1/3, 1/3, 2/3, 2/3; the envelope is 1 up to recall 1/3,
# 2/3 up to 2/3 and 0 after: AP = 1/3 * 1 + 1/3 * 2/3 = 5/9. Split over two videos, pooled.
RANKED_TRUTH = {"v1": [S("a", 0, 10)], "v2": [S("a", 20, 30), S("a", 40, 50)]}
RANKED_FOUND = {
    "v1": [S("a", 0, 10, 0.6), S("a", 0, 10, 0.9)],
    "v2": [S("a", 100, 110, 0.8), S("a", 20, 30, 0.7)],
}


def test_ap_of_a_hand_worked_ranked_list_pooled_over_videos() -> None:
    result = metrics(RANKED_TRUTH, RANKED_FOUND, {"v1": 1800.0, "v2": 1800.0})
    ap = result["classes"]["a"]["ap"]
    assert set(ap) == {"0.3", "0.4", "0.5", "0.6", "0.7"}
    assert all(value == pytest.approx(5 / 9) for value in ap.values())
    assert result["overall"]["map"] == pytest.approx(5 / 9)
    recall, precision = pr_curve_points(RANKED_TRUTH, RANKED_FOUND, ["a"])["a"]
    np.testing.assert_allclose(recall, [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(precision, [1, 1 / 2, 2 / 3, 1 / 2])


def test_map_averages_classes_with_truth_over_the_ap_tious() -> None:
    truth = {**RANKED_TRUTH, "v3": [S("b", 0, 10)]}
    found = {**RANKED_FOUND, "v3": [S("b", 0, 5, 0.5), S("c", 60, 70, 0.9)]}  # b: tIoU 0.5
    result = metrics(truth, found, classes=["a", "b", "c"])
    b, c = result["classes"]["b"], result["classes"]["c"]
    assert b["ap"] == {"0.3": 1.0, "0.4": 1.0, "0.5": 1.0, "0.6": 0.0, "0.7": 0.0}
    assert b["ap_mean"] == pytest.approx(0.6)
    assert c["ap"]["0.5"] is None and c["ap_mean"] is None  # no truth: undefined
    overall = result["overall"]
    assert overall["map_classes"] == ["a", "b"]
    assert overall["map_by_tiou"]["0.3"] == pytest.approx((5 / 9 + 1) / 2)
    assert overall["map_by_tiou"]["0.7"] == pytest.approx((5 / 9 + 0) / 2)
    assert overall["map"] == pytest.approx((5 / 9 + 0.6) / 2)
    assert result["protocol"]["map"] == "ActivityNet mAP over tIoU 0.3:0.1:0.7"
    assert result["protocol"]["tious"] == [0.3, 0.5, 0.7]


# false alarms and the Poisson interval


def test_poisson_interval_known_values() -> None:
    assert poisson_interval(0) == (0.0, pytest.approx(3.689, abs=5e-4))
    assert poisson_interval(0)[1] == pytest.approx(-math.log(0.025), rel=1e-10)
    lower, upper = poisson_interval(1)
    assert lower == pytest.approx(-math.log(0.975), rel=1e-10)  # 0.0253
    assert upper == pytest.approx(5.572, abs=5e-4)
    assert poisson_interval(10) == (pytest.approx(4.795, abs=5e-4), pytest.approx(18.39, abs=5e-3))
    assert poisson_interval(10, exposure=2.0)[1] == pytest.approx(poisson_interval(10)[1] / 2)


@pytest.mark.parametrize("k", [1, 3, 10, 57, 400])
def test_poisson_bounds_leave_two_and_a_half_percent_in_each_tail(k: int) -> None:
    def cdf(n: int, mean: float) -> float:  # P(X <= n), summed directly in logs
        return sum(math.exp(-mean + i * math.log(mean) - math.lgamma(i + 1)) for i in range(n + 1))

    lower, upper = poisson_interval(k)
    assert 1 - cdf(k - 1, lower) == pytest.approx(0.025, rel=1e-7)
    assert cdf(k, upper) == pytest.approx(0.025, rel=1e-7)


def test_incomplete_gamma_against_closed_forms() -> None:
    for x in (0.01, 0.3, 1.0, 2.5, 9.0):
        assert gamma_p(1.0, x) == pytest.approx(1 - math.exp(-x), rel=1e-12)
        assert gamma_p(0.5, x) == pytest.approx(math.erf(math.sqrt(x)), rel=1e-12)
    assert chi2_ppf(0.95, 1) == pytest.approx(1.959964**2, rel=1e-6)
    assert chi2_ppf(0.3, 0) == 0.0
    with pytest.raises(ConfigError):
        poisson_interval(-1)
    with pytest.raises(ConfigError):
        poisson_interval(1, exposure=0.0)


def test_false_alarms_are_detections_overlapping_no_truth_of_their_class() -> None:
    truth = {"v1": [S("a", 0, 10)], "v2": []}
    found = {
        "v1": [
            S("a", 5, 15, 0.9),  # overlaps: a false positive at tIoU 0.5, not a false alarm
            S("a", 10, 20, 0.8),  # touches only: false alarm
            S("a", 100, 110, 0.7),  # false alarm
        ],
        "v2": [S("b", 0, 10, 0.9)],  # no "b" truth anywhere: false alarm
    }
    result = metrics(truth, found, {"v1": 1800.0, "v2": 1800.0}, classes=["a", "b"])
    assert result["hours"] == 1.0
    a, b = result["classes"]["a"]["false_alarms"], result["classes"]["b"]["false_alarms"]
    assert (a["count"], a["per_hour"]) == (2, 2.0)
    assert b["count"] == 1 and b["per_hour_95"] == pytest.approx([0.02532, 5.5716], abs=1e-4)
    overall = result["overall"]["false_alarms"]
    assert overall["count"] == 3 and overall["per_hour"] == 3.0
    assert overall["per_hour_95"] == pytest.approx(list(poisson_interval(3)))
    two_hours = metrics(truth, found, {"v1": 3600.0, "v2": 3600.0}, classes=["a", "b"])
    assert two_hours["overall"]["false_alarms"]["per_hour"] == 1.5
    assert result["classes"]["a"]["at_tiou"]["0.5"]["fp"] == 3


# delay


def test_detection_delay_sign_and_summary() -> None:
    truth = {"v": [S("a", 10, 20), S("a", 30, 40), S("a", 60, 70)]}
    found = {"v": [S("a", 8, 18, 0.9), S("a", 33, 40, 0.8), S("a", 66, 70, 0.7)]}
    # tIoU 8/12, 0.7 and 0.4: all matched at the lowest tIoU 0.3, only two at 0.5
    delay = metrics(truth, found)["classes"]["a"]["delay"]
    assert (delay["tiou"], delay["count"], delay["values"]) == (0.3, 3, [-2.0, 3.0, 6.0])
    assert (delay["mean"], delay["median"]) == (pytest.approx(7 / 3), 3.0)
    delay = metrics(truth, found, tious=(0.5, 0.7))["classes"]["a"]["delay"]
    assert (delay["tiou"], delay["values"]) == (0.5, [-2.0, 3.0])


# frame accuracy


def test_frame_accuracy_with_background_and_half_open_spans() -> None:
    truth = [S("fight", 0, 10), S("fall", 20, 30)]
    samples = [(5, "fight"), (10, "fight"), (15, "none"), (25, "fight"), (29.9, "fall")]
    result = frame_accuracy(truth, samples, background=None)
    assert result["accuracy"] == pytest.approx(3 / 5) and result["correct"] == 3
    assert result["per_class_recall"] == {"fall": 0.5, "fight": 1.0, "none": 0.5}
    assert result["per_class_samples"] == {"fall": 2, "fight": 1, "none": 2}
    named = frame_accuracy(truth, [(15, "idle"), (40, "fight")], background="idle")
    assert named["per_class_recall"] == {"idle": 0.5} and named["background"] == "idle"


def test_frame_accuracy_overlapping_truth_accepts_either_label_and_no_samples() -> None:
    truth = [S("fight", 0, 10), S("crowd", 5, 15)]
    assert frame_accuracy(truth, [(7, "crowd")])["accuracy"] == 1.0
    empty = frame_accuracy(truth, [])
    assert (empty["samples"], empty["accuracy"], empty["per_class_recall"]) == (0, 0.0, {})


# empty inputs and validation


def test_no_detections() -> None:
    result = metrics({"v": [S("a", 0, 10), S("a", 20, 30)]}, {})
    a = result["classes"]["a"]
    zeros = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 0, "fn": 2}
    assert a["at_tiou"]["0.5"] == zeros
    assert a["ap"]["0.5"] == 0.0 and result["overall"]["map"] == 0.0
    assert a["false_alarms"]["count"] == 0
    assert a["false_alarms"]["per_hour_95"] == [0.0, pytest.approx(3.689, abs=5e-4)]
    assert a["delay"] == {"tiou": 0.3, "count": 0, "mean": None, "median": None, "values": []}


def test_no_truth_and_nothing_at_all() -> None:
    result = metrics({}, {"v": [S("a", 0, 10, 0.5)]})
    a = result["classes"]["a"]
    assert (a["at_tiou"]["0.3"]["precision"], a["at_tiou"]["0.3"]["recall"]) == (0.0, 0.0)
    assert a["at_tiou"]["0.3"]["fp"] == 1 and a["false_alarms"]["count"] == 1
    assert a["ap"]["0.3"] is None and result["overall"]["map"] is None
    nothing = metrics({}, {}, {"v": 60.0})
    assert nothing["overall"]["at_tiou"]["0.5"]["f1"] == 0.0
    assert nothing["overall"]["false_alarms"]["per_hour"] == 0.0
    assert pr_curve_points({}, {}, ["a"]) == {}


def test_labels_outside_the_classes_are_ignored_and_counted() -> None:
    result = metrics({"v": [S("x", 0, 1), S("a", 0, 1)]}, {"v": [S("y", 0, 1), S("y", 2, 3)]})
    assert result["ignored"] == {"truth": 1, "detections": 2}
    assert result["classes"]["a"]["truth"] == 1 and list(result["classes"]) == ["a"]


def test_bad_inputs_are_config_errors() -> None:
    truth = {"v": [S("a", 0, 10)]}
    with pytest.raises(ConfigError, match="durations lack"):
        event_metrics(truth, {"w": []}, {"v": 10.0}, ["a"])
    with pytest.raises(ConfigError, match="more than 0 seconds"):
        event_metrics(truth, {}, {"v": 0.0}, ["a"])
    with pytest.raises(ConfigError, match="tious"):
        event_metrics(truth, {}, {"v": 10.0}, ["a"], tious=(0.0, 0.5))
    with pytest.raises(ConfigError, match="distinct"):
        event_metrics(truth, {}, {"v": 10.0}, ["a", "a"])
    with pytest.raises(ConfigError, match="Span"):
        event_metrics({"v": [("a", 0, 10)]}, {}, {"v": 10.0}, ["a"])


def test_plot_event_pr_writes_a_png(tmp_path) -> None:
    curves = pr_curve_points(RANKED_TRUTH, RANKED_FOUND, ["a"])
    path = plot_event_pr(curves, tmp_path / "pr_curves.png")
    assert path.exists() and path.read_bytes()[:4] == b"\x89PNG"
