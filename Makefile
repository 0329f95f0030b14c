# The two commands of the README: `make demo` and `make test`. Both set up .venv/ first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install browser docker demo test test-unit test-integration test-e2e bench down lock clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --disable-pip-version-check -q -c constraints.txt -e ".[lab,dev]"
	touch $(STAMP)

install: $(STAMP)

# The chat page's browser test drives Debian's chromium (never a Playwright download); installed
# here as root when missing, else that one test skips and says why.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium; } \
	  || echo "chromium is not installed and cannot be installed here; the browser test will skip"

# The compose test runs the lab under Debian's Docker engine with locally built stand-in images
# (debootstrap builds their base); installed here as root when missing, else that test skips.
docker:
	@{ command -v dockerd >/dev/null && command -v debootstrap >/dev/null; } \
	  || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null; } \
	  || echo "docker.io or debootstrap is not installed and cannot be installed here; the compose test will skip"

demo: install
	$(BIN)/sdlab demo

test: install browser docker
	$(BIN)/pytest tests --durations=15

test-unit: install
	$(BIN)/pytest tests/unit

test-integration: install
	$(BIN)/pytest tests/integration

test-e2e: install browser docker
	$(BIN)/pytest tests/e2e

# wrk measures the ceiling that Locust cannot reach; installed from Debian's packages when missing.
bench: install
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq wrk; } \
	  || echo "wrk is not installed and cannot be installed here; sdlab bench falls back to Locust"
	$(BIN)/sdlab bench shortener

down: install
	$(BIN)/sdlab down

lock: $(BIN)/python
	$(BIN)/pip install -q -e ".[lab,dev]"
	{ echo "# Exact versions for repeatable installs (pip install -c constraints.txt -e .[lab,dev])."; \
	  echo "# Regenerate after changing pyproject.toml: make lock"; \
	  $(BIN)/pip freeze --exclude-editable | grep -v '^system-design-lab'; } > constraints.txt

clean:
	-$(BIN)/sdlab down
	rm -rf $(VENV) .lab
