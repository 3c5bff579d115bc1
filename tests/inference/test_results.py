from __future__ import annotations

import json
from pathlib import Path

import pytest

from resaction.errors import ConfigError
from resaction.inference.results import RecordWriter

FIELDS = ["path", "label", "prob"]


def test_jsonl_records_are_on_disk_before_close(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    writer = RecordWriter(out)
    writer.write({"path": "a.mp4", "label": "run", "prob": 0.9})
    lines = out.read_text().splitlines()
    assert [json.loads(line)["path"] for line in lines] == ["a.mp4"]
    writer.close()


def test_resume_keeps_finished_records_and_drops_a_torn_line(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    with RecordWriter(out) as writer:
        writer.write({"path": "a.mp4", "label": "run"})
        writer.write({"path": "b.mp4", "label": "walk"})
    with out.open("a") as handle:
        handle.write('{"path": "c.mp4", "lab')
    with RecordWriter(out, resume=True) as writer:
        assert writer.done == {"a.mp4", "b.mp4"}
        writer.write({"path": "c.mp4", "label": "wave"})
    assert [json.loads(line)["path"] for line in out.read_text().splitlines()] == [
        "a.mp4",
        "b.mp4",
        "c.mp4",
    ]


def test_without_resume_an_old_file_is_replaced(tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    with RecordWriter(out, fields=FIELDS) as writer:
        writer.write({"path": "a.mp4", "label": "run", "prob": 0.5})
    with RecordWriter(out, fields=FIELDS) as writer:
        assert writer.done == set()
        writer.write({"path": "b.mp4", "label": "run", "prob": 0.5})
    assert out.read_text().splitlines() == ["path,label,prob", "b.mp4,run,0.5"]


def test_csv_resume_checks_columns_and_drops_a_torn_row(tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    with RecordWriter(out, fields=FIELDS) as writer:
        writer.write({"path": "a.mp4", "label": "run", "prob": 0.25})
    with out.open("a") as handle:
        handle.write("b.mp4,wa")
    with RecordWriter(out, fields=FIELDS, resume=True) as writer:
        assert writer.done == {"a.mp4"}
    assert out.read_text().splitlines() == ["path,label,prob", "a.mp4,run,0.25"]
    with pytest.raises(ConfigError, match="columns"):
        RecordWriter(out, fields=["path", "label"], resume=True)


def test_resume_appends_without_rewriting_and_refuses_a_corrupt_file(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    with RecordWriter(out) as writer:
        writer.write({"path": "a.mp4"})
    before = out.read_bytes()
    with RecordWriter(out, resume=True) as writer:
        writer.write({"path": "b.mp4"})
    assert out.read_bytes().startswith(before)
    out.write_text('{"path": "a.mp4"}\nnot json\n{"path": "b.mp4"}\n')
    with pytest.raises(ConfigError, match=r"cannot resume .*line 2"):
        RecordWriter(out, resume=True)
