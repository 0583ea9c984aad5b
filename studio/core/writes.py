"""Row writes of the publish path, in one statement each.

A unit-of-work flush costs more CPU than the statements it sends, and sends
one statement per row. The status machine's writes on every publish and
unpublish (a broadcast opened or closed, its stream's status) go instead as
one UPDATE or INSERT with the other rows' UPDATEs in data-modifying CTEs
(PostgreSQL runs them all, in one round trip). The written values are then
recorded on the row objects as loaded (`set_committed_value`), so the
session's objects match the database and its next flush has nothing to send
for them. A column's Python `default` and `onupdate` values are computed
here and written with the rest; a new row's id comes back with RETURNING.
The statements are built once per shape (tables and columns written).

Values are keyed by attribute name, which is the column's name in this
schema. Like the services that call them, these never commit.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Table, bindparam, insert, inspect, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.dml import Insert, Update

Row = TypeVar("Row")
Change = tuple[object, dict[str, Any]]


def update_rows(session: Session, *changes: Change) -> None:
    """Write each (row object, {attribute: value}) of `changes`, all in one
    statement, and record the values on the objects."""
    session.flush()  # anything pending goes first (nothing is sent when clean)
    changes = tuple((row, _filled(_table(row), values, "onupdate")) for row, values in changes)
    (row, values), *others = changes
    shape = ("update", *_shapes(changes))
    statement = _statements.get(shape)
    if statement is None:
        statement = _statements[shape] = _with_ctes(_update(row, values, 0), others, first=1)
    session.execute(statement, _parameters(changes))
    _record(changes)


def insert_row(session: Session, model: type[Row], values: dict[str, Any], *changes: Change) -> Row:
    """Insert a `model` row with `values` and write each (row object,
    {attribute: value}) of `changes`, all in one statement; returns the new
    row, persistent in the session (its id and defaults filled in)."""
    session.flush()
    changes = tuple((row, _filled(_table(row), values, "onupdate")) for row, values in changes)
    table: Table = inspect(model).local_table
    values = _filled(table, values, "default")
    shape = ("insert", table, tuple(values), *_shapes(changes))
    statement = _statements.get(shape)
    if statement is None:
        inserting = insert(table).values({key: bindparam(f"new_{key}") for key in values})
        statement = _statements[shape] = _with_ctes(inserting.returning(*table.c), changes)
    parameters = _parameters(changes) | {f"new_{key}": value for key, value in values.items()}
    inserted = session.execute(statement, parameters).one()
    row = model(**inserted._asdict())
    make_transient_to_detached(row)  # as if loaded: persistent once added, never inserted again
    session.add(row)
    _record(changes)
    return row


# Statements by the shape of their writes (tables and columns), built once:
# building one costs more CPU than executing it from SQLAlchemy's cache.
_statements: dict[tuple, Insert | Update] = {}


def _shapes(changes) -> list[tuple]:
    return [(_table(row), tuple(values)) for row, values in changes]


def _parameters(changes) -> dict[str, Any]:
    """The bound values of `changes` (the names `_update` gives them)."""
    parameters = {}
    for index, (row, values) in enumerate(changes):
        parameters[f"row_{index}"] = inspect(row).identity[0]
        parameters.update((f"set_{index}_{key}", value) for key, value in values.items())
    return parameters


def _table(row: object) -> Table:
    return inspect(row).mapper.local_table


def _filled(table: Table, values: dict[str, Any], which: str) -> dict[str, Any]:
    """`values` and the value of each column's Python `default` (an insert)
    or `onupdate` (an update: a last-changed time) that `values` does not
    set. Computed here: SQLAlchemy does not fill them in for a statement with
    data-modifying CTEs."""
    filled = dict(values)
    for column in table.c:
        default = getattr(column, which)
        if default is None or column.key in values:
            continue
        if default.is_callable:
            filled[column.key] = default.arg(None)  # type: ignore[attr-defined]
        elif default.is_scalar:
            filled[column.key] = default.arg  # type: ignore[attr-defined]
        else:
            raise ValueError(f"{table.name}.{column.key}: a SQL {which} is not supported here")
    return filled


def _update(row: object, values: dict[str, Any], index: int) -> Update:
    """UPDATE of `row`'s table by primary key, its values bound as the
    `index`-th change's (`_parameters`)."""
    mapper = inspect(row).mapper
    [key] = mapper.primary_key
    setting = {name: bindparam(f"set_{index}_{name}") for name in values}
    return update(mapper.local_table).where(key == bindparam(f"row_{index}")).values(setting)


def _with_ctes(statement: Insert | Update, changes, first: int = 0) -> Insert | Update:
    for index, (row, values) in enumerate(changes, start=first):
        statement = statement.add_cte(_update(row, values, index).cte(f"written_{index}"))
    return statement


def _record(changes) -> None:
    for row, values in changes:
        for key, value in values.items():
            set_committed_value(row, key, value)
