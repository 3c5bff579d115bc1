"""``resaction predict``, ``timeline`` and ``stream`` from the command line."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from resaction.cli import run_app
from resaction.models import create_model
from resaction.models.checkpoint import save_checkpoint

from .conftest import CLASSES, MpegTsServer, tiny_preprocess

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def clips(tmp_path: Path, videos_dir: Path) -> Path:
    """A folder of two real clips (one in a subfolder) and one file that is not a video."""
    folder = tmp_path / "clips"
    (folder / "more").mkdir(parents=True)
    shutil.copy(videos_dir / "ucf101_subset/Diving/v_Diving_g01_c01.avi", folder / "a.avi")
    shutil.copy(videos_dir / "kth_samples/boxing/boxing_sample.avi", folder / "more/b.avi")
    (folder / "broken.mp4").write_bytes(b"\x00" * 2048)
    return folder


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_predict_folder_reports_bad_files_and_resumes(
    tiny_checkpoint: Path, clips: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.jsonl"
    table = tmp_path / "results.csv"
    argv = ["predict", str(clips), "-c", str(tiny_checkpoint), "--topk", "2", "--no-progress"]
    assert run_app([*argv, "--json", str(out), "--csv", str(table)]) == 0
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 1 and "broken.mp4" in skipped[0]
    assert "v_Diving" not in captured.out and "a.avi" in captured.out
    records = jsonl(out)
    assert sorted(Path(r["path"]).name for r in records) == ["a.avi", "b.avi"]
    assert all(len(r["topk"]) == 2 and r["label"] in CLASSES for r in records)
    with table.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["path"] for row in rows] == [r["path"] for r in records]
    assert set(rows[0]) >= {"label", "confidence", "label_2", "prob_2"}

    # An interrupted run left one finished record and half a line: --resume keeps the record,
    # drops the torn line and predicts only the missing video.
    out.write_text(json.dumps(records[0]) + "\n" + '{"path": "tor')
    assert run_app([*argv, "--json", str(out), "--resume"]) == 0
    captured = capsys.readouterr()
    assert "1 of 3 videos already done" in captured.out
    again = jsonl(out)
    assert [r["path"] for r in again] == [r["path"] for r in records]
    assert again[1]["label"] == records[1]["label"]

    # Only the broken video is left: it is reported again, but the run did read videos.
    assert run_app([*argv, "--json", str(out), "--resume"]) == 0
    captured = capsys.readouterr()
    assert "2 of 3 videos already done" in captured.out and "broken.mp4" in captured.err
    assert "none of" not in captured.err

    assert run_app([*argv, "--json", str(out), "--csv", str(tmp_path / "." / out.name)]) == 1
    assert "--json and --csv are the same file" in capsys.readouterr().err


def test_predict_globs_and_missing_files(
    tiny_checkpoint: Path, clips: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_app(
        [
            "predict",
            str(clips / "**/*.avi"),
            str(clips / "nothing.avi"),
            "-c",
            str(tiny_checkpoint),
            "--no-progress",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert "2 predicted, 1 skipped" in " ".join(captured.out.split())
    assert "nothing.avi" in captured.err and "Traceback" not in captured.err


def test_predict_shows_videos_from_the_working_folder(
    tiny_checkpoint: Path, clips: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Two videos of one name in two folders must stay apart in the table."""
    for camera in ("gate", "hall"):
        (tmp_path / camera).mkdir()
        (tmp_path / camera / "a.avi").write_bytes((clips / "a.avi").read_bytes())
    monkeypatch.chdir(tmp_path)
    assert run_app(["predict", ".", "-c", str(tiny_checkpoint), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "gate/a.avi" in out and "hall/a.avi" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "tsn_resnet18"], "holds a r3d_10 model, not tsn_resnet18"),
        ([], "does not match model r3d_10"),
    ],
)
def test_checkpoint_of_another_model_is_one_line(
    tiny_checkpoint: Path,
    clips: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    checkpoint = tiny_checkpoint
    if not extra:
        checkpoint = save_checkpoint(
            tmp_path / "other.pt",
            create_model("tsn_resnet18", num_classes=3),
            model_name="r3d_10",
            classes=CLASSES,
            preprocess=tiny_preprocess(),
        )
    assert run_app(["predict", str(clips / "a.avi"), "-c", str(checkpoint), *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert message in " ".join(err.split())
    assert err.startswith("error:") and "Traceback" not in err


def test_predict_with_only_bad_videos_fails(
    tiny_checkpoint: Path, clips: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_app(["predict", str(clips / "broken.mp4"), "-c", str(tiny_checkpoint)]) == 1
    assert "none of the 1 videos could be read" in capsys.readouterr().err


def test_timeline_command_writes_everything(
    tiny_checkpoint: Path, steps_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "timeline"
    annotated = tmp_path / "annotated.mp4"
    code = run_app(
        [
            "timeline",
            str(steps_video),
            "-c",
            str(tiny_checkpoint),
            "--stride",
            "8",
            "--smooth",
            "ema",
            "--threshold",
            "0.0",
            "--min-duration",
            "0",
            "--out",
            str(out),
            "--annotate",
            str(annotated),
            "--no-progress",
        ]
    )
    assert code == 0
    for name in ("segments.json", "segments.csv", "windows.csv", "timeline.png"):
        assert (out / name).stat().st_size > 0
    summary = json.loads((out / "segments.json").read_text())
    assert summary["segments"] and summary["segments"][-1]["end"] == pytest.approx(4.0)
    assert summary["config"]["smooth"] == "ema"
    assert annotated.stat().st_size > 0
    printed = capsys.readouterr().out
    assert "segments" in printed
    assert "(--threshold sets where segments are cut; alarms use their own thresholds)" in printed
    alarms = json.loads((out / "alarms.json").read_text())["alarms"]
    hint = "every class raises alarms: if one means nothing is happening, pass --background"
    assert (hint in printed) == bool(alarms)


def test_timeline_bad_smoothing_is_one_line(
    tiny_checkpoint: Path, steps_video: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_app(["timeline", str(steps_video), "-c", str(tiny_checkpoint), "--smooth", "gauss"])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert "unknown smoothing 'gauss'" in err and len(err.splitlines()) == 1


def test_timeline_of_unreadable_video_is_one_line(
    tiny_checkpoint: Path, clips: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_app(["timeline", str(clips / "broken.mp4"), "-c", str(tiny_checkpoint)])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "broken.mp4" in err and len(err.splitlines()) == 1


def test_stream_command_on_a_file(
    tiny_checkpoint: Path, steps_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    code = run_app(
        [
            "stream",
            str(steps_video),
            "-c",
            str(tiny_checkpoint),
            "--rate",
            "5",
            "--events",
            str(events),
            "--stats-every",
            "0",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "stream summary" in out and "latency p95" in out
    kinds = [json.loads(line)["event"] for line in events.read_text().splitlines()]
    assert kinds[0] == "start" and "label" in kinds and kinds[-1] == "summary"

    # A window longer than the file: said in one line, not a silent run with no labels.
    argv = ["stream", str(steps_video), "-c", str(tiny_checkpoint), "--window-seconds", "100"]
    assert run_app(argv) == 0
    captured = capsys.readouterr()
    assert "stream summary" in captured.out
    warning = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "before one whole window of" in warning[0], captured.err
    assert "nothing was labelled" in warning[0]


def test_stream_unreachable_source_is_one_line(
    tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = MpegTsServer(b"", 1.0).start()
    server.stop()
    assert run_app(["stream", server.url, "-c", str(tiny_checkpoint)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot open stream http://127.0.0.1")
    assert len(err.splitlines()) == 1


def test_compile_flag_runs_the_compiled_model_and_gives_the_same_labels(
    tiny_checkpoint: Path, clips: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flag wraps the model in ``CompiledModel``; dynamo's eager backend keeps it quick."""
    from resaction.models import compile as compile_module

    compiled_models = []
    inductor = compile_module.compile_model

    def eager_compile(model, **options):
        compiled_models.append(inductor(model, backend="eager"))
        return compiled_models[-1]

    monkeypatch.setattr(compile_module, "compile_model", eager_compile)
    plain, compiled = tmp_path / "plain.jsonl", tmp_path / "compiled.jsonl"
    command = ["predict", str(clips), "-c", str(tiny_checkpoint), "--no-progress"]
    assert run_app([*command, "--json", str(plain)]) == 0
    assert not compiled_models
    assert run_app([*command, "--json", str(compiled), "--compile"]) == 0
    assert len(compiled_models) == 1 and compiled_models[0].compiled
    for eager, fast in zip(jsonl(plain), jsonl(compiled), strict=True):
        assert eager["label"] == fast["label"]
        assert eager["confidence"] == pytest.approx(fast["confidence"], abs=1e-5)


def test_predict_and_timeline_print_plain_lines_when_not_on_a_terminal(
    tiny_checkpoint: Path,
    clips: Path,
    steps_video: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Captured output is not a terminal: one line per finished loop, no bar redraws."""
    assert run_app(["predict", str(clips), "-c", str(tiny_checkpoint)]) == 0
    captured = capsys.readouterr()
    assert "\r" not in captured.out + captured.err
    bars = [line for line in captured.err.splitlines() if line.startswith("predict:")]
    assert len(bars) == 1 and bars[0].startswith("predict: 3/3 video")

    argv = ["timeline", str(steps_video), "-c", str(tiny_checkpoint), "--stride", "8"]
    assert run_app([*argv, "--out", str(tmp_path / "timeline")]) == 0
    captured = capsys.readouterr()
    assert "\r" not in captured.out + captured.err
    windows = [line for line in captured.err.splitlines() if line.startswith("timeline:")]
    assert len(windows) == 1
    done, total = windows[0].split()[1].split("/")
    assert done == total and int(total) > 1
