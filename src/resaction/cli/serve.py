"""``resaction serve``: the REST API and web page around one model."""

from __future__ import annotations

from pathlib import Path

import typer

from resaction.cli.app import app, console
from resaction.cli.options import flags_as


@app.command()
def serve(
    model: Path = typer.Option(
        ..., "--model", "-m", help="A resaction checkpoint (.pt) or an exported .onnx file."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", "-p", help="Port to listen on."),
    workers: int = typer.Option(
        1, "--workers", "-w", min=1, help="Worker threads running timeline jobs (and predictions)."
    ),
    max_queued: int = typer.Option(
        8, "--max-queued", min=1, help="Jobs that may wait for a worker; more are refused (429)."
    ),
    media_root: Path | None = typer.Option(
        None, "--media-root", help="Folder whose videos POST /jobs may name by path."
    ),
    state_dir: Path = typer.Option(
        Path("resaction-serve"),
        "--state-dir",
        help="Job database, uploads and results; reuse it to keep jobs across restarts.",
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="RESACTION_TOKEN",
        help="Require 'Authorization: Bearer TOKEN' (also read from $RESACTION_TOKEN).",
    ),
    max_upload_mb: float = typer.Option(200.0, "--max-upload-mb", help="Largest upload (MiB)."),
    max_duration_s: float = typer.Option(
        600.0, "--max-duration-s", help="Longest video accepted (seconds)."
    ),
    retention_s: float = typer.Option(
        86400.0, "--retention-s", help="Seconds finished jobs and their files are kept."
    ),
    cors_origin: list[str] = typer.Option(
        [],
        "--cors-origin",
        help="Allow browser calls from this origin (repeatable; off by default).",
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="Allow a non-loopback --host without --token."
    ),
    topk: int = typer.Option(5, "--topk", "-k", min=1, help="Default number of labels returned."),
    watch: Path | None = typer.Option(
        None,
        "--watch",
        help="A cameras file (as for resaction watch): also watch those cameras live, "
        "with a page at /watch and events under --state-dir/watch.",
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve a model over HTTP: top-k, timeline jobs, annotated videos and a web page at /."""
    flags = dict(locals())
    from resaction.serve import ServeSettings, create_app
    from resaction.serve.app import run_server

    settings = flags_as(ServeSettings, flags, cors_origins=list(cors_origin))
    settings.check()
    service = create_app(settings)
    predictor = service.state.service.predictor
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"serving {predictor.model_name} ({len(predictor.classes)} classes, "
        f"{getattr(predictor.backend, 'name', '?')} backend) at http://{shown}:{port}/ "
        f"(API docs at /docs; state in {state_dir})",
        highlight=False,
    )
    hub = service.state.watch
    if hub is not None:
        console.print(
            f"watching {len(hub.watcher.cameras)} camera(s) from {watch}: live page at "
            f"http://{shown}:{port}/watch, events in {hub.out}",
            highlight=False,
        )
    run_server(service, host, port, log_level)
