"""Monitoring for real: promtool on our rules, a real Prometheus scraping a run, the dashboard."""

import json
import math
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from lab import scrape
from lab.bench import stop
from tests.conftest import ROOT
from tests.e2e.test_train import ENV, free_port

DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "a3c.json"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (make test installs the Debian package prometheus)")
    return path


def dashboard_queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels if p["type"] != "row" for t in p["targets"]]


def test_rules_and_config_pass_promtool():
    promtool = need("promtool")
    for args in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"]):
        done = subprocess.run([promtool, *args], cwd=PROMETHEUS_DIR, capture_output=True)
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def test_dashboard_is_built_from_its_source_and_every_panel_is_described():
    sys.path.insert(0, str(ROOT / "deploy" / "grafana"))
    try:
        import build_dashboard
    finally:
        sys.path.pop(0)
    assert DASHBOARD.read_text() == build_dashboard.render(), "run `make dashboard`"
    panels = [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]
    for p in panels:
        assert p["title"] and p["description"], p
        assert p["fieldConfig"]["defaults"]["unit"], p["title"]
    rows = [p["title"] for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] == "row"]
    assert "Learning" in rows and len(rows) == 6


def prom_query(base: str, path: str, **params) -> dict:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as reply:
        body = json.load(reply)
    assert body["status"] == "success", body
    return body["data"]


def finite_values(data: dict) -> list[float]:
    values = [float(v) for series in data["result"] for _, v in series["values"]]
    return [v for v in values if math.isfinite(v)]


def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "prometheus exited"
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail("prometheus not ready")


def wait_for_update(metrics_port: int, mode: str, server: subprocess.Popen) -> None:
    """Until the server has made an update of `mode` (read from its /metrics)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if scrape.value(scrape.scrape(metrics_port), "a3c_server_updates_total", mode=mode):
                return
        except OSError:
            pass  # not listening yet
        time.sleep(0.5)
    pytest.fail(f"no {mode}-mode update within 180 s")


def test_real_prometheus_scrapes_a_run_and_every_dashboard_query_returns_data(tmp_path):
    prometheus = need("prometheus")
    grpc_port, server_metrics, prom_port = free_port(), free_port(), free_port()
    worker_ports = {"data": free_port(), "gradient": free_port()}
    config = tmp_path / "prometheus.yml"
    workers = [f"127.0.0.1:{p}" for p in worker_ports.values()]
    jobs = [
        {
            "job_name": "a3c-server",
            "static_configs": [{"targets": [f"127.0.0.1:{server_metrics}"]}],
        },
        {"job_name": "a3c-worker", "static_configs": [{"targets": workers}]},
    ]
    # JSON is YAML: no YAML writer needed.
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(PROMETHEUS_DIR / "alerts.yml")],
                "scrape_configs": jobs,
            }
        )
    )
    base = f"http://127.0.0.1:{prom_port}"
    procs = [
        subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    ]  # fmt: skip
    try:
        wait_ready(base, procs[0])
        start = time.time()
        server = subprocess.Popen(
            [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(grpc_port),
             "--metrics-port", str(server_metrics), "--max-episodes", "24",
             "--run-dir", str(tmp_path / "run"), "--progress", "false"],
            cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(server)
        # The gradient worker first: it imports TensorFlow, and on a busy machine the data
        # worker alone could otherwise train the whole budget before it pushes once.
        for mode in ("gradient", "data"):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "worker", "--server", f"127.0.0.1:{grpc_port}",
                     "--mode", mode, "--metrics-port", str(worker_ports[mode])],
                    cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                )
            )  # fmt: skip
            if mode == "gradient":
                wait_for_update(server_metrics, mode, server)
        assert server.wait(timeout=240) == 0
        end = time.time()
        for title, expr in dashboard_queries():
            expr = expr.replace("$__rate_interval", "4s")
            data = prom_query(base, "query_range", query=expr, start=start, end=end, step=1)
            assert finite_values(data), f"{title}: {expr} returned no data"

        def values(expr):
            data = prom_query(base, "query_range", query=expr, start=start, end=end, step=1)
            return finite_values(data)

        utilisation = values("rate(a3c_server_learner_busy_seconds_total[4s])")
        # Up to 1% over 1: scrape timestamps are taken a little before the counter is read.
        assert utilisation and all(0 <= u <= 1.01 for u in utilisation), utilisation
        assert max(utilisation) > 0.05
        for mode in ("data", "gradient"):
            lag = values(f'a3c_server_policy_lag_versions_count{{mode="{mode}"}}')
            assert max(lag) > 0, f"no policy lag observed in {mode} mode"
        episodes = values("a3c_server_episodes_total")
        assert max(episodes) <= 24
        rules = prom_query(base, "rules")["groups"][0]["rules"]
        assert {r["name"] for r in rules} >= {"A3CLearnerSaturated", "A3CServerDown"}
        assert all(r["health"] == "ok" for r in rules), rules
    finally:
        stop(list(reversed(procs)))
