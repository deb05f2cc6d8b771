#!/usr/bin/env python3
"""Generates the Grafana boards in grafana/dashboards/ (overview, waiting-room, sales).

    tools/dashboards.py           rewrite grafana/dashboards/*.json
    tools/dashboards.py --check   exit 1 when a JSON file differs from what this script writes

The boards are code so that every panel has the same datasource, legend and units, ids and
grid positions never collide, and a review sees a query change as one line. Grafana's own
"save" is off (`allowUiUpdates: false` in the provisioning); change a panel here and rerun.

Conventions for queries (tools/check-dashboards runs every one of them against Prometheus):
- rates use `$__rate_interval` (the datasource's timeInterval is the 5 s scrape interval, so
  Grafana makes it at least 20 s); the checker substitutes 1m;
- ratios whose numerator may not exist yet (no 5xx so far) use `(num or denom * 0) / denom`,
  so "no errors" shows as 0, not as an empty panel;
- gauges that more than one process might export (queue sizes) are aggregated with `max`,
  counters with `sum`.
Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "grafana" / "dashboards"
DS = {"type": "prometheus", "uid": "prometheus"}
SCHEMA_VERSION = 39

# Route patterns of the gateway's router (gateway/src/router.rs: the matched path, so the label
# has one value per route). Regexes, so a renamed path parameter does not break a board.
QUEUE_ROUTE = ".*/concerts/[^/]+/queue"
HOLD_ROUTES = ".*/holds.*"
PAYMENT_ROUTE = ".*/holds/[^/]+/payment"


def q(expr: str, legend: str = "", ref: str = "A") -> dict:
    """One Prometheus target."""
    return {"refId": ref, "datasource": DS, "expr": expr, "legendFormat": legend or "__auto", "range": True}


def targets(*items: tuple[str, str]) -> list[dict]:
    return [q(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(items)]


class Board:
    """Places panels left to right in rows of 24 grid units."""

    def __init__(self, uid: str, title: str, description: str, tags: list[str]):
        self.uid, self.title, self.description, self.tags = uid, title, description, tags
        self.panels: list[dict] = []
        self.variables: list[dict] = []
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def _place(self, w: int, h: int) -> dict:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def row(self, title: str) -> None:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append({
            "id": self._id(), "type": "row", "title": title, "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": [],
        })
        self.y += 1

    def timeseries(self, title: str, description: str, unit: str, tgts: list[dict], w: int = 12,
                   h: int = 8, stack: bool = False, min0: bool = True) -> None:
        custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if not stack else 40,
                  "showPoints": "never", "spanNulls": False,
                  "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
        defaults: dict = {"unit": unit, "custom": custom}
        if min0:
            defaults["min"] = 0
        self.panels.append({
            "id": self._id(), "type": "timeseries", "title": title, "description": description,
            "datasource": DS, "gridPos": self._place(w, h),
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "bottom", "showLegend": True,
                                   "calcs": ["mean", "max", "lastNotNull"]},
                        "tooltip": {"mode": "multi", "sort": "desc"}},
            "targets": tgts,
        })

    def stat(self, title: str, description: str, unit: str, expr: str, w: int = 4, h: int = 4,
             thresholds: list[tuple[float | None, str]] | None = None, decimals: int | None = None) -> None:
        steps = [{"color": c, "value": v} for v, c in (thresholds or [(None, "green")])]
        defaults: dict = {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps},
                          "color": {"mode": "thresholds"}}
        if decimals is not None:
            defaults["decimals"] = decimals
        self.panels.append({
            "id": self._id(), "type": "stat", "title": title, "description": description,
            "datasource": DS, "gridPos": self._place(w, h),
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "area", "textMode": "auto",
                        "justifyMode": "auto", "orientation": "auto"},
            "targets": [q(expr)],
        })

    def variable(self, name: str, label: str, metric: str, label_name: str) -> None:
        definition = f"label_values({metric}, {label_name})"
        self.variables.append({
            "name": name, "label": label, "type": "query", "datasource": DS,
            "definition": definition,
            "query": {"query": definition, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "includeAll": True, "multi": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "refresh": 2, "sort": 3, "options": [], "hide": 0, "regex": "", "skipUrlSync": False,
        })

    def json(self) -> dict:
        return {
            "uid": self.uid, "title": self.title, "description": self.description, "tags": self.tags,
            "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": False, "graphTooltip": 1,
            "timezone": "browser", "refresh": "10s", "time": {"from": "now-30m", "to": "now"},
            "timepicker": {}, "fiscalYearStartMonth": 0, "liveNow": False,
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
                "type": "dashboard"}]},
            "links": [{"title": "Boxoffice", "type": "dashboards", "tags": ["boxoffice"], "asDropdown": True}],
            "templating": {"list": self.variables},
            "panels": self.panels,
        }


RATE = "$__rate_interval"
HTTP = "boxoffice_http_requests_total"
BUCKET = "boxoffice_http_request_duration_seconds_bucket"


def ratio_5xx(by: str, sel: str) -> str:
    """Share of 5xx answers; 0 (not absent) while there were none."""
    num = f'sum by ({by}) (rate({HTTP}{{{sel}{"," if sel else ""}status=~"5.."}}[{RATE}]))'
    den = f"sum by ({by}) (rate({HTTP}{{{sel}}}[{RATE}]))"
    return f"({num} or {den} * 0) / {den}"


def quantile(p: float, by: str, sel: str) -> str:
    return f"histogram_quantile({p}, sum by ({by}le) (rate({BUCKET}{{{sel}}}[{RATE}])))"


def overview() -> Board:
    b = Board("boxoffice-overview", "Boxoffice / Overview",
              "Request rate, latency and errors per route; CPU and memory per component; nginx, "
              "Redis and Postgres. The on-sale's whole path on one page.",
              ["boxoffice"])
    b.variable("route", "Route", HTTP, "route")
    sel = 'route=~"$route"'

    b.row("At a glance")
    b.stat("Requests / s", "All gateway replicas, routes selected above.", "reqps",
           f"sum(rate({HTTP}{{{sel}}}[{RATE}]))")
    b.stat("p95 latency", "Gateway-side p95 over the selected routes (histogram buckets).", "s",
           quantile(0.95, "", sel), thresholds=[(None, "green"), (0.025, "orange"), (0.1, "red")])
    b.stat("p99 latency", "Gateway-side p99; the brief's target is under 25 ms.", "s",
           quantile(0.99, "", sel), thresholds=[(None, "green"), (0.025, "orange"), (0.1, "red")])
    b.stat("5xx ratio", "Share of 5xx answers. 4xx (409 SEAT_UNAVAILABLE...) are outcomes.", "percentunit",
           f'(sum(rate({HTTP}{{{sel},status=~"5.."}}[{RATE}])) or sum(rate({HTTP}{{{sel}}}[{RATE}])) * 0)'
           f" / sum(rate({HTTP}{{{sel}}}[{RATE}]))",
           thresholds=[(None, "green"), (0.001, "orange"), (0.01, "red")], decimals=3)
    b.stat("Gateways up", "Replicas Prometheus scrapes successfully (file or DNS discovery).", "none",
           'sum(up{job="gateway"})', thresholds=[(None, "red"), (1, "green")])
    b.stat("Host CPU busy", "Both cores, every process (load generator included).", "percentunit",
           '1 - avg(rate(node_cpu_seconds_total{mode="idle"}[' + RATE + "]))",
           thresholds=[(None, "green"), (0.8, "orange"), (0.95, "red")])

    b.row("HTTP (gateways)")
    b.timeseries("Request rate per route", "Requests per second, summed over replicas.", "reqps",
                 [q(f"sum by (route, method) (rate({HTTP}{{{sel}}}[{RATE}]))", "{{method}} {{route}}")])
    b.timeseries("Responses per status", "Every route selected above, per HTTP status.", "reqps",
                 [q(f"sum by (status) (rate({HTTP}{{{sel}}}[{RATE}]))", "{{status}}")], stack=True)
    b.timeseries("p95 latency per route", "histogram_quantile over buckets summed across replicas.", "s",
                 [q(quantile(0.95, "route, method, ", sel), "{{method}} {{route}}")])
    b.timeseries("p99 latency per route", "Target: under 25 ms (brief §5).", "s",
                 [q(quantile(0.99, "route, method, ", sel), "{{method}} {{route}}")])
    b.timeseries("5xx ratio per route", "0 while a route has answered no 5xx.", "percentunit",
                 [q(ratio_5xx("route, method", sel), "{{method}} {{route}}")])
    b.timeseries("Request rate per replica", "Is nginx spreading the load evenly?", "reqps",
                 [q(f"sum by (instance) (rate({HTTP}{{{sel}}}[{RATE}]))", "{{instance}}")])

    b.row("CPU and memory per component")
    b.timeseries("CPU per component (cores)",
                 "process-exporter groups; 1.0 = one core busy. The host has 2 cores shared by all, "
                 "including the load generator (k6/wrk).", "none",
                 [q(f"sum by (groupname) (rate(namedprocess_namegroup_cpu_seconds_total[{RATE}]))",
                    "{{groupname}}")], stack=True)
    b.timeseries("Resident memory per component", "Sum of RSS of each group's processes.", "bytes",
                 [q('sum by (groupname) (namedprocess_namegroup_memory_bytes{memtype="resident"})',
                    "{{groupname}}")])
    b.timeseries("Host CPU by mode", "node exporter; user+system near 2 cores means the box is full.",
                 "none", [q(f'sum by (mode) (rate(node_cpu_seconds_total{{mode!="idle"}}[{RATE}]))',
                            "{{mode}}")], stack=True)
    b.timeseries("Host load and memory", "1-minute load average (left) and available memory.", "short",
                 targets(("node_load1", "load1"), ("node_memory_MemAvailable_bytes / 1e9", "GB available")))

    b.row("nginx")
    b.timeseries("nginx requests / s", "stub_status via the nginx exporter: everything through :8080.",
                 "reqps", [q(f"sum(rate(nginx_http_requests_total[{RATE}]))", "requests")])
    b.timeseries("nginx connections", "Client connections by state.", "short",
                 targets(("sum(nginx_connections_active)", "active"),
                         ("sum(nginx_connections_reading)", "reading"),
                         ("sum(nginx_connections_writing)", "writing"),
                         ("sum(nginx_connections_waiting)", "waiting (keepalive)")))

    b.row("Redis")
    b.timeseries("Redis commands / s", "All commands (left) and the busiest ones.", "ops",
                 targets((f"sum(rate(redis_commands_processed_total[{RATE}]))", "all"),
                         (f"topk(8, sum by (cmd) (rate(redis_commands_total[{RATE}])))", "{{cmd}}")))
    b.timeseries("Redis mean latency per command", "Server-side time per call (excludes the network).", "s",
                 [q(f"topk(8, sum by (cmd) (rate(redis_commands_duration_seconds_total[{RATE}]))"
                    f" / sum by (cmd) (rate(redis_commands_total[{RATE}])))", "{{cmd}}")])
    b.timeseries("Redis clients and memory", "Connected clients and used memory (MB).", "short",
                 targets(("sum(redis_connected_clients)", "clients"),
                         ("sum(redis_memory_used_bytes) / 1e6", "MB used")))
    b.timeseries("Redis keys", "Keys per database.", "short",
                 [q("sum by (db) (redis_db_keys)", "{{db}}")])

    b.row("Postgres")
    b.timeseries("Postgres transactions / s", "Commits and rollbacks of the boxoffice database.", "ops",
                 targets((f'sum(rate(pg_stat_database_xact_commit{{datname="boxoffice"}}[{RATE}]))', "commits"),
                         (f'sum(rate(pg_stat_database_xact_rollback{{datname="boxoffice"}}[{RATE}]))', "rollbacks")))
    b.timeseries("Postgres connections", "Backends connected to boxoffice, by state.", "short",
                 targets(('sum(pg_stat_database_numbackends{datname="boxoffice"})', "backends"),
                         ('sum by (state) (pg_stat_activity_count{datname="boxoffice"})', "{{state}}")))
    b.timeseries("Postgres rows / s", "Rows read and written in boxoffice.", "short",
                 targets((f'sum(rate(pg_stat_database_tup_fetched{{datname="boxoffice"}}[{RATE}]))', "fetched"),
                         (f'sum(rate(pg_stat_database_tup_inserted{{datname="boxoffice"}}[{RATE}]))', "inserted"),
                         (f'sum(rate(pg_stat_database_tup_updated{{datname="boxoffice"}}[{RATE}]))', "updated")))
    b.timeseries("Postgres deadlocks and conflicts", "Should stay flat at 0.", "short",
                 targets((f'sum(increase(pg_stat_database_deadlocks{{datname="boxoffice"}}[{RATE}]))', "deadlocks"),
                         (f'sum(increase(pg_stat_database_conflicts{{datname="boxoffice"}}[{RATE}]))', "conflicts")))

    b.row("Scrape targets")
    b.timeseries("Targets up", "1 per healthy scrape target, by job.", "short",
                 [q("sum by (job) (up)", "{{job}}")], w=24, h=6)
    return b


def waiting_room() -> Board:
    # Metric names as the waiting-room branch exports them (worker/src/admission.rs: gauges and
    # counters per concert; gateway/src/telemetry.rs: joins/polls per concert and outcome).
    b = Board("boxoffice-waiting-room", "Boxoffice / Waiting room",
              "Per concert: users waiting and active, admissions and abandonment per second, joins and "
              "polls by outcome, and the queue endpoints' latency.", ["boxoffice", "queue"])
    b.variable("concert", "Concert", "boxoffice_queue_waiting", "concert")
    c = 'concert=~"$concert"'

    b.row("Line")
    b.timeseries("Waiting", "Users in line (WAITING) per concert.", "short",
                 [q(f"max by (concert) (boxoffice_queue_waiting{{{c}}})", "concert {{concert}}")])
    b.timeseries("Active", "Users admitted and still in their session (ACTIVE) per concert.", "short",
                 [q(f"max by (concert) (boxoffice_queue_active{{{c}}})", "concert {{concert}}")])
    b.timeseries("Admitted / s", "Admissions per second per concert (the policy caps it), and the "
                 "rate the admitter reports (the basis of the ETA).", "short",
                 targets((f"sum by (concert) (rate(boxoffice_queue_admitted_total{{{c}}}[{RATE}]))", "concert {{concert}}"),
                         (f"max by (concert) (boxoffice_queue_admitted_per_second{{{c}}})", "concert {{concert}} (admitter)")))
    b.timeseries("Abandoned and expired / s", "Users dropped for not polling, and ACTIVE sessions that ran out.",
                 "short",
                 targets((f"sum by (concert) (rate(boxoffice_queue_abandoned_total{{{c}}}[{RATE}]))", "abandoned {{concert}}"),
                         (f"sum by (concert) (rate(boxoffice_queue_expired_total{{{c}}}[{RATE}]))", "expired {{concert}}")))

    b.row("Requests")
    b.timeseries("Joins by outcome", "POST .../queue: a new place, or the same place again.", "short",
                 [q(f"sum by (outcome) (rate(boxoffice_queue_joins_total{{{c}}}[{RATE}]))", "{{outcome}}")])
    b.timeseries("Polls by outcome", "GET .../queue: WAITING or ACTIVE.", "short",
                 [q(f"sum by (outcome) (rate(boxoffice_queue_polls_total{{{c}}}[{RATE}]))", "{{outcome}}")])
    b.timeseries("Join and poll p99", "In-handler time; the poll must not touch Redis (brief §5).", "s",
                 targets((f"histogram_quantile(0.99, sum by (concert, le) (rate(boxoffice_queue_poll_duration_seconds_bucket{{{c}}}[{RATE}])))",
                          "poll {{concert}}"),
                         (f"histogram_quantile(0.99, sum by (concert, le) (rate(boxoffice_queue_join_duration_seconds_bucket{{{c}}}[{RATE}])))",
                          "join {{concert}}")))
    b.timeseries("Queue endpoints by status", "403/409/410 are outcomes; 5xx are failures.", "reqps",
                 [q(f'sum by (method, status) (rate({HTTP}{{route=~"{QUEUE_ROUTE}"}}[{RATE}]))',
                    "{{method}} {{status}}")])
    return b


def sales() -> Board:
    # Metric names as the purchase-path branch exports them (domain/src/holds, payments;
    # worker/src/stream_sink.rs, hold_expiry.rs, reconciler.rs; gateway/src/cache.rs).
    b = Board("boxoffice-sales", "Boxoffice / Sales",
              "Holds, hold expiries, payments, the hold-event stream's lag, the payment reconciler and "
              "the in-process caches.", ["boxoffice", "sales"])

    b.row("Holds and payments")
    b.timeseries("Holds / s by kind and outcome", "Seated or GA; placed, or refused (SEAT_UNAVAILABLE, "
                 "SOLD_OUT, limit).", "short",
                 [q(f"sum by (kind, outcome) (rate(boxoffice_holds_total[{RATE}]))", "{{kind}} {{outcome}}")])
    b.timeseries("Holds ended / s", "Released by the buyer, paid, or expired by the worker after 5 minutes.",
                 "short",
                 targets((f"sum by (reason) (rate(boxoffice_holds_ended_total[{RATE}]))", "{{reason}}"),
                         (f"sum(rate(boxoffice_holds_expired_total[{RATE}]))", "expired (worker sweep)")))
    b.timeseries("Payments / s by outcome", "Paid, insufficient points, hold expired, replayed.", "short",
                 [q(f"sum by (outcome) (rate(boxoffice_payments_total[{RATE}]))", "{{outcome}}")])
    b.timeseries("Hold and payment p99", "HTTP p99 of the purchase routes, and the payment saga itself.", "s",
                 targets((quantile(0.99, "route, method, ", f'route=~"{HOLD_ROUTES}"'), "{{method}} {{route}}"),
                         (f"histogram_quantile(0.99, sum by (le) (rate(boxoffice_payments_duration_seconds_bucket[{RATE}])))",
                          "payment saga")))

    b.row("Pipeline")
    b.timeseries("Stream lag", "Hold events in Redis not yet written to Postgres by the worker.", "short",
                 [q("max(boxoffice_stream_lag_entries)", "lag (entries)")])
    b.timeseries("Stream events / s", "Hold events the sink wrote to Postgres, by kind.", "short",
                 [q(f"sum by (kind) (rate(boxoffice_stream_events_total[{RATE}]))", "{{kind}}")])
    b.timeseries("Reconciler actions / s", "Payments interrupted between Redis and Postgres, settled.",
                 "short", [q(f"sum by (action) (rate(boxoffice_reconciler_actions_total[{RATE}]))", "{{action}}")])
    b.timeseries("Batches", "Holds per Redis call and payments per shared transaction (a replica "
                 "batches what queues while its previous batch is in flight), and payment batches that "
                 "failed as a whole and paid each payment alone.", "short",
                 targets((f"sum(rate(boxoffice_hold_batch_size_sum[{RATE}]))"
                          f" / sum(rate(boxoffice_hold_batch_size_count[{RATE}]))", "holds per batch"),
                         (f"sum(rate(boxoffice_payment_batch_size_sum[{RATE}]))"
                          f" / sum(rate(boxoffice_payment_batch_size_count[{RATE}]))", "payments per batch"),
                         (f"sum(rate(boxoffice_payment_batch_fallbacks_total[{RATE}])) or vector(0)",
                          "payment fallbacks / s")))
    b.timeseries("Cache hit ratio", "moka caches (dates per concert, seats per section).", "percentunit",
                 [q(f'sum by (cache) (rate(boxoffice_cache_requests_total{{result="hit"}}[{RATE}]))'
                    f" / sum by (cache) (rate(boxoffice_cache_requests_total[{RATE}]))", "{{cache}}")])
    b.timeseries("Purchase endpoints by status", "409/410/402 are outcomes; 5xx are failures.", "reqps",
                 [q(f'sum by (method, status) (rate({HTTP}{{route=~"{HOLD_ROUTES}"}}[{RATE}]))',
                    "{{method}} {{status}}")])
    return b


BOARDS = {"overview": overview, "waiting-room": waiting_room, "sales": sales}


def render(name: str) -> str:
    return json.dumps(BOARDS[name]().json(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="fail when a board JSON is out of date")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    stale = []
    for name in BOARDS:
        path = OUT / f"{name}.json"
        text = render(name)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    if stale:
        for p in stale:
            print(f"out of date: {p.relative_to(REPO)} (run tools/dashboards.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
