# Distributed A3C over gRPC. `make train` and `make test` set themselves up on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

PORT ?= 50051
SERVER ?= localhost:$(PORT)
N ?= 2
MODE ?= gradient
EPISODES ?= 500
SEED ?= 0
ENV ?= Pendulum-v1
RUN_DIR ?= runs/$(MODE)-n$(N)-s$(SEED)-$(shell date +%Y%m%d-%H%M%S)

.PHONY: setup proto train server workers test lint format clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I proto --python_out=. --grpc_python_out=. \
		--pyi_out=. proto/a3c/v1/a3c.proto

train: $(STAMP)
	$(BIN)/a3c-train --workers $(N) --mode $(MODE) --max-episodes $(EPISODES) \
		--run-dir $(RUN_DIR) --seed $(SEED) --env-id $(ENV)

server: $(STAMP)
	$(BIN)/a3c-server --port $(PORT) --max-episodes $(EPISODES) --run-dir $(RUN_DIR) \
		--env-id $(ENV) --seed $(SEED)

workers: $(STAMP)
	$(BIN)/a3c-workers -n $(N) --server $(SERVER) --mode $(MODE) --seed $(SEED)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
