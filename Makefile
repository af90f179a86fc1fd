# The README's two commands: `make run` and `make test`. Both work from a clean clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, from the CPU wheel pip finds on disk; any other route pulls a multi-GB CUDA build.
TORCH ?= torch==2.13.0
INSTALLED := $(VENV)/.installed

.PHONY: run test lint services install clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev,release-check,s3]"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps "nnunetv2==2.8.1"
	touch $@

install: $(INSTALLED)

## Serve mscrowd at http://localhost:8000 on the embedded default (SQLite under ./var), with a
## Celery worker and the synthetic demo data (built once; later runs reuse it).
run: $(INSTALLED)
	$(BIN)/mscrowd migrate
	$(BIN)/mscrowd demo
	$(BIN)/mscrowd serve --port 8000

## Lint, type-check and run the whole suite against real PostgreSQL and Redis: two xdist
## workers (a module's tests stay on one; torch and BLAS on one thread each, so the two never
## fight over the two cores), then the tests marked `solo` (timed, or loading both cores) alone.
test: $(INSTALLED) services lint
	rm -f var/test-backends.json
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MSCROWD_REQUIRE_SERVICES=1 \
		$(BIN)/pytest -n 2 --dist loadfile -m "not solo" \
		--junitxml=var/junit.xml
	MSCROWD_REQUIRE_SERVICES=1 MSCROWD_BACKEND_REPORT_ADD=1 $(BIN)/pytest -m solo \
		--junitxml=var/junit-solo.xml

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

services:
	bash scripts/ensure-services.sh

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache
