"""`flask --app studio cdn purge STREAM`."""

from __future__ import annotations


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


def test_purge_run_without_gcloud_says_so(app, make_stream, monkeypatch, tmp_path):
    """--run on a machine without gcloud fails with the command to run elsewhere."""
    monkeypatch.setenv("PATH", str(tmp_path))
    stream = make_stream()

    result = app.test_cli_runner().invoke(args=["cdn", "purge", stream.public_id, "--run"])

    assert result.exit_code != 0
    assert "gcloud is not installed" in result.output
    assert f"/live/{stream.public_id}/*" in result.output
