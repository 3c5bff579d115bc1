"""The REST service and its web page (``resaction serve``).

``create_app(ServeSettings(model=...))`` builds a FastAPI app around one loaded model: top-k
predictions for uploaded videos, timeline jobs run by a bounded worker pool and kept in SQLite,
and a plain HTML page at ``/`` that drives them.
"""

from resaction.serve.app import create_app
from resaction.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
