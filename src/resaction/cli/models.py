"""`resaction models`: the registered models with their input, size, cost and weights."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from resaction.cli.app import app, console
from resaction.errors import ModelError
from resaction.models import list_models, model_info, model_stats

FLOPS_NOTE = (
    "GFLOPs: one clip at the default input, 2 FLOPs per multiply-add, counted by torch's "
    "FlopCounterMode (convolutions, matmuls and RNN gates; elementwise ops not counted)."
)


def model_rows(pattern: str = "*") -> list[dict[str, Any]]:
    """One dict per registered model matching ``pattern``: metadata plus measured size and cost."""
    names = list_models(pattern)
    if not names:
        raise ModelError(f"no model matches {pattern!r}; `resaction models` lists them all")
    rows = []
    for name in names:
        info = model_info(name)
        stats = model_stats(name)
        rows.append(
            {
                "name": name,
                "family": info.family,
                "description": info.description,
                "clip_len": info.clip_len,
                "input_size": info.input_size,
                "resize": info.resize,
                "fps": info.fps,
                "sampling": info.extra.get("sampling", "dense"),
                "mean": list(info.mean),
                "std": list(info.std),
                "default_num_classes": info.default_num_classes,
                "weights": list(info.weights),
                "params": stats.params,
                "gflops": round(stats.gflops, 3),
                "input_shape": list(stats.input_shape),
            }
        )
    return rows


def _table(rows: list[dict[str, Any]]) -> Table:
    """The table, 76 characters wide at most, so an 80-column terminal shows it whole.

    Nothing is ever cut short with an ellipsis: weight names go one per line, and on a narrower
    terminal a cell folds onto the next line instead. ``--json`` has every field.
    """
    table = Table(title="resaction models", caption=FLOPS_NOTE, caption_justify="left")
    for column, justify in (
        ("name", "left"),
        ("family", "left"),
        ("input", "right"),
        ("params", "right"),
        ("GFLOPs", "right"),
        ("weights", "left"),
    ):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        table.add_row(
            row["name"],
            row["family"],
            f"{row['clip_len']} x {row['input_size']}²",
            f"{row['params'] / 1e6:.1f}M",
            f"{row['gflops']:.1f}",
            "\n".join(row["weights"]) or "-",
        )
    return table


@app.command("models")
def models_command(
    pattern: str = typer.Argument("*", help="Shell-style name pattern, e.g. 'tsm_*'."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for programs."),
) -> None:
    """List the models: family, frames x input size, parameters, GFLOPs, available weights."""
    if as_json:
        typer.echo(json.dumps(model_rows(pattern), indent=2))
        return
    with console.status("measuring models"):
        rows = model_rows(pattern)
    console.print(_table(rows))
