# Live Studio — the two commands: `make dev` (run the studio) and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup dev test test-fast lint bench bench-sockets bench-pipeline bench-latency clean

## Install what is missing: apt packages, .venv (pip), node_modules (npm).
setup:
	@bash devtools/bootstrap.sh
	@mkdir -p studio/static/vendor
	@cp node_modules/hls.js/dist/hls.min.js studio/static/vendor/hls.min.js

## Run the whole studio locally (services, migrations, web, workers). Ctrl-C stops it.
dev: setup
	@$(PY) -m devtools.dev

## Run every test (lint, unit, integration, end-to-end in Chromium).
test: setup
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .
	@$(PY) -m pytest

## Unit and integration tests only (no browser, no media).
test-fast: setup
	@$(PY) -m pytest -m "not e2e"

lint: setup
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .

## Benchmarks (bench/api_latency.py writes its section of docs/benchmarks.md).
bench: setup
	@$(PY) bench/api_latency.py

## Websockets: 2,000 watch-page sockets through nginx; callback and page latency meanwhile.
bench-sockets: setup
	@$(PY) bench/sockets.py

## Media pipeline: upload throughput, then N = 50/100/200 live publishers (several minutes).
bench-pipeline: setup
	@$(PY) bench/uploads.py && $(PY) bench/pipeline.py --publishers 50 100 200

## Glass-to-glass latency in Chromium, 2 s and 1 s fragments (about 3 minutes).
bench-latency: setup
	@$(PY) bench/latency.py --fragments 2 1

clean:
	@devtools/pg_ctl stop -D var/pg/data -m fast 2>/dev/null || true  # a private cluster
	rm -rf var/
