"""`flask --app studio secrets reseal`: after a key rotation, every stored
secret sealed with the new key, so the old one can be dropped."""

from __future__ import annotations

from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from studio import secretbox
from studio.models import Target, WebhookEndpoint
from studio.streams import targets
from studio.webhooks import addresses
from studio.webhooks import service as webhooks

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_reseal_moves_every_secret_to_the_first_key(app, db, make_stream, monkeypatch):
    stream = make_stream()
    old = secretbox.SecretBox([OLD])
    target = targets.add_target(
        db.session, stream, old, name="YouTube", url="rtmp://a.example.com/live", key="live-key-1"
    )
    endpoint, secret = webhooks.create_endpoint(
        db.session,
        old,
        stream.owner,
        "http://127.0.0.1:9/x",
        ["stream.live"],
        addresses.networks(["127.0.0.0/8"]),
    )
    db.session.commit()

    monkeypatch.setitem(app.config, "TARGET_KEYS", [NEW, OLD])
    result = app.test_cli_runner().invoke(args=["secrets", "reseal"])
    assert result.exit_code == 0, result.output
    assert "Resealed 1 of 1 multistream target keys." in result.output
    assert "Resealed 1 of 1 webhook signing secrets." in result.output

    db.session.expire_all()
    new_only = secretbox.SecretBox([NEW])  # the old key dropped
    assert new_only.open(db.session.get(Target, target.id).key_encrypted) == "live-key-1"
    assert new_only.open(db.session.get(WebhookEndpoint, endpoint.id).secret_encrypted) == secret


def test_a_secret_no_key_opens_is_named_and_the_others_are_resealed(
    app, db, make_stream, monkeypatch
):
    stream = make_stream()
    lost = targets.add_target(
        db.session,
        stream,
        secretbox.SecretBox([Fernet.generate_key().decode()]),
        name="Lost",
        url="rtmp://a.example.com/live",
        key="lost-key",
    )
    kept = targets.add_target(
        db.session,
        stream,
        secretbox.SecretBox([OLD]),
        name="Kept",
        url="rtmp://b.example.com/live",
        key="kept-key",
    )
    db.session.commit()
    sealed_lost = lost.key_encrypted

    monkeypatch.setitem(app.config, "TARGET_KEYS", [NEW, OLD])
    result = app.test_cli_runner().invoke(args=["secrets", "reseal"])
    assert result.exit_code == 1
    assert "Resealed 1 of 2 multistream target keys." in result.output
    assert f"multistream target keys #{lost.id}" in result.output

    db.session.expire_all()
    assert db.session.get(Target, lost.id).key_encrypted == sealed_lost  # left as it was
    assert secretbox.SecretBox([NEW]).open(db.session.get(Target, kept.id).key_encrypted) == (
        "kept-key"
    )


def test_setting_target_keys_then_resealing_frees_the_secrets_from_the_secret_key(
    app, db, make_stream, monkeypatch
):
    """Without TARGET_KEYS secrets are sealed with a key derived from
    SECRET_KEY; once TARGET_KEYS is set that key still opens them, and after
    `reseal` a new SECRET_KEY does not matter."""
    monkeypatch.setitem(app.config, "TARGET_KEYS", [])
    target = targets.add_target(
        db.session,
        make_stream(),
        secretbox.from_config(app.config),
        name="YouTube",
        url="rtmp://a.example.com/live",
        key="live-key-1",
    )
    db.session.commit()
    monkeypatch.setitem(app.config, "TARGET_KEYS", [NEW])
    result = app.test_cli_runner().invoke(args=["secrets", "reseal"])
    assert result.exit_code == 0, result.output

    monkeypatch.setitem(app.config, "SECRET_KEY", "another secret key")
    db.session.expire_all()
    box = secretbox.from_config(app.config)
    assert box.open(db.session.get(Target, target.id).key_encrypted) == "live-key-1"


def test_a_secret_changed_while_resealing_waits_instead_of_being_overwritten(
    app, db, make_stream, monkeypatch
):
    """The rows are locked from the read to the commit: a creator saving a
    new key meanwhile waits (here: gives up after its lock timeout) rather
    than having the reseal write the old key back over it."""
    target = targets.add_target(
        db.session,
        make_stream(),
        secretbox.SecretBox([OLD]),
        name="YouTube",
        url="rtmp://a.example.com/live",
        key="live-key-1",
    )
    db.session.commit()
    refused = []
    reseal = secretbox.SecretBox.reseal

    def meanwhile(box, sealed):
        with db.engine.connect() as other:
            other.execute(text("SET lock_timeout = '200ms'"))
            try:
                other.execute(
                    text("UPDATE stream_targets SET key_encrypted = :new WHERE id = :id"),
                    {"new": secretbox.SecretBox([NEW]).seal("live-key-2"), "id": target.id},
                )
            except OperationalError as error:
                refused.append(error.orig.sqlstate)
            other.rollback()
        return reseal(box, sealed)

    monkeypatch.setattr(secretbox.SecretBox, "reseal", meanwhile)
    monkeypatch.setitem(app.config, "TARGET_KEYS", [NEW, OLD])
    result = app.test_cli_runner().invoke(args=["secrets", "reseal"])
    assert result.exit_code == 0, result.output
    assert refused == ["55P03"]  # lock_not_available
