"""The cameras file: which sources to watch, what raises an event, where events go.

```yaml
defaults:              # every camera's settings unless it gives its own
  classes: [fight]     # the classes that raise events (default: every class)
  threshold: 0.6       # enter; exit_threshold defaults to 80% of it
  min_duration: 1.0    # seconds above threshold before an event starts
  cooldown: 10         # seconds of quiet after an event
  pre: 3               # seconds of evidence before the start and after the end
  post: 3
  window: 2            # seconds a window spans (default: 2 for models trained on segments
                       # spread over whole videos, TSN/TSM; else the model's clip)
cameras:
  - name: gate
    url: rtsp://10.0.0.7/stream1     # webcam index, rtsp/http(s)/udp URL, or a file
    roi: [0, 120, 640, 360]          # x, y, width, height in source pixels
    thresholds: {fight: 0.7}         # per class: a number (enter) or a mapping of the keys above
sinks: [jsonl, stdout, {webhook: "https://alerts.example/hook"}]
```

Every mistake is one line naming the file, the line and the key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from resaction.detection.decisions import Thresholds
from resaction.errors import ConfigError, parse_error_line
from resaction.io.geometry import MIN_ROI_SIDE

THRESHOLD_KEYS = {
    "threshold": "enter",
    "exit_threshold": "exit",
    "min_duration": "min_duration",
    "min_gap": "min_gap",
    "cooldown": "cooldown",
    "smooth": "smooth",
}
CAMERA_KEYS = {"classes", "pre", "post", "loop", "window", *THRESHOLD_KEYS}
SINK_KINDS = ("jsonl", "stdout", "webhook")
Path_ = tuple[Any, ...]
WEBHOOK_KEYS = ("headers", "secret", "secret_env", "timeout")


@dataclass
class CameraConfig:
    """One camera: its source and how its scores become events."""

    name: str
    url: str
    roi: tuple[int, int, int, int] | None = None
    classes: list[str] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)
    line: int = 0

    @property
    def pre(self) -> float:
        return float(self.settings.get("pre", 3.0))

    @property
    def post(self) -> float:
        return float(self.settings.get("post", 3.0))

    @property
    def loop(self) -> bool:
        return bool(self.settings.get("loop", False))

    def thresholds_for(
        self, label: str, calibrated: Mapping[str, Mapping[str, Any]] | None = None
    ) -> Thresholds:
        """The camera's settings for ``label``: its own (file defaults, camera, then class),
        over the checkpoint's calibration (``detection.calibrated_settings``), over 0.5."""
        values = dict((calibrated or {}).get(label, {}))
        values.update(
            {THRESHOLD_KEYS[k]: v for k, v in self.settings.items() if k in THRESHOLD_KEYS}
        )
        values.update(self.thresholds.get(label, {}))
        return Thresholds(**values)


@dataclass
class WatchConfig:
    cameras: list[CameraConfig]
    sinks: list[str]
    path: Path
    sink_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per webhook sink: its ``headers``, ``secret`` and ``timeout`` (``sinks.make_sink``)."""

    def check_classes(self, classes: list[str]) -> None:
        """Every alert class must be one of the model's; one line naming the camera's line."""
        for camera in self.cameras:
            for label in [*(camera.classes or []), *camera.thresholds]:
                if label not in classes:
                    raise ConfigError(
                        f"{self.path} line {camera.line}: camera {camera.name!r} watches class "
                        f"{label!r}, which the model does not have; its classes are: "
                        + ", ".join(classes)
                    )


def load_watch_config(path: str | Path) -> WatchConfig:
    """The cameras file at ``path``, checked; a ``ConfigError`` names the line of a mistake."""
    path = Path(path)
    try:
        node = yaml.compose(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"cameras file {path} does not exist") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {parse_error_line(error)}") from None
    lines: dict[Path_, int] = {}
    data = _plain(node, (), lines) if node is not None else None
    return _Reader(path, lines).config(data)


def _plain(node: yaml.Node, where: Path_, lines: dict[Path_, int]) -> Any:
    """The node as plain data, remembering the line of every key and item."""
    lines[where] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            out[key] = _plain(value_node, (*where, key), lines)
            lines[(*where, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, (*where, i), lines) for i, item in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


class _Reader:
    def __init__(self, path: Path, lines: dict[Path_, int]) -> None:
        self.path = path
        self.lines = lines

    def fail(self, where: Path_, message: str) -> ConfigError:
        line = self.lines.get(where, 1)
        key = ".".join(str(part) for part in where) or "the file"
        return ConfigError(f"{self.path} line {line}, {key}: {message}")

    def config(self, data: Any) -> WatchConfig:
        if not isinstance(data, dict):
            raise self.fail((), "expected a mapping with 'cameras' (and 'defaults', 'sinks')")
        unknown = set(data) - {"defaults", "cameras", "sinks"}
        if unknown:
            key = sorted(unknown, key=str)[0]
            raise self.fail((key,), "unknown key; use defaults, cameras and sinks")
        defaults = self.settings(data.get("defaults") or {}, ("defaults",), CAMERA_KEYS)
        cameras = data.get("cameras")
        if not isinstance(cameras, list) or not cameras:
            raise self.fail(("cameras",), "give a list of cameras, each with a name and a url")
        parsed = [self.camera(item, ("cameras", i), defaults) for i, item in enumerate(cameras)]
        names = [camera.name for camera in parsed]
        for index, name in enumerate(names):
            if names.index(name) != index:
                raise self.fail(("cameras", index, "name"), f"camera name {name!r} is used twice")
        options: dict[str, dict[str, Any]] = {}
        sinks = [
            self.sink(s, ("sinks", i), options)
            for i, s in enumerate(data.get("sinks") or ["jsonl"])
        ]
        return WatchConfig(parsed, sinks, self.path, options)

    def settings(self, data: Any, where: Path_, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(where, "expected a mapping")
        for key, value in data.items():
            if key not in allowed:
                choices = ", ".join(sorted(allowed))
                raise self.fail((*where, key), f"unknown key; use one of {choices}")
            self.check_value((*where, key), key, value)
        return dict(data)

    def check_value(self, where: Path_, key: str, value: Any) -> None:
        if key == "classes":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.fail(where, "expected a list of class names")
        elif key == "loop":
            if not isinstance(value, bool):
                raise self.fail(where, "expected true or false")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, f"expected a number, got {value!r}")
        try:
            if key in THRESHOLD_KEYS:
                Thresholds(**{THRESHOLD_KEYS[key]: value} if key != "exit_threshold" else {})
        except ConfigError as error:
            raise self.fail(where, str(error)) from None

    def camera(self, data: Any, where: Path_, defaults: dict[str, Any]) -> CameraConfig:
        if not isinstance(data, dict):
            raise self.fail(where, "expected a mapping with name and url")
        for key in ("name", "url"):
            if data.get(key) in (None, ""):
                raise self.fail(where, f"camera has no {key}")
        own = {k: v for k, v in data.items() if k not in {"name", "url", "roi", "thresholds"}}
        settings = {**defaults, **self.settings(own, where, CAMERA_KEYS)}
        camera = CameraConfig(
            name=str(data["name"]),
            url=str(data["url"]),
            roi=self.roi(data.get("roi"), (*where, "roi")),
            classes=settings.pop("classes", None),
            settings=settings,
            thresholds=self.thresholds(data.get("thresholds") or {}, (*where, "thresholds")),
            line=self.lines.get(where, 1),
        )
        for label in {*camera.thresholds, *(camera.classes or [])}:
            try:
                camera.thresholds_for(label)
            except ConfigError as error:
                raise self.fail((*where, "thresholds"), str(error)) from None
        return camera

    def roi(self, value: Any, where: Path_) -> tuple[int, int, int, int] | None:
        if value is None:
            return None
        ok = isinstance(value, list) and len(value) == 4
        if not ok or not all(isinstance(v, int) and v >= 0 for v in value):
            raise self.fail(where, "expected [x, y, width, height] in whole source pixels")
        if min(value[2:]) < MIN_ROI_SIDE:
            raise self.fail(where, f"the region must be at least {MIN_ROI_SIDE} pixels a side")
        return tuple(value)  # type: ignore[return-value]

    def thresholds(self, data: Any, where: Path_) -> dict[str, dict[str, Any]]:
        if not isinstance(data, dict):
            raise self.fail(where, "expected a mapping of class name to a threshold")
        out: dict[str, dict[str, Any]] = {}
        for label, value in data.items():
            if isinstance(value, dict):
                given = self.settings(value, (*where, label), set(THRESHOLD_KEYS))
                out[label] = {THRESHOLD_KEYS[key]: v for key, v in given.items()}
            else:
                self.check_value((*where, label), "threshold", value)
                out[label] = {"enter": float(value)}
        return out

    def sink(self, value: Any, where: Path_, options: dict[str, dict[str, Any]]) -> str:
        """A sink's spec; a webhook's ``headers``, ``secret`` (or ``secret_env``, the name of
        an environment variable holding it) and ``timeout`` go into ``options``."""
        if isinstance(value, str) and value in ("jsonl", "stdout"):
            return value
        if not (isinstance(value, dict) and "webhook" in value):
            raise self.fail(where, "a sink is jsonl, stdout or {webhook: http(s)://host/path}")
        url = str(value["webhook"])
        if not url.startswith(("http://", "https://")) or "/" not in url.split("//", 1)[1]:
            raise self.fail((*where, "webhook"), "expected an http(s)://host/path address")
        unknown = set(value) - {"webhook", *WEBHOOK_KEYS}
        if unknown:
            keys = ", ".join(WEBHOOK_KEYS)
            raise self.fail((*where, sorted(unknown)[0]), f"unknown key; a webhook takes {keys}")
        spec = f"webhook:{url}"
        options[spec] = self.webhook_options(value, where)
        return spec

    def webhook_options(self, value: dict[str, Any], where: Path_) -> dict[str, Any]:
        headers = value.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise self.fail((*where, "headers"), "expected a mapping of header name to text")
        out: dict[str, Any] = {"headers": {str(k): v for k, v in headers.items()}}
        secret = value.get("secret")
        if "secret_env" in value:
            secret = os.environ.get(str(value["secret_env"]))
            if not secret:
                raise self.fail((*where, "secret_env"), f"${value['secret_env']} is not set")
        if secret is not None:
            out["secret"] = str(secret)
        if "timeout" in value:
            timeout = value["timeout"]
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
                raise self.fail((*where, "timeout"), f"expected seconds above 0, got {timeout!r}")
            out["timeout"] = float(timeout)
        return out
