from __future__ import annotations

import io

from tqdm.auto import tqdm

from resaction.progress import LineProgress, is_terminal, progress_bar


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_live_bar_and_anything_else_gets_lines() -> None:
    terminal = FakeTerminal()
    bar = progress_bar(total=3, desc="work", file=terminal)
    assert isinstance(bar, tqdm)
    bar.close()
    assert is_terminal(terminal) and not is_terminal(io.StringIO())
    assert isinstance(progress_bar(total=3, file=io.StringIO()), LineProgress)


def test_lines_have_no_carriage_returns_and_end_with_the_totals() -> None:
    log = io.StringIO()
    bar = progress_bar(total=4, desc="predict", unit="video", file=log)
    for _ in range(4):
        bar.update(1)
        bar.set_postfix({"loss": "0.512"}, refresh=False)
    bar.close()
    bar.close()
    text = log.getvalue()
    assert "\r" not in text
    assert len(text.splitlines()) == 1
    assert text.startswith("predict: 4/4 video, ") and text.rstrip().endswith("loss=0.512")


def test_a_long_loop_prints_a_line_each_interval_and_a_left_off_bar_ends_silently() -> None:
    log = io.StringIO()
    bar = LineProgress(total=3, desc="epoch 1/2", unit="batch", leave=False, file=log, interval=0)
    for _ in range(3):
        bar.update(1)
    bar.close()
    lines = log.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "epoch 1/2: 1/3 batch",
        "epoch 1/2: 2/3 batch",
        "epoch 1/2: 3/3 batch",
    ]

    quiet = io.StringIO()
    with LineProgress(total=3, leave=False, file=quiet) as bar:
        bar.update(3)
    assert quiet.getvalue() == ""


def test_iterating_counts_items_and_a_disabled_bar_prints_nothing() -> None:
    log = io.StringIO()
    assert list(progress_bar(range(5), desc="frames", unit="frame", file=log)) == list(range(5))
    assert log.getvalue().startswith("frames: 5/5 frame")

    silent = io.StringIO()
    bar = progress_bar(range(2), disable=True, file=silent)
    assert list(bar) == [0, 1]
    assert silent.getvalue() == ""
