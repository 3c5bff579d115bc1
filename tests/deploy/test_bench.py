from __future__ import annotations

import json
from pathlib import Path

import pytest

from resaction.deploy.bench import bench, parse_backends
from resaction.deploy.bench_report import bench_table, write_bench_report
from resaction.errors import ConfigError


def test_backends_are_checked() -> None:
    assert parse_backends("eager, int8") == ["eager", "int8"]
    with pytest.raises(ConfigError, match="unknown backend 'tensorrt'"):
        parse_backends("eager,tensorrt")


@pytest.mark.slow
def test_bench_measures_every_backend_on_held_out_videos(
    r3d_checkpoint: Path, gt_videos: Path, tmp_path: Path
) -> None:
    report = bench(
        [r3d_checkpoint],
        tmp_path,
        backends=["eager", "onnx", "int8", "pruned", "pruned-int8"],
        data=gt_videos,
        iterations=2,
        warmup=0,
        calib_videos=8,
        eval_videos=4,
        progress=False,
    )
    rows = {row.backend: row for row in report.rows}
    assert set(rows) == {"eager", "onnx", "int8", "pruned", "pruned-int8"}
    assert report.peak_gflops > 0 and report.eval_videos["r3d_10 (r3d_10.pt)"] == 4
    for row in rows.values():
        assert row.ms_p50 and row.ms_p95 >= row.ms_p50 and row.peak_rss_mb > 50
        assert row.gflops_per_s and row.file_mb and row.top1 is not None
    assert rows["eager"].speedup == pytest.approx(1.0)
    assert rows["int8"].file_mb < 0.35 * rows["onnx"].file_mb
    assert rows["pruned"].gflops < 0.75 * rows["eager"].gflops
    assert rows["pruned"].params < rows["eager"].params
    assert rows["pruned-int8"].file_mb < rows["int8"].file_mb
    assert rows["onnx"].top1 == rows["eager"].top1

    files = write_bench_report(report, tmp_path)
    saved = json.loads(files["json"].read_text())
    assert [row["backend"] for row in saved["rows"]] == [row.backend for row in report.rows]
    assert files["png"].stat().st_size > 10_000
    assert bench_table(report).row_count == 5
