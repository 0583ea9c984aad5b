"""Work that must happen only once a database transaction has committed
(notifying websockets, dropping a publisher at the media server)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

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
