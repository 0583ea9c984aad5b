"""What the deployment files reference, for the consistency tests."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

COMPOSE_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
PYTHON_ENV_READ = re.compile(
    r"""(?:env|environ|os\.environ)(?:\.get)?\(\s*["']([A-Z][A-Z0-9_]*)["']"""
    r"""|os\.environ\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]"""
)
SHELL_VARIABLE = re.compile(r"\$\{?([A-Z][A-Z0-9_]*)")


def documented_variables() -> set[str]:
    """Names assigned in .env.example."""
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def compose_variables() -> set[str]:
    """Every ${NAME} docker-compose.yml interpolates."""
    return set(COMPOSE_VARIABLE.findall((ROOT / "docker-compose.yml").read_text()))


def python_env_reads(path: Path) -> set[str]:
    """Every environment variable a Python file reads by literal name."""
    found = set()
    for a, b in PYTHON_ENV_READ.findall(path.read_text()):
        found.add(a or b)
    return found
