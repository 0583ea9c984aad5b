"""Oversized request bodies are refused before any handler reads them."""


def test_oversized_hook_body_is_413_without_change(client, db):
    """A callback body over 1 MiB gets 413 and changes nothing."""
    body = b'{"action": "on_publish", "pad": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    reply = client.post(
        "/hooks/srs?token=test-hook-token", data=body, content_type="application/json"
    )
    assert reply.status_code == 413
    assert "error" in reply.get_json()
