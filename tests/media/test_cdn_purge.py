"""`flask --app studio cdn purge STREAM`."""

from __future__ import annotations

from tests.storage import compute_standin


def test_purge_prints_the_invalidation_of_the_stream_prefix(app, make_stream, monkeypatch):
    """For a known stream the gcloud command invalidating /live/{id}/* is printed."""
    monkeypatch.delenv("STUDIO_CDN_URL_MAP", raising=False)
    stream = make_stream()

    result = app.test_cli_runner().invoke(
        args=["cdn", "purge", stream.public_id, "--url-map", "edge-map", "--project", "p1"]
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"gcloud compute url-maps invalidate-cdn-cache edge-map --path "
        f"'/live/{stream.public_id}/*' --async --project p1"
    )


def test_purge_of_an_unknown_stream_fails(app, db):
    """An unknown stream id is an error, and nothing is printed to run."""
    result = app.test_cli_runner().invoke(args=["cdn", "purge", "nosuchstream"])

    assert result.exit_code != 0
    assert "No stream with id 'nosuchstream'" in result.output
    assert "gcloud" not in result.output


def test_purge_run_asks_the_compute_api(app, make_stream, tmp_path, monkeypatch):
    """--run asks for the invalidation itself (the Compute API's stand-in),
    on the URL map and project given, with the credentials' token."""
    standin, server = compute_standin.start(tmp_path)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(standin.credentials_file))
    monkeypatch.setitem(app.config, "COMPUTE_API_URL", standin.url)
    stream = make_stream()
    try:
        args = ["cdn", "purge", stream.public_id, "--url-map", "edge-map", "--project", "studio-p1"]
        result = app.test_cli_runner().invoke(args=[*args, "--run"])
    finally:
        server.shutdown()
        server.server_close()

    assert result.exit_code == 0, result.output
    assert "operation operation-1" in result.output
    [asked] = standin.invalidations
    assert (asked.project, asked.url_map, asked.path) == (
        "studio-p1",
        "edge-map",
        f"/live/{stream.public_id}/*",
    )
    assert asked.authorization == f"Bearer {standin.tokens[-1]}"


def test_purge_run_without_credentials_says_so(app, make_stream, tmp_path, monkeypatch):
    """--run where there are no Google credentials fails with a message saying so."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    stream = make_stream()

    result = app.test_cli_runner().invoke(args=["cdn", "purge", stream.public_id, "--run"])

    assert result.exit_code != 0
    assert "no Google Cloud credentials to invalidate the CDN" in result.output
