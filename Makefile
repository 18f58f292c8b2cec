# Distributed A3C over gRPC. `make train` and `make test` set themselves up on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

PORT ?= 50051
SERVER ?= localhost:$(PORT)
N ?= 2
MODE ?= data
EPISODES ?= 500
# STEPS=N: an env-step budget; without EPISODES on the command line it is the only budget.
STEPS ?=
SEED ?= 0
ENV ?= Pendulum-v1
ENV_KWARGS ?=
IN_FLIGHT ?= 1
ENVS ?=
# With no options: Pendulum-v1 with the fast preset (8 environments per worker) in data mode,
# the settings that reach -200 soonest and hold (docs/tuning.md). PRESET=default is a3c-train's
# own default (one environment per worker), PRESET=seed the seed's textbook A3C; other
# environments train with their entry in a3c/envs.py over the default preset.
PRESET ?= $(if $(filter Pendulum-v1,$(ENV)),fast)
METRICS_PORT ?= 9100
WORKER_METRICS_PORT ?= 9101
RUN_DIR ?= runs/$(if $(filter-out Pendulum-v1,$(ENV)),$(ENV)-)$(MODE)-n$(N)$(if $(ENVS),x$(ENVS))$(if $(PRESET),-$(PRESET))-s$(SEED)-$(shell date +%Y%m%d-%H%M%S)

given = $(filter command line environment,$(origin $(1)))
# The budget flags of EPISODES and STEPS.
BUDGET = --max-episodes $(if $(and $(STEPS),$(if $(call given,EPISODES),,steps)),0,$(EPISODES)) \
	$(if $(STEPS),--max-env-steps $(STEPS))

PROM_PORT ?= 9090
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup lock proto train server workers monitor prometheus dashboard tensorboard test lint format clean

setup: $(STAMP)

# The pins and hashes of requirements.lock (runtime, envs and dev extras), then the project.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --require-hashes -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m pip check  # fails when pyproject.toml asks for more than the lock has
	touch $(STAMP)

# Regenerates requirements.lock from pyproject.toml for Linux x86_64 and Python 3.11, with uv
# from a throwaway venv. It keeps the pins that still fit; LOCK_FLAGS=--upgrade moves them all.
# requirements-runtime.lock is its runtime part (no dev tools), what the Docker image installs:
# the same pins, since the full lock constrains it.
LOCK_TOOL ?= uv==0.13.8
lock:
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && $(PY) -m venv "$$tmp" && \
	"$$tmp/bin/python" -m pip install -q $(LOCK_TOOL) && \
	"$$tmp/bin/uv" pip compile pyproject.toml --extra envs --extra dev --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --generate-hashes \
		--custom-compile-command "make lock" --quiet -o requirements.lock $(LOCK_FLAGS) && \
	"$$tmp/bin/uv" pip compile pyproject.toml --extra envs --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --generate-hashes --constraint requirements.lock \
		--custom-compile-command "make lock" --quiet -o requirements-runtime.lock

proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I proto --python_out=. --grpc_python_out=. \
		--pyi_out=. proto/a3c/v1/a3c.proto

train: $(STAMP)
	$(BIN)/a3c-train --workers $(N) --mode $(MODE) $(BUDGET) \
		--run-dir $(RUN_DIR) --seed $(SEED) --env-id $(ENV) \
		--metrics-port $(METRICS_PORT) --worker-metrics-port $(WORKER_METRICS_PORT) \
		--max-in-flight $(IN_FLIGHT) $(if $(ENVS),--num-envs $(ENVS)) \
		$(if $(ENV_KWARGS),--env-kwargs $(ENV_KWARGS)) \
		$(if $(PRESET),--preset $(PRESET)) $(TRAIN_FLAGS)

server: $(STAMP)
	$(BIN)/a3c-server --port $(PORT) $(BUDGET) --run-dir $(RUN_DIR) \
		--env-id $(ENV) --seed $(SEED) --metrics-port $(METRICS_PORT) \
		$(if $(ENV_KWARGS),--env-kwargs $(ENV_KWARGS)) $(if $(PRESET),--preset $(PRESET))

workers: $(STAMP)
	$(BIN)/a3c-workers -n $(N) --server $(SERVER) --mode $(MODE) --seed $(SEED) \
		--metrics-port $(WORKER_METRICS_PORT) --max-in-flight $(IN_FLIGHT) \
		$(if $(ENVS),--num-envs $(ENVS))

# Prometheus and promtool from the Debian package, installed when missing.
prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends prometheus; }

monitor: prometheus
	@mkdir -p runs/prometheus
	@echo "Prometheus at http://127.0.0.1:$(PROM_PORT) scraping make train (server :9100, workers :9101+)."
	@echo "Grafana: add it as a Prometheus data source, import deploy/grafana/dashboards/a3c.json."
	prometheus --config.file=deploy/prometheus/prometheus.yml --storage.tsdb.path=runs/prometheus \
		--web.listen-address=127.0.0.1:$(PROM_PORT)

# TensorBoard on runs' event files (RUN_DIR/tensorboard: diagnostics, returns, evaluations,
# throughput); RUN_DIR="runs/a runs/b" shows them side by side, each under its folder's name.
TB_HOST ?= 127.0.0.1
TB_PORT ?= 6006
tensorboard: $(STAMP)
	@test -n "$(call given,RUN_DIR)" || { echo "make tensorboard: set RUN_DIR=runs/NAME" >&2; exit 2; }
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(BIN)/python -c 'import sys; from lab.runs import tensorboard_links as t; t(sys.argv[1], sys.argv[2:])' \
		"$$tmp" $(RUN_DIR) && \
	$(BIN)/tensorboard --logdir "$$tmp" --host $(TB_HOST) --port $(TB_PORT)

dashboard: $(STAMP)
	$(BIN)/python deploy/grafana/build_dashboard.py
	deploy/k8s/monitoring/sync.sh

# --- results: play, plot, compare -------------------------------------------------------
MODES ?= gradient data
SEEDS ?= 3
X ?= episodes
.PHONY: play plot compare bench export soak

# RUN_DIR names an existing run folder. For play, EPISODES counts played episodes (default 3).
play: $(STAMP)
	@test -n "$(call given,RUN_DIR)" || { echo "make play: set RUN_DIR=runs/NAME" >&2; exit 2; }
	$(BIN)/a3c-play $(RUN_DIR) --episodes $(if $(call given,EPISODES),$(EPISODES),3) \
		$(if $(OUT),--out $(OUT)) $(if $(POLICY),--policy $(POLICY))

# The run's deterministic policy as ONNX and a SavedModel, in RUN_DIR/export (or OUT).
export: $(STAMP)
	@test -n "$(call given,RUN_DIR)" || { echo "make export: set RUN_DIR=runs/NAME" >&2; exit 2; }
	$(BIN)/a3c-export $(RUN_DIR) $(if $(OUT),--out $(OUT))

# RUN_DIR may list several run folders: RUN_DIR="runs/a runs/b". X=seconds for wall-clock.
plot: $(STAMP)
	@test -n "$(call given,RUN_DIR)" || { echo "make plot: set RUN_DIR=runs/NAME" >&2; exit 2; }
	$(BIN)/a3c-plot $(RUN_DIR) --x $(X) $(if $(OUT),--out $(OUT))

# PRESETS="seed default fast" runs every mode with each hyperparameter preset; ENVS=M sets
# the environments per worker (else each preset's own).
compare: $(STAMP)
	$(BIN)/a3c-compare --modes $(MODES) --seeds $(SEEDS) --episodes $(EPISODES) --workers $(N) \
		--env-id $(ENV) $(if $(ENV_KWARGS),--env-kwargs $(ENV_KWARGS)) --out $(or $(OUT),runs/compare-$(shell date +%Y%m%d-%H%M%S)) \
		$(if $(PRESETS),--presets $(PRESETS)) $(if $(ENVS),--num-envs $(ENVS)) $(TRAIN_FLAGS)

# The benchmark (about 15 minutes with the defaults); BENCH_FLAGS e.g. "--learning-episodes 0".
bench: $(STAMP)
	$(BIN)/a3c-bench --out $(or $(OUT),runs/bench-$(shell date +%Y%m%d-%H%M%S)) $(BENCH_FLAGS)

# One server at full speed (2 data + 1 gradient workers x 16 environments) for MINUTES, the
# resident memory of every process sampled each minute: soak.csv, soak.png, soak.md.
MINUTES ?= 30
soak: $(STAMP)
	$(BIN)/python -m lab.soak --minutes $(MINUTES) --out $(or $(OUT),runs/soak-$(shell date +%Y%m%d-%H%M%S))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint prometheus
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# --- peers: the program a user would pick instead (SB3 A2C, RL Zoo settings), for make bench ---
# A venv of its own, so the peer's torch never meets ours. torch==2.13.0 resolves to the local
# CPU build (plain `torch` would pull a CUDA build); SB3 2.9.2 needs torch>=2.8, gymnasium<2.
PEERS_VENV := .venv-peers
PEERS_PINS := torch==2.13.0 stable-baselines3==2.9.2 gymnasium==1.4.0 numpy==2.4.6
PEERS_STAMP := $(PEERS_VENV)/.installed-$(subst ==,-,$(subst $() $(),_,$(PEERS_PINS)))

.PHONY: bench-peers

bench-peers: $(PEERS_STAMP)

$(PEERS_STAMP):
	test -x $(PEERS_VENV)/bin/python || $(PY) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install -q $(PEERS_PINS)
	rm -f $(PEERS_VENV)/.installed-* && touch $@
