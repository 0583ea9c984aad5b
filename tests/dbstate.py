"""Snapshots of every table, to prove a refused request changed nothing."""

from __future__ import annotations

from sqlalchemy import select


def snapshot(db) -> dict[str, list[tuple]]:
    """Every row of every table, as committed right now."""
    db.session.rollback()  # read what is committed, not what this session holds
    return {
        table.name: [
            tuple(row) for row in db.session.execute(select(table).order_by(*table.primary_key))
        ]
        for table in db.metadata.sorted_tables
    }
