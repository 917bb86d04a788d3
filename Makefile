# Two commands for a fresh machine: `make demo` and `make test`. Each creates .venv if missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CKPT ?= checkpoints/synthetic-tiny

.PHONY: setup demo test clean

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.installed

# Train the tiny preset on the embedded synthetic default, evaluate it, and predict from files;
# then the shipped model on a real photo, a sentence and a spoken clip (skipped, saying so, while
# this copy of bridge has none: python -m bridge.release build makes it).
demo: setup
	$(PY) train.py --output $(CKPT)
	$(PY) evaluate.py --checkpoint $(CKPT)
	$(PY) -m bridge.data.export $(CKPT)/demo-inputs
	$(PY) infer.py --checkpoint $(CKPT) --image $(CKPT)/demo-inputs/face.png --no-face-detection \
		--audio $(CKPT)/demo-inputs/voice.wav --text @$(CKPT)/demo-inputs/text.txt
	$(PY) infer.py --checkpoint $(CKPT) --audio $(CKPT)/demo-inputs/voice.wav
	$(PY) -m bridge.demo --if-shipped

test: setup
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
