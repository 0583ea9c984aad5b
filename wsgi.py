"""gunicorn entry point: `gunicorn wsgi:app`."""

from studio import create_app

app = create_app()
