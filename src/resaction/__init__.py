"""resaction: human action recognition in video with residual networks."""

from resaction.errors import ResactionError

__version__ = "0.1.0"
__all__ = ["ResactionError", "__version__"]
