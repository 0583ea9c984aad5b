"""Row writes of the publish path, in one statement each.

A unit-of-work flush costs more CPU than the statements it sends, and sends
one statement per row. The status machine's writes on every publish and
unpublish (a broadcast opened or closed, its stream's status) go instead as
one UPDATE or INSERT with the other rows' UPDATEs in data-modifying CTEs
(PostgreSQL runs them all, in one round trip). The written values are then
recorded on the row objects as loaded (`set_committed_value`), so the
session's objects match the database and its next flush has nothing to send
for them. A row read without the ORM (a plain row: the publish path reads
its stream and broadcasts so) is named by a `RowKey`; its values are
recorded on the session's object for it if the session holds one. A
column's Python `default` and `onupdate` values are computed here and
written with the rest; a new row's id comes back with RETURNING.
The statements are built once per shape (tables and columns written).

Values are keyed by attribute name, which is the column's name in this
schema. Like the services that call them, these never commit.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Table, bindparam, insert, inspect, update
from sqlalchemy.orm import Mapper, Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.dml import Insert, Update

Row = TypeVar("Row")


class RowKey(NamedTuple):
    """A row named by its model and primary key (read without the ORM)."""

    model: type
    id: Any


Change = tuple[object, dict[str, Any]]  # (row object or RowKey, {attribute: value})


def update_rows(session: Session, *changes: Change) -> None:
    """Write each (row object or RowKey, {attribute: value}) of `changes`,
    all in one statement, and record the values on the objects."""
    session.flush()  # anything pending goes first (nothing is sent when clean)
    changes = tuple((row, _filled(_table(row), values, "onupdate")) for row, values in changes)
    (row, values), *others = changes
    shape = ("update", *_shapes(changes))
    statement = _statements.get(shape)
    if statement is None:
        statement = _statements[shape] = _with_ctes(_update(row, values, 0), others, first=1)
    session.connection().execute(statement, _parameters(changes))
    _record(session, changes)


def insert_row(session: Session, model: type[Row], values: dict[str, Any], *changes: Change) -> Row:
    """Insert a `model` row with `values` and write each (row object or
    RowKey, {attribute: value}) of `changes`, all in one statement; returns
    the new row, persistent in the session (its id and defaults filled in)."""
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
    inserted = session.connection().execute(statement, parameters).one()
    _record(session, changes)
    return loaded(session, model, inserted._asdict())


def loaded(session: Session, model: type[Row], values: dict[str, Any]) -> Row:
    """The session's object for the `model` row whose columns are `values`
    (every column: a row read without the ORM): the one the session holds,
    else one made from `values` and added as if loaded (persistent, nothing
    to flush)."""
    mapper: Mapper = inspect(model)
    key = mapper.identity_key_from_primary_key([values[c.key] for c in mapper.primary_key])
    held = session.identity_map.get(key)
    if held is not None:
        return held
    row = model(**values)
    make_transient_to_detached(row)  # as if loaded: persistent once added, never inserted again
    session.add(row)
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
        parameters[f"row_{index}"] = row.id if isinstance(row, RowKey) else inspect(row).identity[0]
        parameters.update((f"set_{index}_{key}", value) for key, value in values.items())
    return parameters


def _mapper(row: object) -> Mapper:
    return inspect(row.model) if isinstance(row, RowKey) else inspect(row).mapper


def _table(row: object) -> Table:
    return _mapper(row).local_table


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
    mapper = _mapper(row)
    [key] = mapper.primary_key
    setting = {name: bindparam(f"set_{index}_{name}") for name in values}
    return update(mapper.local_table).where(key == bindparam(f"row_{index}")).values(setting)


def _with_ctes(statement: Insert | Update, changes, first: int = 0) -> Insert | Update:
    for index, (row, values) in enumerate(changes, start=first):
        statement = statement.add_cte(_update(row, values, index).cte(f"written_{index}"))
    return statement


def _record(session: Session, changes) -> None:
    for row, values in changes:
        if isinstance(row, RowKey):
            row = session.identity_map.get(_mapper(row).identity_key_from_primary_key([row.id]))
            if row is None:
                continue  # nothing in the session to keep in step
        for key, value in values.items():
            set_committed_value(row, key, value)
