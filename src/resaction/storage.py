"""Small SQLite helpers shared by the job store (``serve/job_store.py``) and the event log
(``monitor/events.py``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def immediate_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction (the write lock taken at once), committed when the
    block ends and rolled back if it raises. ``db`` must be in autocommit mode
    (``isolation_level=None``)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def where(filters: Iterable[tuple[str, Any]]) -> tuple[str, list[Any]]:
    """`` WHERE a AND b`` (or ``""``) and its arguments from ``(clause, value)`` pairs, leaving
    out the pairs whose value is ``None``."""
    clauses, args = [], []
    for clause, value in filters:
        if value is not None:
            clauses.append(clause)
            args.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args
