"""Alarms you can trust (issue 18): fight alarms calibrated on one recording, tested on another.

Thresholds are chosen for a false-alarm budget and measured on footage the calibration never saw.

On the surveillance fight data, for each of the 5 folds `resaction crossval --folds 5` makes:

1. the fold's training side is split once more by group (about 20% of the groups, seeded) into
   train-proper and a calibration part; the model trains on train-proper with the recipe of
   docs/real-data.md (`resaction train`, from scratch, 30 epochs, last epoch kept);
2. two long recordings are joined (`alarms_data.py`): a calibration recording (the calibration
   part's clips, fight and noFight, and one half of the non-fight footage of the other datasets)
   and a test recording (the fold's held-out clips and the other half); the halves split the
   other footage by source and are the same for every fold. Fight clips are spread out with about
   equal non-fight footage between them; a truth CSV gives each fight clip's span;
3. each recording is scored once (`score_videos`, 4 windows a second, the model's own window);
   on the calibration recording the watcher's decisions (default smoothing, minimum duration, gap
   and cooldown) are replayed at every threshold and the threshold for 1 and for 5 false alarms
   per hour is chosen (`sweep_class`, `choose`: what `resaction calibrate` does);
4. on the test recording the same decisions are replayed at those thresholds and at a fixed 0.5,
   and the alarms are measured as events (`evaluate_events`): recall (an alarm overlaps the
   incident, and at tIoU 0.5), false alarms per hour with their 95% Poisson interval, precision,
   mAP over tIoU 0.3:0.1:0.7, delays and frame accuracy, per fold and pooled over folds.

Writes benchmarks/results/alarms.json and prints a table. Every `resaction` command is printed
before it runs (`# ` lines are steps done through the Python API); it resumes where it stopped:
finished training is skipped, recordings and scores are cached and each fold's result is kept as
JSON in its folder under --out.

Caveat: the joined clips have hard cuts at their boundaries; a model may fire on a cut or a scene
change, and the cut gives a sharp, well-aligned start and end that real continuous footage lacks,
which may flatter tIoU and delay; the other datasets' footage differs in look from the fight data,
which may make false alarms rarer than on the same camera.

    python benchmarks/alarms.py [--folds 1,2,3,4,5] [--epochs 30] [--model tsn_diff_resnet18]
                                [--out runs/alarms] [--seed 0] [--threads 1]
    python benchmarks/alarms.py --markdown          # the table, from the saved results
    python benchmarks/alarms.py --plot docs/figures/alarms.png

`--max-clip-seconds S` trims longer clips (default: none is trimmed); `--no-clip-eval` skips the
clip-level top-1 of each fold's model on its held-out clips. For development only, `--max-clips N`
keeps N fight-data clips per side and `--max-footage-minutes M` M minutes of each half of the
other footage (use another --out and --results: a fold folder refuses other settings).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

import alarms_data as footage
from alarms_data import (
    BUDGETS,
    CALIBRATION_SHARE,
    FIGHT,
    FOLDS,
    choose_thresholds,
    curve,
    fight_clips,
    fold_parts,
    groups_of,
    measure,
    pooled,
)
from real_data import (
    RECIPE,
    ROOT,
    SHARED,
    _finished,
    model_input,
    resaction,
    run,
    small_copy,
)

RESULTS = ROOT / "benchmarks" / "results" / "alarms.json"
DATASET = "surveillance_camera_fight"
RATE = 4.0
BACKGROUND, FIXED = footage.BACKGROUND, footage.FIXED
CAVEAT = (
    "The recordings are clips joined end to end: they have hard cuts at the clip boundaries. A "
    "model may fire on a cut or a scene change, and a cut gives each incident a sharp, "
    "well-aligned start and end that real continuous footage lacks, which may flatter tIoU and "
    "delay. The other datasets' footage differs in look from the fight data, which may make "
    "false alarms rarer than on footage of the same cameras."
)


DROPPED = ("stamp", "calibration_sweep", "test_sweep")  # kept in each fold's result.json only


def say(line: str) -> None:
    print(line, flush=True)


# ---------------------------------------------------------------- data and training


def train_command(model: str, epochs: int, data: str, out: str) -> list[str]:
    """The recipe of docs/real-data.md on train-proper, from scratch, the last epoch kept."""
    return ["train", "--data", data, "--model", model, "--epochs", str(epochs), "--weights", "none",
            *RECIPE, *model_input(model), "--val-split", "0", "--out", out]  # fmt: skip


def train(fold_dir: Path, part, model: str, epochs: int) -> tuple[Path, float | None]:
    """Train-proper's model (resumed if interrupted, skipped if finished); seconds it took."""
    out = fold_dir / "train"
    data = part.to_csv(fold_dir / "train.csv")
    if _finished(out, epochs):
        say(f"# fold model finished: {out / 'last.pt'}")
        return out / "last.pt", None
    resume = ["--resume"] if (out / "config.yaml").is_file() else []
    started = time.perf_counter()
    run(resaction(*train_command(model, epochs, str(data), str(out)), *resume, "--no-progress"))
    return out / "last.pt", time.perf_counter() - started


def clip_top1(checkpoint: Path, test_csv: Path, out: Path) -> float | None:
    """Video top-1 of the fold's model on its held-out clips (`resaction evaluate`), cached."""
    results = out / "results.json"
    if not (results.is_file() and results.stat().st_mtime > checkpoint.stat().st_mtime):
        command = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(test_csv)]
        run(resaction(*command, "--clips", "2", "--crops", "1", "--out", str(out), "--no-progress"))
    return json.loads(results.read_text())["metrics"]["video"]["top1"]


# ---------------------------------------------------------------- scores, cached


def scored(predictor, checkpoint: Path, truth_csv: Path, cache: Path) -> tuple[list, dict, float]:
    """Timelines of the recordings in ``truth_csv`` (scored once, then read back), their truth,
    and the seconds scoring took (0 when read back)."""
    from resaction.inference.calibrate import score_videos
    from resaction.inference.timeline import TimelineConfig

    videos, truth = footage.read_truth_csv(truth_csv, predictor.classes)
    stamp = footage.digest(checkpoint, truth_csv, *videos)
    timelines = footage.load_timelines(cache, stamp)
    if timelines is not None:
        say(f"# scores read back from {cache}")
        return timelines, truth, 0.0
    say(
        f"# score {', '.join(str(v) for v in videos)}: score_videos(predictor, videos, "
        f"TimelineConfig(rate={RATE:g}, background={BACKGROUND!r}))"
    )
    started = time.perf_counter()
    config = TimelineConfig(rate=RATE, background=BACKGROUND)
    timelines, skipped = score_videos(predictor, videos, config)
    if skipped:
        raise SystemExit(f"could not score {skipped}")
    seconds = time.perf_counter() - started
    minutes = sum(t.duration for t in timelines) / 60
    say(f"# scored {minutes:.1f} min in {seconds:.0f} s; window {timelines[0].extra['window_s']} s")
    footage.save_timelines(timelines, cache, stamp)
    return timelines, truth, seconds


# ---------------------------------------------------------------- one fold


def fold_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "model": args.model,
        "epochs": args.epochs,
        "seed": args.seed,
        "max_clips": args.max_clips,
        "max_footage_minutes": args.max_footage_minutes,
        "max_clip_seconds": args.max_clip_seconds,
    }


def run_fold(fold: int, args: argparse.Namespace, data: Path, others) -> dict[str, Any]:
    """Train, join, score and measure one fold; its result (cached in ``result.json``) and its
    test timelines, truth and thresholds for pooling."""
    import torch

    from resaction.inference.calibrate import default_decision, sweep_class
    from resaction.inference.predictor import Predictor

    fold_dir = args.out / f"fold{fold}"
    settings_file, timings_file = fold_dir / "settings.json", fold_dir / "timings.json"
    if settings_file.is_file() and json.loads(settings_file.read_text()) != fold_settings(args):
        raise SystemExit(
            f"{fold_dir} was made with other settings ({settings_file.read_text().strip()}): "
            "use another --out or delete it"
        )
    fold_dir.mkdir(parents=True, exist_ok=True)
    settings_file.write_text(json.dumps(fold_settings(args)))
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}

    def timed(name: str, started: float, **extra: Any) -> None:
        timings[name] = {"seconds": round(time.perf_counter() - started, 1), **extra}
        timings_file.write_text(json.dumps(timings, indent=1))

    parts = fold_parts(data, fold, args.seed, args.max_clips)
    for name in ("calibration", "test"):
        parts[name].to_csv(fold_dir / f"{name}.csv")
    say(
        f"# fold {fold}: "
        + "; ".join(
            f"{name} {len(part)} clips ({len(groups_of(part))} groups)"
            for name, part in parts.items()
        )
    )
    checkpoint, seconds = train(fold_dir, parts["train"], args.model, args.epochs)
    if seconds is not None:
        timed("train", time.perf_counter() - seconds, clips=len(parts["train"]), epochs=args.epochs)
    truth_csv = {}
    for side, (name, half) in enumerate(zip(("calibration", "test"), others, strict=True)):
        started = time.perf_counter()
        clips = fight_clips(parts[name]) + half
        seed = (args.seed, fold, side)
        recordings, most = fold_dir / "recordings", args.max_clip_seconds
        truth_csv[name] = footage.build_recording(clips, recordings, name, seed, most, say)
        if time.perf_counter() - started > 1:
            timed(f"join_{name}", started, minutes=round(footage.minutes(clips), 2))
    torch.set_num_threads(args.threads)
    predictor = Predictor.from_checkpoint(checkpoint)
    scores = {}
    for name in ("calibration", "test"):
        cache = fold_dir / f"scores_{name}.npz"
        scores[name] = scored(predictor, checkpoint, truth_csv[name], cache)
        if scores[name][2]:
            minutes = round(sum(t.duration for t in scores[name][0]) / 60, 2)
            timed(f"score_{name}", time.perf_counter() - scores[name][2], minutes=minutes)
    calibration, calibration_truth, _ = scores["calibration"]
    test, test_truth, _ = scores["test"]
    stamp = footage.digest(fold_dir / "scores_calibration.npz", fold_dir / "scores_test.npz")
    result_file = fold_dir / "result.json"
    result = json.loads(result_file.read_text()) if result_file.is_file() else {}
    if result.get("stamp") != stamp:
        started = time.perf_counter()
        decision = default_decision()
        say(
            f"# fold {fold}: sweep_class on the calibration recording, choose for "
            + ", ".join(f"Target(false_alarms_per_hour={b:g})" for b in BUDGETS)
        )
        sweep = sweep_class(calibration, calibration_truth, FIGHT, decision)
        chosen = choose_thresholds(sweep)
        thresholds = {name: point["threshold"] for name, point in chosen.items()}
        say(
            f"# fold {fold}: replay_windows and evaluate_events on the test recording at "
            + ", ".join(f"{name} ({value:.2f})" for name, value in thresholds.items())
        )
        result = {
            "fold": fold,
            "stamp": stamp,
            "checkpoint": footage.relative(checkpoint),
            "clips": {name: len(part) for name, part in parts.items()},
            "groups": {name: groups_of(part) for name, part in parts.items()},
            "window_s": test[0].extra.get("window_s"),
            "decision": decision,
            "minutes": {
                "calibration": sum(t.duration for t in calibration) / 60,
                "test": sum(t.duration for t in test) / 60,
            },
            "incidents": {
                "calibration": _incidents(calibration_truth),
                "test": _incidents(test_truth),
            },
            "thresholds": chosen,
            "test": measure(test, test_truth, thresholds, decision),
            "calibration_sweep": curve(sweep),
            "test_sweep": curve(sweep_class(test, test_truth, FIGHT, decision)),
        }
        timed("measure", started)
    say(f"# fold {fold}: window {result['window_s']} s (timeline.extra['window_s'])")
    if args.clip_eval and result.get("clip_top1") is None:
        started = time.perf_counter()
        result["clip_top1"] = clip_top1(checkpoint, fold_dir / "test.csv", fold_dir / "eval")
        if time.perf_counter() - started > 1:
            timed("clip_eval", started, clips=len(parts["test"]))
    result["timings"] = timings
    result_file.write_text(json.dumps(result, indent=1))
    thresholds = {name: point["threshold"] for name, point in result["thresholds"].items()}
    return {"result": result, "test": test, "truth": test_truth, "thresholds": thresholds}


def _incidents(truth: dict) -> int:
    return sum(span.label == FIGHT for spans in truth.values() for span in spans)


# ---------------------------------------------------------------- the run, the table, the plot


def protocol(args, folds: list[dict], others, data: Path) -> dict[str, Any]:
    from resaction.inference.calibrate import default_decision

    recipe = [
        "resaction",
        *train_command(args.model, args.epochs, "foldK/train.csv", "foldK/train"),
    ]
    halves = {
        name: {
            "minutes": round(footage.minutes(half), 2),
            "clips": len(half),
            "sources": sorted({c.source for c in half}),
        }
        for name, half in zip(("calibration", "test"), others, strict=True)
    }
    return {
        "data": f"{DATASET}, re-encoded at a 128-pixel short side ({footage.relative(data)})",
        "folds": [f["result"]["fold"] for f in folds],
        "seed": args.seed,
        "fold_rule": f"the folds of `resaction crossval --folds {FOLDS}` (kfold of the data with "
        f"its groups.csv, seed {args.seed})",
        "calibration_rule": f"about {CALIBRATION_SHARE:.0%} of the fold's training groups "
        f"(train_test_split by group, seed {args.seed}); the model trains on the rest",
        "model": args.model,
        "recipe": " ".join(recipe),
        "other_footage": {
            "datasets": [folder for folder, _ in footage.OTHER_FOOTAGE],
            "minutes": round(footage.minutes(others[0] + others[1]), 2),
            "halves": halves,
            "split": "whole sources (camera, person, source video, or the whole dataset) dealt "
            "largest first to the half with fewer minutes; the same halves in every fold",
        },
        "recordings": {
            "fps": footage.FPS,
            "size": f"{footage.WIDTH}x{footage.HEIGHT}",
            "frames": "decoded at a 128-pixel short side, scaled to fit whole on black, nearest "
            "source frame for each output frame",
            "order": "seeded; the non-fight clips shuffled and cut into runs of about equal "
            "seconds, one fight clip between every two runs",
            "max_clip_seconds": args.max_clip_seconds,
            "max_part_minutes": footage.MAX_PART_SECONDS / 60,
            "minutes": {f"fold{f['result']['fold']}": f["result"]["minutes"] for f in folds},
        },
        "rate": RATE,
        "window_s": {f"fold{f['result']['fold']}": f["result"]["window_s"] for f in folds},
        "decision": default_decision(),
        "budgets_per_hour": list(BUDGETS),
        "fixed_threshold": FIXED,
        "rules": {
            "caught": "an alarm matches the incident at tIoU 0.3 (one alarm, one incident); "
            "recall at any overlap is also given",
            "false_alarm": "every alarm that catches no incident, per hour of test footage with "
            "the exact 95% Poisson interval (alarms overlapping no incident: no_overlap_alarms)",
            "map": "of the ranked segments (runs of the smoothed top label), tIoU 0.3:0.1:0.7; "
            "it does not depend on the threshold",
            "alarm_delay": "alarm time (the end of the window that opened it) minus the "
            "incident's start, for caught incidents",
            "pooled": "all folds' test recordings together, each at its own fold's thresholds; "
            "the other footage's test half is in every fold's recording, so pooled hours count "
            "it once per fold (scored by that fold's model)",
        },
        "threads": args.threads,
        "caps": {"max_clips": args.max_clips, "max_footage_minutes": args.max_footage_minutes},
        "caveat": CAVEAT,
    }


def _interval(row: dict[str, Any]) -> str:
    low, high = row["false_alarms_per_hour_95"]
    return f"{row['false_alarms_per_hour']:.1f} [{low:.1f}, {high:.1f}]"


def _delay(row: dict[str, Any]) -> str:
    median = row["alarm_delay"]["median"]
    return "-" if median is None else f"{median:.1f} s"


def table_rows(saved: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, row in saved["pooled"].items():
        thresholds = ", ".join(f"{f['thresholds'][name]['threshold']:.2f}" for f in saved["folds"])
        rows.append(
            [
                name,
                thresholds,
                f"{row['caught']}/{row['incidents']} = {row['recall']:.2f}",
                f"{row['recall_any_overlap']:.2f}",
                _interval(row),
                f"{row['precision']:.2f}",
                "-" if row["map"] is None else f"{row['map']:.3f}",
                _delay(row),
            ]
        )
    return rows


COLUMNS = ("operating point", "thresholds", "recall (tIoU 0.3)", "recall (any overlap)",
           "false alarms/h [95% CI]",
           "precision", "mAP", "median delay")  # fmt: skip


def title(saved: dict[str, Any]) -> str:
    hours = next(iter(saved["pooled"].values()))["hours"]
    return (
        f"Fight alarms on joined test recordings, {len(saved['folds'])} fold(s) pooled "
        f"({hours:.2f} h of footage)"
    )


def markdown_table(saved: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "| --- | --- |" + " ---: |" * (len(COLUMNS) - 2)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(saved)]
    return "\n".join(lines)


def print_table(saved: dict[str, Any]) -> None:
    table = Table(title=title(saved))
    for column in COLUMNS:
        table.add_column(column)
    for row in table_rows(saved):
        table.add_row(*row)
    Console(width=max(120, Console().width)).print(table)


def plot(saved: dict[str, Any], path: Path) -> Path:
    """Pooled test recall against false alarms per hour, threshold by threshold from the highest
    (recall is not monotone in false alarms: a lower threshold can merge alarms), with the three
    operating points marked."""
    from resaction.detection.curves import plot_curves

    sweep = sorted(saved["pooled_test_sweep"], key=lambda p: -p["threshold"])
    curves = {
        "test, thresholds 0.99 to 0.05": (
            np.array([p["false_alarms_per_hour"] for p in sweep]),
            np.array([p["recall"] for p in sweep]),
        )
    }
    points = {}
    for name, row in saved["pooled"].items():
        points[name] = (row["false_alarms_per_hour"], row["recall"])
        curves[name] = (np.array([points[name][0]]), np.array([points[name][1]]))  # its colour
    return plot_curves(
        curves,
        path,
        title=title(saved).replace("Fight alarms on", "Fight alarms,"),
        xlabel="false alarms per hour (test)",
        ylabel="recall (incidents an alarm matched at tIoU 0.3)",
        points=points,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", default=",".join(str(k) for k in range(1, FOLDS + 1)))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--model", default="tsn_diff_resnet18")
    parser.add_argument("--out", type=Path, default=Path("runs/alarms"))
    parser.add_argument("--seed", type=int, default=0, help="folds, calibration split, halves")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON written")
    parser.add_argument("--max-clip-seconds", type=float, help="trim longer clips (default: no)")
    parser.add_argument(
        "--no-clip-eval",
        dest="clip_eval",
        action="store_false",
        help="skip the clip-level top-1 on the held-out clips",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (OMP_NUM_THREADS)")
    parser.add_argument("--max-clips", type=int, help="development: fight clips per side")
    parser.add_argument("--max-footage-minutes", type=float, help="development: per half")
    parser.add_argument("--markdown", action="store_true", help="print the saved table")
    parser.add_argument("--plot", type=Path, help="draw the saved results into this PNG")
    args = parser.parse_args()
    args.out = args.out if args.out.is_absolute() else ROOT / args.out
    if args.markdown or args.plot:
        saved = json.loads(args.results.read_text())
        if args.markdown:
            print(markdown_table(saved))
        if args.plot:
            print(f"wrote {plot(saved, args.plot)}")
        return
    started = time.perf_counter()
    # on a busy 2-core machine two torch threads spin against other processes: training ran
    # 2.4x and scoring 10x slower than with one
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    say(f"# OMP_NUM_THREADS={args.threads} for every command below and for scoring")
    data = small_copy(DATASET)
    clips = footage.other_footage(SHARED)
    others = tuple(
        footage.cap_minutes(half, args.max_footage_minutes, args.seed)
        for half in footage.halves(clips, args.seed)
    )
    say(
        f"# other footage: {len(clips)} clips, {footage.minutes(clips):.1f} min; halves "
        + ", ".join(
            f"{name} {footage.minutes(h):.1f} min ({len({c.source for c in h})} sources)"
            for name, h in zip(("calibration", "test"), others, strict=True)
        )
    )
    folds = [run_fold(int(k), args, data, others) for k in args.folds.split(",")]
    measured, sweep = pooled(folds)
    saved = {
        "protocol": protocol(args, folds, others, data),
        "folds": [{k: v for k, v in f["result"].items() if k not in DROPPED} for f in folds],
        "pooled": measured,
        "pooled_test_sweep": sweep,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(saved, indent=1) + "\n")
    print_table(saved)
    for f in saved["folds"]:
        top1 = f.get("clip_top1")
        say(
            f"fold {f['fold']}: window {f['window_s']} s; clip top-1 "
            + ("-" if top1 is None else f"{100 * top1:.1f}%")
            + f"; timings {f['timings']}"
        )
    say(f"{saved['seconds']:.0f} s; results in {args.results}")


if __name__ == "__main__":
    main()
