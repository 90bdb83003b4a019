# The two commands: `make demo` and `make test`. Each creates .venv when missing, installs the
# project into it, and installs the Debian packages the tests and the demo need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test screenshots bench bench-http bench-mysql bench-ingest bench-query bench-dashboard system-deps clean

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	# a real Zipkin proto client for the tests; its release pins protobuf~=3.12, which
	# opentelemetry-proto cannot use, so it is installed without its dependencies
	$(PY) -m pip install -q --no-deps opentelemetry-exporter-zipkin-proto-http==1.45.1
	touch $(INSTALLED) $(COMPILED)

# The modules with a .pxd beside them run compiled (setup.py; pip builds them in place): rebuilt
# whenever a source changes, so that a stale extension never shadows an edited .py
PXDS := $(wildcard */*.pxd */*/*.pxd)
COMPILED_SOURCES := $(PXDS) $(PXDS:.pxd=.py)
COMPILED := $(VENV)/.compiled
$(COMPILED): $(INSTALLED) setup.py $(COMPILED_SOURCES)
	$(PY) -m pip install -q --no-deps -e .
	touch $(COMPILED)

system-deps:
	bash scripts/install-system-deps.sh

test: $(COMPILED) system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

# the dashboard's browser tests, saving their pages into docs/screenshots/ (the README shows them)
screenshots: $(COMPILED) system-deps
	MESHSCOPE_UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q tests/dashboard

demo: $(COMPILED) system-deps
	$(VENV)/bin/meshscope demo

# Benchmarks: each prints its figures, then one summary line. Run them on a quiet machine.
bench: bench-ingest bench-query bench-http bench-mysql bench-dashboard

bench-http: $(COMPILED) system-deps
	$(PY) bench/bench_http.py

bench-mysql: $(COMPILED) system-deps
	$(PY) bench/bench_mysql.py

bench-ingest: $(COMPILED)
	$(PY) bench/bench_ingest.py

bench-query: $(COMPILED)
	$(PY) bench/bench_query.py

bench-dashboard: $(COMPILED) system-deps
	$(PY) bench/bench_dashboard.py

clean:
	rm -rf $(VENV) .meshscope .pytest_cache build
	rm -f $(wildcard */*.so */*/*.so) $(PXDS:.pxd=.c)
