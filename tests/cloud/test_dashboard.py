"""The Grafana dashboard under deploy/ queries only metrics the cloud and the agent define."""

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

from fleetlink.cloud import metrics  # noqa: F401  (registers the cloud's collectors)
from fleetlink.edge import metrics as edge_metrics

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "fleetlink-dashboard.json"


def test_every_dashboard_query_names_a_defined_metric() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queried = {
        re.sub(r"_(bucket|count|sum|total)$", "", name)
        for panel in panels
        for target in panel["targets"]
        for name in re.findall(r"\bfleetlink_\w+", target["expr"])
    }
    defined = {family.name for family in REGISTRY.collect()}
    # The agent's collector builds its families at scrape time; its names are in its source.
    agent = set(re.findall(r'"(fleetlink_agent_\w+)"', Path(edge_metrics.__file__).read_text()))
    missing = queried - defined - agent
    assert not missing, f"the dashboard queries undefined metrics: {sorted(missing)}"
    assert len(panels) >= 8
