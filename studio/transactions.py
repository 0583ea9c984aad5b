"""Work that must happen only once a database transaction has committed
(notifying websockets, dropping a publisher at the media server), and
read-only units of work that need no transaction at all."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool

log = logging.getLogger(__name__)
_KEY = "studio_after_commit"


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run `action` after `session` commits; forget it if it rolls back."""
    session.info.setdefault(_KEY, []).append(action)


@event.listens_for(Session, "after_commit")
def _run_actions(session: Session) -> None:
    actions = session.info.pop(_KEY, [])
    for action in actions:
        try:
            action()
        except Exception:  # a side effect failing must not undo a committed change
            log.exception("after-commit action failed")


@event.listens_for(Session, "after_rollback")
def _drop_actions(session: Session) -> None:
    session.info.pop(_KEY, None)


_READ_ONLY = "studio_read_only"
_AUTOCOMMIT = "studio_autocommit"


def read_only(session: Session) -> None:
    """Run the rest of this unit of work in autocommit (no BEGIN, no
    ROLLBACK: a PostgreSQL round trip saved on each) for a request that only
    reads; a flush in it raises RuntimeError. A session already inside a
    transaction is left as it is. The connection returns to the pool out of
    autocommit.

    The driver's connection is switched directly, not through SQLAlchemy's
    AUTOCOMMIT isolation level, which the pool would reset on every return;
    switching psycopg's `autocommit` on an idle connection sends nothing."""
    if session.in_transaction():
        return
    proxied = session.connection().connection
    proxied.dbapi_connection.autocommit = True
    proxied.info[_AUTOCOMMIT] = True
    session.info[_READ_ONLY] = True


@contextmanager
def read_only_connection(engine: Engine) -> Iterator[Connection]:
    """A pooled connection in autocommit, as `read_only` gives a session,
    for a read without the ORM (no session to set up and end: the API's
    read of one stream). Back in the pool out of autocommit."""
    with engine.connect() as connection:
        proxied = connection.connection
        proxied.dbapi_connection.autocommit = True
        proxied.info[_AUTOCOMMIT] = True
        yield connection


def end_read_only(session: Session) -> None:
    """End a `read_only` unit of work (nothing to roll back: no round trip);
    the session's next one is an ordinary transaction."""
    if session.info.get(_READ_ONLY):
        session.rollback()


@event.listens_for(Session, "before_flush")
def _refuse_writes(session: Session, flush_context, instances) -> None:
    if session.info.get(_READ_ONLY) and (session.new or session.dirty or session.deleted):
        raise RuntimeError("a read-only unit of work tried to write")


@event.listens_for(Session, "after_soft_rollback")
def _end_read_only(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_READ_ONLY, None)


@event.listens_for(Pool, "checkin")
def _leave_autocommit(dbapi_connection, record) -> None:
    # After the pool's reset (a rollback, nothing to do in autocommit): the
    # next checkout gets an ordinary transaction again.
    switched = record is not None and record.info.pop(_AUTOCOMMIT, False)
    if switched and dbapi_connection is not None and not dbapi_connection.closed:
        dbapi_connection.autocommit = False
