# pymta: the README's two commands are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ROOT ?= ./var/pymta
SMTP ?= tcp:2525:interface=127.0.0.1
SUBMISSION ?= tcp:2587:interface=127.0.0.1
POP3 ?= tcp:1110:interface=127.0.0.1
TRIAL_JOBS ?= 2

.PHONY: run test venv clean

$(BIN)/pymta: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' --config-settings editable_mode=compat
	$(BIN)/python -c 'from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))'
	touch $(BIN)/pymta

venv: $(BIN)/pymta

test: venv
	$(BIN)/python -m twisted.trial -j$(TRIAL_JOBS) tests

run: venv
	$(BIN)/python -m pymta.cli.runlocal --root $(ROOT) --smtp '$(SMTP)' --submission '$(SUBMISSION)' --pop3 '$(POP3)'

clean:
	rm -rf $(VENV) _trial_temp* build *.egg-info
