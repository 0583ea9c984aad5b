# Live Studio — the two commands: `make dev` (run the studio) and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup dev test test-fast e2e lint bench bench-sockets bench-chat bench-pipeline bench-pipeline-sim bench-latency clean

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

## The QA suite (tests/e2e/qa) against any running studio:
##   make e2e BASE_URL=https://staging.example.com E2E_EMAIL=... E2E_PASSWORD=...
## Without BASE_URL it starts its own stack. E2E_READ_MOSTLY=1 runs only what is
## safe against production; E2E_TIMEOUT_SCALE=3 for slow networks; E2E_INSECURE=1
## accepts an untrusted (development) certificate. Report, JUnit XML and failure traces in var/e2e/.
E2E_OUT := var/e2e
e2e: setup
	@rm -rf $(E2E_OUT) && mkdir -p $(E2E_OUT)
	@BASE_URL='$(BASE_URL)' E2E_EMAIL='$(E2E_EMAIL)' E2E_PASSWORD='$(E2E_PASSWORD)' \
	  E2E_TIMEOUT_SCALE='$(E2E_TIMEOUT_SCALE)' E2E_INSECURE='$(E2E_INSECURE)' \
	  $(PY) -m pytest tests/e2e/qa -p no:cacheprovider -rs \
	  $(if $(E2E_READ_MOSTLY),-m read_mostly) \
	  --tracing retain-on-failure --screenshot only-on-failure --output $(E2E_OUT)/artifacts \
	  --junitxml $(E2E_OUT)/junit.xml --html $(E2E_OUT)/report.html --self-contained-html

lint: setup
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .

## Benchmarks (bench/api_latency.py writes its section of docs/benchmarks.md), then the
## SRS callbacks against their floor (the same statements without Flask or the ORM).
bench: setup
	@$(PY) bench/api_latency.py && $(PY) bench/callback_floor.py

## Websockets: 2,000 watch-page sockets through nginx; callback and page latency meanwhile.
bench-sockets: setup
	@$(PY) bench/sockets.py

## Chat: 1,000 chatters on one stream, 50 messages/s; delivery latency, callbacks meanwhile.
bench-chat: setup
	@$(PY) bench/chat.py

## Media pipeline: upload throughput, then N = 50/100/200 live publishers (several minutes).
bench-pipeline: setup
	@$(PY) bench/uploads.py && $(PY) bench/pipeline.py --publishers 50 100 200

## The pipeline alone, fed by a simulated engine (SRS dialect): capacity at 2 s and 1 s fragments,
## N raised until the goal (upload lag p95 < 1 s, nothing lost) is missed; prints the tables' rows;
## then what the bucket emulator costs per upload as the objects it holds grow, and what the
## storage adapter costs the worker per upload.
bench-pipeline-sim: setup
	@$(PY) bench/pipeline_sim.py --streams 100 150 200 300 400 500 --fragments 2 1 --seconds 45 --until-broken
	@$(PY) bench/bucket_emulator.py
	@$(PY) bench/upload_client.py

## Glass-to-glass latency in Chromium, 2 s and 1 s fragments (about 3 minutes).
bench-latency: setup
	@$(PY) bench/latency.py --fragments 2 1 --whep

clean:
	@devtools/pg_ctl stop -D var/pg/data -m fast 2>/dev/null || true  # a private cluster
	rm -rf var/
