#!/usr/bin/env python3
"""Unit tests of the pure parts of the lab tools (no stack needed):

    python3 -m unittest discover -s tools -p 'test_*.py'
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
import types
import unittest
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))


def load(name: str) -> types.ModuleType:
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(TOOLS / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


checker = load("check-dashboards")
capacity = load("capacity")
dashboards = load("dashboards.py")


class CheckDashboards(unittest.TestCase):
    def test_grafana_variables_are_substituted(self):
        expr = 'sum(rate(x{route=~"$route",c=~"${concert}",d=~"[[d]]"}[$__rate_interval]))'
        out = checker.substitute(expr, {"route", "concert", "d"}, "1m", "5m")
        self.assertEqual(out, 'sum(rate(x{route=~".*",c=~".*",d=~".*"}[1m]))')

    def test_unknown_dollar_words_are_left_alone(self):
        self.assertEqual(checker.substitute("label_replace(x, \"a\", \"$1\", \"b\", \"(.*)\")", set(), "1m", "5m"),
                         "label_replace(x, \"a\", \"$1\", \"b\", \"(.*)\")")

    def test_nan_only_results_count_as_no_data(self):
        self.assertFalse(checker.has_value([{"values": [[1, "NaN"], [2, "NaN"]]}]))
        self.assertTrue(checker.has_value([{"values": [[1, "NaN"], [2, "0"]]}]))

    def test_every_recording_rule_has_an_expression(self):
        rules = checker.read_rules()
        self.assertGreater(len(rules), 10)
        for name, expr in rules.items():
            self.assertTrue(expr and "(" in expr, name)
            self.assertEqual(expr.count("("), expr.count(")"), name)

    def test_boards_are_up_to_date_and_use_the_fixed_datasource(self):
        for name in dashboards.BOARDS:
            text = dashboards.render(name)
            self.assertEqual((dashboards.OUT / f"{name}.json").read_text(), text, f"run tools/dashboards.py ({name})")
            board = json.loads(text)
            ids = [p["id"] for p in board["panels"]]
            self.assertEqual(len(ids), len(set(ids)))
            for p in board["panels"]:
                if p["type"] != "row":
                    self.assertEqual(p["datasource"]["uid"], "prometheus")
                    self.assertLessEqual(p["gridPos"]["x"] + p["gridPos"]["w"], 24)


def step(p95_k6, p95_gw, err, offered, achieved, cpu, busy, other=0.0):
    return {"offeredRate": offered, "achievedIterRate": achieved,
            "k6": {"p95Ms": p95_k6, "failedRatio": err},
            "prom": {"p95Ms": p95_gw, "errorRatio": 0.0, "cpuCores": cpu, "hostBusyCores": busy, "otherCores": other}}


class Capacity(unittest.TestCase):
    args = types.SimpleNamespace(slo_source="k6", slo_p95_ms=25.0, max_error_ratio=0.001)

    def test_a_step_within_the_slo_passes(self):
        self.assertEqual(capacity.judge(step(10, 3, 0.0, 1000, 999, {}, 1.0), self.args), [])

    def test_each_slo_criterion_is_reported(self):
        why = capacity.judge(step(40, 3, 0.002, 1000, 800, {}, 1.0), self.args)
        self.assertEqual(len(why), 3, why)

    def test_gateway_source_judges_the_histogram_p95(self):
        args = types.SimpleNamespace(**{**vars(self.args), "slo_source": "gateway"})
        self.assertEqual(capacity.judge(step(40, 3, 0.0, 1000, 1000, {}, 1.0), args), [])

    def test_redis_is_judged_against_one_core(self):
        b = capacity.bottleneck(step(40, 3, 0, 1000, 1000, {"redis": 0.9, "gateway": 1.0}, 1.95), 2)
        self.assertEqual(b["component"], "redis")

    def test_a_hungry_load_generator_is_called_out(self):
        b = capacity.bottleneck(step(40, 3, 0, 1000, 1000, {"k6": 0.9, "gateway": 0.6, "nginx": 0.4}, 1.95), 2)
        self.assertEqual(b["component"], "k6")
        self.assertIn("load generator", b["note"])
        self.assertIn("cores are full", b["note"])

    def test_queueing_without_cpu_saturation_is_named(self):
        b = capacity.bottleneck(step(40, 3, 0, 1000, 1000, {"postgres": 0.3, "gateway": 0.2}, 0.7), 2)
        self.assertIn("not CPU", b["note"])


if __name__ == "__main__":
    unittest.main()
