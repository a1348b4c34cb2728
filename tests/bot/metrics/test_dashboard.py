"""docs/grafana-dashboard.json queries only series Voxcord exports, and shows every family."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bot.metrics import Metrics, VoiceMetrics

DASHBOARD = Path(__file__).resolve().parents[3] / "docs" / "grafana-dashboard.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exported() -> dict[str, str]:
    """Every series name Voxcord can export → its family."""
    metrics = Metrics()
    VoiceMetrics(metrics)  # registers the DAVE collector, as __main__ does
    names = {}
    for family in metrics.registry.collect():
        for suffix in SUFFIXES[family.type]:
            names[family.name + suffix] = family.name
    return names


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_every_query_names_a_series_voxcord_exports() -> None:
    series = exported()
    used = {name for expr in expressions() for name in re.findall(r"\bvoxcord_\w+", expr)}
    assert used and used <= set(series), sorted(used - set(series))


def test_every_family_is_on_the_dashboard() -> None:
    series = exported()
    shown = {series[name] for expr in expressions() for name in re.findall(r"\bvoxcord_\w+", expr) if name in series}
    assert shown == set(series.values())


def test_panels_use_the_datasource_variable_and_do_not_overlap() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not area & cells, panel["title"]
        cells |= area
