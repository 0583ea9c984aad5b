"""Prometheus alert rules: valid for promtool, and every metric they watch is
one the studio exports (or an explicitly listed external exporter's)."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.deploy.envfiles import ROOT
from tests.metrics_helpers import family_names

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMTOOL = "/usr/bin/promtool"  # Debian `prometheus` package

# Metrics the studio does not export itself.
EXTERNAL = {
    "up",  # synthesised by Prometheus for every scrape target
    "srs_send_bytes_total",  # SRS 5's exporter (srs/srs.conf `exporter`, port 9972)
}

PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (labels, functions, keywords removed)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\()?", expr):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in PROMQL_WORDS:
            continue
        names.add(name)
    return names


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_accepts_the_rules():
    """`promtool check rules deploy/prometheus/alerts.yml` succeeds."""
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_accepts_the_scrape_config():
    """`promtool check config deploy/prometheus/prometheus.yml` succeeds (it loads the rules)."""
    config = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    result = subprocess.run(
        [PROMTOOL, "check", "config", "--syntax-only", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_broken_rule(tmp_path):
    """The check is real: a rule with a syntax error fails."""
    broken = tmp_path / "alerts.yml"
    broken.write_text("groups:\n- name: x\n  rules:\n  - alert: X\n    expr: sum(rate(a[5m])\n")
    result = subprocess.run([PROMTOOL, "check", "rules", str(broken)], capture_output=True)
    assert result.returncode != 0


def test_metric_name_parser():
    """The parser keeps metric names and drops functions, labels and keywords."""
    expr = (
        'histogram_quantile(0.95, sum by (le) (rate(a_bucket{kind="x"}[5m]))) > 6 '
        "or absent_over_time(b_total[10m]) and on() c > 2e9"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}


def test_the_issue_asks_for_these_alerts():
    """Callback errors, upload lag, queue backlog, stale live stream, 5xx,
    HLS disk use and the cost guard are all covered."""
    names = {rule["alert"] for rule in alert_rules()}
    for alert in (
        "CallbackErrors",
        "UploadLagHigh",
        "QueueBacklog",
        "LiveStreamWithoutSegments",
        "HighServerErrorRate",
        "HlsDiskFilling",
        "StorageGrowthHigh",
        "EgressHigh",
    ):
        assert alert in names, alert


@pytest.fixture()
def exported(app, client, tmp_path):
    """Every metric name on the app's /metrics (HLS dir present, so its gauges appear)."""
    saved = app.config["HLS_DIR"]
    app.config["HLS_DIR"] = str(tmp_path)
    try:
        text = client.get("/metrics").get_data(as_text=True)
    finally:
        app.config["HLS_DIR"] = saved
    return family_names(text)


def exported_name(name: str, exported: set[str]) -> bool:
    if name in exported:
        return True
    for suffix in ("_total", "_bucket", "_count", "_sum", "_created"):
        if name.endswith(suffix) and name[: -len(suffix)] in exported:
            return True
    return False


def test_every_alert_metric_is_exported(exported):
    """Each metric an alert watches is on /metrics, unless listed as EXTERNAL."""
    missing = {}
    for rule in alert_rules():
        for name in metric_names(rule["expr"]) - EXTERNAL:
            if not exported_name(name, exported):
                missing.setdefault(rule["alert"], []).append(name)
    assert not missing, f"alerts watch metrics /metrics does not export: {missing}"


def test_external_list_is_not_stale():
    """Every EXTERNAL name is used by some alert (no dead exemptions)."""
    used = set().union(*(metric_names(rule["expr"]) for rule in alert_rules()))
    assert used >= EXTERNAL


DASHBOARD_EXTERNAL = EXTERNAL | {"srs_streams", "srs_clients"}  # SRS 5's exporter


def test_dashboard_panels_query_exported_metrics(exported):
    """Each Grafana panel query uses metrics /metrics exports (or SRS's exporter)."""
    import json

    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/studio.json").read_text())
    assert dashboard["panels"]
    missing = {}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in metric_names(target["expr"]) - DASHBOARD_EXTERNAL:
                if not exported_name(name, exported):
                    missing.setdefault(panel["title"], []).append(name)
    assert not missing, missing


def _anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_alert_runbook_links_point_at_runbook_sections():
    """Every `runbook:` annotation names a section that exists in docs/runbook.md."""
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    anchors = {_anchor(line.lstrip("#")) for line in runbook.splitlines() if line.startswith("#")}
    links = [rule["annotations"].get("runbook") for rule in alert_rules()]
    links = [link for link in links if link]
    assert links
    for link in links:
        path, _, anchor = link.partition("#")
        assert path == "docs/runbook.md"
        assert anchor in anchors, f"{link} (sections: {sorted(anchors)})"
