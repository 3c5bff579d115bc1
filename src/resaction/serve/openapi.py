"""Request and error bodies the OpenAPI page shows; the job options come from ``JobOptions``
itself, so the page lists exactly the options a job accepts."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from resaction.serve.tasks import JobOptions

ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}
_JSON_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}
_FILE = {"file": {"type": "string", "format": "binary"}}

UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["file"], "properties": _FILE}
        }
    },
}


def job_options_schema() -> dict[str, Any]:
    """One property per field of ``JobOptions``, with its JSON type and default."""
    return {
        field.name: {"type": _JSON_TYPES[str(field.type)], "default": field.default}
        for field in fields(JobOptions)
    }


def job_body() -> dict[str, Any]:
    """``POST /jobs``: an upload with option fields, or JSON naming a file under --media-root."""
    options = job_options_schema()
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {**_FILE, **options},
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["path"],
                    "properties": {
                        "path": {
                            "type": "string",
                            "description": "A video file under the server's --media-root.",
                        },
                        "options": {"type": "object", "properties": options},
                    },
                }
            },
        },
    }
