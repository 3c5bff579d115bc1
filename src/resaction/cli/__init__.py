"""The ``resaction`` command.

Each module in this package registers the commands of one area on the shared typer ``app``
(``cli/app.py``); importing them here is all that is needed to add a command. The commands stay
thin: they parse flags, call the Python API and print.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

from resaction.cli.app import app, run_app

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "app" and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    sys.exit(run_app(argv))


__all__ = ["app", "main"]
