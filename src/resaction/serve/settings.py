"""What a ``resaction serve`` process is configured with, checked once before it starts."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from resaction.errors import ConfigError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass
class ServeSettings:
    """Every option of the service; the CLI flags map one to one onto these fields.

    ``state_dir`` holds the SQLite job database, uploads in flight and job results; a restarted
    server pointed at the same folder resumes unfinished jobs and serves finished ones.
    ``max_queued`` bounds the jobs waiting for a worker (beyond that, ``POST /jobs`` answers 429).
    ``watch`` is a cameras file: the service then also runs the live watcher over those cameras,
    with its events, clips and log in ``state_dir / "watch"``.
    """

    model: Path
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_queued: int = 8
    media_root: Path | None = None
    state_dir: Path = Path("resaction-serve")
    token: str | None = None
    max_upload_mb: float = 200.0
    max_duration_s: float = 600.0
    retention_s: float = 24 * 3600.0
    cors_origins: list[str] = field(default_factory=list)
    insecure: bool = False
    topk: int = 5
    watch: Path | None = None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def check(self) -> None:
        """Refuse settings that cannot work or that would expose the service unprotected."""
        if not self.token and not self.insecure and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to serve on {self.host} without --token: anyone who can reach it could "
                "use it; set --token, bind 127.0.0.1, or pass --insecure if that is intended"
            )
        if self.token is not None and len(self.token) < 8:
            raise ConfigError("--token must be at least 8 characters long")
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")
        if self.max_queued < 1:
            raise ConfigError(f"--max-queued must be at least 1, got {self.max_queued}")
        for name, value in (
            ("--max-upload-mb", self.max_upload_mb),
            ("--max-duration-s", self.max_duration_s),
            ("--retention-s", self.retention_s),
        ):
            if value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        if self.topk < 1:
            raise ConfigError(f"--topk must be at least 1, got {self.topk}")
        if self.media_root is not None and not Path(self.media_root).is_dir():
            raise ConfigError(f"--media-root {self.media_root} is not a folder")
        if self.watch is not None and not Path(self.watch).is_file():
            raise ConfigError(f"--watch {self.watch}: no such cameras file")
        if not 0 < self.port < 65536:
            raise ConfigError(f"--port must be between 1 and 65535, got {self.port}")
