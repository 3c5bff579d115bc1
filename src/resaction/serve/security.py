"""What the service refuses, and how: tokens, paths outside the media root, oversized uploads,
files that are not videos, videos that are too long.

Every refusal is an ``ApiError`` carrying the HTTP status, a short machine-readable code and a
sentence a person can act on; the app turns it into a JSON reply.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from resaction.errors import ResactionError
from resaction.io import VideoReader

CHUNK_ALLOWANCE = 64 * 1024
MAX_FIELD_BYTES = 4096
MAX_FIELDS = 32


class ApiError(Exception):
    """A refusal with its HTTP status, a stable ``code`` and a message for a person."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = " ".join(message.split())
        self.headers = headers or {}


def check_token(authorization: str | None, token: str | None) -> None:
    """Accept the request when no token is configured or it carries ``Bearer <token>``."""
    if token is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise ApiError(
            401,
            "unauthorized",
            "this server needs a token: send the header 'Authorization: Bearer <token>'",
            {"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(
            401,
            "unauthorized",
            "the token is wrong: use the one given to resaction serve --token",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


def resolve_media_path(media_root: Path | None, requested: str) -> Path:
    """The real file ``requested`` names under ``media_root``, refusing anything outside it.

    The path (relative to the root, or absolute) is resolved with every symlink and ``..``
    followed before the check, so neither can lead out of the root.
    """
    if media_root is None:
        raise ApiError(
            403,
            "no_media_root",
            "this server reads no local files: start it with --media-root DIR, or upload the video",
        )
    if not requested or "\x00" in requested:
        raise ApiError(400, "bad_path", "the path is empty or holds a NUL character")
    root = media_root.resolve(strict=True)
    candidate = root / requested
    try:
        resolved = candidate.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        resolved = candidate.resolve(strict=False)
        if resolved.is_relative_to(root):
            raise ApiError(
                404, "not_found", f"no file {requested!r} under the media root"
            ) from None
    except (OSError, RuntimeError) as error:
        raise ApiError(
            400, "bad_path", f"the path {requested!r} cannot be resolved: {error}"
        ) from None
    if not resolved.is_relative_to(root):
        raise ApiError(
            403,
            "outside_media_root",
            f"the path {requested!r} leads outside the media root; give a path of a file inside it",
        )
    if not resolved.is_file():
        raise ApiError(
            400, "not_a_file", f"{requested!r} is not a regular file under the media root"
        )
    return resolved


def new_upload_path(uploads: Path) -> Path:
    """A fresh, unguessable file name for an upload (the client's name is never used on disk)."""
    uploads.mkdir(parents=True, exist_ok=True)
    return uploads / f"{secrets.token_hex(16)}.upload"


@dataclass
class Upload:
    """A multipart request read to disk: the video file, its client-side name, the other fields."""

    path: Path
    filename: str
    size: int
    fields: dict[str, str] = field(default_factory=dict)


def too_large(limit_bytes: int) -> ApiError:
    return ApiError(
        413,
        "upload_too_large",
        f"the upload is larger than this server's limit of {limit_bytes / 2**20:.3g} MiB; "
        "send a shorter or more compressed video (or raise --max-upload-mb)",
    )


class _MultipartToDisk:
    """python-multipart callbacks that write the one file part straight to ``dest``, counting
    bytes as they arrive, so an oversized upload is refused at the first byte over the limit."""

    def __init__(self, dest: Path, limit: int, file_field: str) -> None:
        self.dest = dest
        self.limit = limit
        self.file_field = file_field
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.size = 0
        self._handle: Any = None
        self._headers: dict[bytes, bytes] = {}
        self._name = b""
        self._value = b""
        self._data = bytearray()
        self._part_is_file = False
        self._field_name = ""

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._grow("_name", data[start:end]),
            "on_header_value": lambda data, start, end: self._grow("_value", data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _grow(self, attribute: str, data: bytes) -> None:
        setattr(self, attribute, getattr(self, attribute) + data)

    def _part_begin(self) -> None:
        self._headers = {}
        self._data = bytearray()
        self._part_is_file = False

    def _header_end(self) -> None:
        self._headers[self._name.lower()] = self._value
        self._name = self._value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._field_name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            if len(self.fields) >= MAX_FIELDS:
                raise ApiError(400, "bad_form", f"more than {MAX_FIELDS} form fields")
            return
        if self._field_name != self.file_field or self._handle is not None:
            raise ApiError(
                400,
                "bad_form",
                f"send exactly one file, in the form field {self.file_field!r}",
            )
        self._part_is_file = True
        self.filename = options[b"filename"].decode("utf-8", "replace")
        self._handle = self.dest.open("xb")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part_is_file:
            self.size += end - start
            if self.size > self.limit:
                raise too_large(self.limit)
            self._handle.write(data[start:end])
            return
        self._data += data[start:end]
        if len(self._data) > MAX_FIELD_BYTES:
            raise ApiError(400, "bad_form", f"form field {self._field_name!r} is too long")

    def _part_end(self) -> None:
        if not self._part_is_file:
            self.fields[self._field_name] = self._data.decode("utf-8", "replace")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


async def receive_upload(
    content_type: str,
    content_length: str | None,
    body: AsyncIterator[bytes],
    dest: Path,
    limit_bytes: int,
    *,
    file_field: str = "file",
) -> Upload:
    """Stream a ``multipart/form-data`` body to ``dest``, enforcing ``limit_bytes`` as it goes.

    A declared ``Content-Length`` well over the limit is refused before reading anything; an
    undeclared or understated one is caught by counting. On any refusal the partial file is
    removed.
    """
    kind, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise ApiError(
            415,
            "not_multipart",
            f"send the video as multipart/form-data in the field {file_field!r} "
            "(curl -F file=@video.mp4)",
        )
    if (
        content_length
        and content_length.isdigit()
        and int(content_length) > limit_bytes + CHUNK_ALLOWANCE
    ):
        raise too_large(limit_bytes)
    sink = _MultipartToDisk(dest, limit_bytes, file_field)
    parser = MultipartParser(boundary, sink.callbacks())
    try:
        async for chunk in body:
            parser.write(chunk)
        parser.finalize()
    except BaseException as error:
        sink.close()
        dest.unlink(missing_ok=True)
        if isinstance(error, FormParserError):
            raise ApiError(
                400, "bad_form", "the multipart body is malformed or cut short"
            ) from None
        raise
    sink.close()
    if sink.filename is None:
        dest.unlink(missing_ok=True)
        raise ApiError(
            400,
            "no_file",
            f"no video in the request: put it in the form field {file_field!r} "
            "(curl -F file=@video.mp4)",
        )
    return Upload(dest, _display_name(sink.filename), sink.size, sink.fields)


def _display_name(filename: str) -> str:
    """The client's file name reduced to a harmless label (no folders, printable, short)."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())
    return name[:200] or "upload"


@dataclass
class VideoFacts:
    """What sniffing found out about a file that decodes as a video."""

    duration: float
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "duration": round(self.duration, 3),
            "num_frames": self.num_frames,
            "fps": round(self.fps, 3),
            "width": self.width,
            "height": self.height,
            "codec": self.codec,
        }


def sniff_video(path: Path, name: str, max_duration_s: float) -> VideoFacts:
    """Open ``path`` with PyAV and decode its first frame; refuse what is not a video (415) or
    runs longer than ``max_duration_s`` (413). The declared content type is never consulted.
    """

    try:
        with VideoReader(path) as reader:
            reader.get_frames([0])
            meta = reader.metadata
    except ResactionError as error:
        reason = str(error).replace(f"{path}: ", "").replace(str(path), name)
        raise ApiError(
            415,
            "not_a_video",
            f"{name} is not a decodable video: {reason}; send an MP4, AVI, MKV, MOV or WebM file",
        ) from None
    if meta.duration > max_duration_s:
        raise ApiError(
            413,
            "video_too_long",
            f"{name} lasts {meta.duration:.1f} s; this server accepts at most {max_duration_s:g} s "
            "(cut the video, or raise --max-duration-s)",
        )
    return VideoFacts(
        meta.duration, meta.num_frames, float(meta.fps), meta.width, meta.height, meta.codec
    )
