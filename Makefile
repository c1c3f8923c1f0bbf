# The two commands: `make run` and `make test`. Everything else is a helper of theirs.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
BENCH_ARGS ?=
FUZZ_ARGS ?=

.PHONY: install run test lint proto bench bench-quick bench-standby bench-webhooks fuzz chaos clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

## Start the server on 127.0.0.1:50051 with projections and the expiry sweeper in-process.
## Uses LICENSE_SVC_DATABASE_URL, else an embedded PostgreSQL under var/.
run: install
	$(VENV)/bin/license-svc run

## Lint, type-check, then the whole suite against LICENSE_SVC_TEST_DATABASE_URL (else embedded).
test: install lint
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests bench protos
	$(VENV)/bin/ruff format --check src tests bench protos
	$(VENV)/bin/mypy
	protos/contract.sh

## Regenerate src/license_svc/entrypoints/api/gen from protos/ (committed; a test fails when stale).
proto: install
	$(PY) protos/generate.py

## Measure every hot path against ceilings measured in the same run (bench/README.md).
## BENCH_ARGS passes options, e.g. BENCH_ARGS="--workers 2" or "--only ActivateKey".
bench: install
	$(PY) -m bench.run $(BENCH_ARGS)
	$(PY) -m bench.standby_reads
	$(PY) -m bench.webhooks

bench-quick: install
	$(PY) -m bench.run --quick $(BENCH_ARGS)

## GetSeatAllowance cold reads at c=32 with the views read on the primary, then on a standby
## (LICENSE_SVC_READ_DATABASE_URL), and the primary's CPU per read (bench/standby_reads.py).
bench-standby: install
	$(PY) -m bench.standby_reads $(BENCH_ARGS)

## Webhooks to a local receiver: deliveries/s and commit → arrival lag (bench/webhooks.py).
bench-webhooks: install
	$(PY) -m bench.webhooks $(BENCH_ARGS)

## Hostile requests at a real server (tests/fuzz/): status codes per method, any UNKNOWN/INTERNAL
## with a reproducer, store and views unchanged by rejected requests. `make test` runs a short form.
## FUZZ_ARGS passes options, e.g. FUZZ_ARGS="--requests 5000 --seed 7"; the table is saved to
## bench/results/fuzz-<date>.txt.
fuzz: install
	$(PY) -m tests.fuzz --save $(FUZZ_ARGS)

## Kill servers and the worker and cut the database under load; print the recovery times.
## Uses LICENSE_SVC_TEST_DATABASE_URL's server (a fresh database), else an embedded PostgreSQL.
## Then bench.failover: a primary and a synchronous standby of its own (PostgreSQL's tools), the
## primary SIGKILLed and the standby promoted under load; prints the failover timeline.
chaos: install
	$(PY) -m bench.chaos $(BENCH_ARGS)
	$(PY) -m bench.failover

clean:
	rm -rf build *.egg-info .pytest_cache .mypy_cache .ruff_cache
