"""The typer application shared by all command modules, and user-error handling."""

from __future__ import annotations

import logging
import os
import warnings

import typer
from rich.console import Console
from rich.markup import escape

from resaction.errors import ResactionError

app = typer.Typer(
    name="resaction",
    help="Human action recognition in video with residual networks. Every command takes "
    "--config FILE.yaml (option names as keys); flags on the command line override it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
INTERRUPTED = 130
"""Exit code after Ctrl-C, as shells give for SIGINT."""
LOG_WIDTH = 200
"""Columns of output that goes to a log or a pipe: wide tables stay whole there rather than
squeezed into 80 columns with every cell cut to "ts…"."""
console = Console()
if not console.is_terminal:
    console = Console(width=max(console.width, LOG_WIDTH))
err_console = Console(stderr=True)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log more detail.")) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    warnings.formatwarning = _warning_line


def _warning_line(message: Warning | str, category: type[Warning], *_: object, **__: object) -> str:
    """A warning as one line for a person at a terminal, not the source line that raised it."""
    return f"warning: {message}\n"


def _usage_error_types() -> tuple[type[BaseException], ...]:
    """Click's usage-error classes: typer >= 0.29 vendors click, older typers use click itself."""
    types: list[type[BaseException]] = []
    try:
        from typer._click.exceptions import ClickException as VendoredClickException

        types.append(VendoredClickException)
    except ImportError:
        pass
    try:
        import click

        types.append(click.ClickException)
    except ImportError:
        pass
    return tuple(types)


def _abort_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [getattr(typer, "Abort", KeyboardInterrupt)]
    try:
        import click

        types.append(click.exceptions.Abort)
    except ImportError:
        pass
    return tuple(types)


def run_app(argv: list[str] | None = None) -> int:
    """Run the CLI; a ``ResactionError`` becomes one line on stderr and a non-zero exit code.

    ``--config FILE`` after a command becomes the flags the YAML file holds (``_config_file``).
    """
    import sys

    from resaction.cli._config_file import expand_config, mention_config

    try:
        args = list(sys.argv[1:] if argv is None else argv)
        command = typer.main.get_command(app)
        mention_config(command)
        args = expand_config(command, args)
        returned = command.main(args=args, prog_name="resaction", standalone_mode=False)
        if returned == INTERRUPTED:  # typer turns Ctrl-C into this code outside standalone mode
            raise KeyboardInterrupt
    except ResactionError as error:
        message = escape(str(error))
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        return error.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return INTERRUPTED
    except typer.Exit as done:
        return done.exit_code
    except SystemExit as done:
        return int(done.code or 0)
    except _usage_error_types() as error:
        error.show()
        return getattr(error, "exit_code", 2)
    except _abort_types():
        err_console.print("aborted")
        return 1
    except Exception as error:
        if os.environ.get("RESACTION_DEBUG"):
            raise
        err_console.print(
            f"[bold red]internal error:[/] {type(error).__name__}: {escape(str(error))} "
            "(set RESACTION_DEBUG=1 for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        return 2
    return 0
