# pymta: the README's two commands are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ROOT ?= ./var/pymta
SMTP ?= tcp:2525:interface=127.0.0.1
SUBMISSION ?= tcp:2587:interface=127.0.0.1
POP3 ?= tcp:1110:interface=127.0.0.1
TRIAL_JOBS ?= 2

.PHONY: run test explore venv clean

$(BIN)/pymta: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' --config-settings editable_mode=compat
	$(BIN)/python -c 'from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))'
	touch $(BIN)/pymta

venv: $(BIN)/pymta

# mypy first (files and plugin in setup.cfg's [mypy]: pymta and twisted/plugins), then the tests
test: venv
	$(BIN)/mypy
	$(BIN)/python -m twisted.trial -j$(TRIAL_JOBS) tests

# Property tests with fresh random examples, ten rounds (make test draws fixed ones).
PROPERTY_TESTS := $(shell grep -rl '@given' tests | sed 's,/,.,g; s,\.py$$,,' | sort)
explore: venv
	for i in 1 2 3 4 5 6 7 8 9 10; do HYPOTHESIS_PROFILE=explore $(BIN)/python -m twisted.trial -j$(TRIAL_JOBS) $(PROPERTY_TESTS) || exit 1; done

run: venv
	$(BIN)/python -m pymta.cli.runlocal --root $(ROOT) --smtp '$(SMTP)' --submission '$(SUBMISSION)' --pop3 '$(POP3)'

clean:
	rm -rf $(VENV) _trial_temp* build *.egg-info .mypy_cache
