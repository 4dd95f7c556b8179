# Testimony: `make run` serves both faces locally; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test soak bench bench-intake bench-export lint run clean translations messages axe-core fuzz

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Serve both faces on localhost with the embedded SQLite instance in ./instance.
run: $(STAMP) translations
	$(VENV)/bin/testimony init
	$(VENV)/bin/testimony incidents import store/data/violation-types.json store/data/korday-2020.json
	$(VENV)/bin/testimony reviewer demo
	@echo "Witness face:  http://127.0.0.1:8080/"
	@echo "Review face:   http://127.0.0.1:8081/"
	@trap 'kill 0' INT TERM EXIT; \
	$(VENV)/bin/gunicorn --bind 127.0.0.1:8080 --workers 2 --timeout 3600 wsgi:intake_app & \
	$(VENV)/bin/gunicorn --bind 127.0.0.1:8081 --workers 2 wsgi:review_app & \
	wait

# The whole suite on SQLite; then, when TEST_DATABASE_URL names a PostgreSQL server, again
# with every instance on PostgreSQL. The first pass only: tests of SQLite's own files, those
# that open no instance database (see tests/conftest.py), and the chromium tests (the
# pages they drive reach the database through the same views the other tests run on
# PostgreSQL; the soak runs gunicorn on PostgreSQL), which keeps make test under 10 minutes.
test: $(STAMP) translations axe-core lint
	$(PY) -m pytest $(PYTEST_ARGS)
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== the suite again, every instance on PostgreSQL =="; \
		TESTIMONY_TEST_BACKEND=postgres $(PY) -m pytest -m "not sqlite and not browser" \
			$(PYTEST_ARGS); \
	else \
		echo "TEST_DATABASE_URL is not set: no PostgreSQL pass"; \
	fi

# Reliability under load and faults (bench/soak.py): own PostgreSQL and Redis, 4 workers per
# face, 32 witnesses, 2,000 submissions, workers killed, PostgreSQL and Redis restarted.
soak: $(STAMP) translations
	$(PY) bench/soak.py $(SOAK_ARGS)

# axe-core, the accessibility checker the browser tests inject, from the npm registry into
# tests/.node (not committed). Without npm the accessibility tests skip and say why.
AXE := tests/.node/node_modules/axe-core/axe.min.js
axe-core:
	@test -f $(AXE) || ! command -v npm >/dev/null || \
		npm install --silent --no-audit --no-fund --no-save --prefix tests/.node axe-core@4 \
		|| echo "axe-core could not be installed: the accessibility tests will skip"

bench: $(STAMP)
	$(PY) bench/seal.py $(BENCH_ARGS)
	$(MAKE) --no-print-directory bench-intake
	$(PY) bench/review.py $(BENCH_ARGS)

# The witness face under load (gunicorn) against a bare Flask + SQLite app, and the
# worker's peak RSS during a 200 MiB upload.
bench-intake: $(STAMP)
	$(PY) bench/intake.py $(BENCH_INTAKE_ARGS)

# A full anonymized export of 100,000 testimonies and 1,000 excerpts: time and peak RSS.
bench-export: $(STAMP)
	$(PY) bench/export.py $(BENCH_EXPORT_ARGS)

# Longer fuzzing than `make test` does: each atheris harness in tests/fuzz for FUZZ_SECONDS
# (new inputs and any crash-* file go to .fuzz/), then the hypothesis form fuzzing with
# FUZZ_EXAMPLES bodies per form.
FUZZ_SECONDS ?= 300
FUZZ_EXAMPLES ?= 2000
fuzz: $(STAMP) translations
	@mkdir -p .fuzz
	for harness in age uploads; do \
		mkdir -p .fuzz/$$harness && \
		$(PY) tests/fuzz/fuzz_$$harness.py -max_total_time=$(FUZZ_SECONDS) -timeout=30 \
			-rss_limit_mb=3072 -artifact_prefix=.fuzz/ .fuzz/$$harness \
			tests/fuzz/corpus/$$harness || exit 1; \
	done
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -p no:cacheprovider \
		tests/test_adversarial_fuzz_forms.py

# Style and types: ruff's checks and formatting over the whole tree; mypy, strict on the
# packages every other one builds on (crypto, store), default on the two faces.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy --strict crypto store
	$(PY) -m mypy intake review

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis .fuzz

# Message catalogues: compiled from the .po files whenever they change.
CATALOGS := $(patsubst %.po,%.mo,$(wildcard intake/translations/*/LC_MESSAGES/messages.po \
	review/translations/*/LC_MESSAGES/messages.po))
%.mo: %.po $(STAMP)
	$(VENV)/bin/pybabel compile --use-fuzzy -i $< -o $@ >/dev/null

translations: $(CATALOGS)

# After changing user-facing text: refresh the template and merge it into each language.
messages: $(STAMP)
	for face in intake review; do \
		$(VENV)/bin/pybabel extract -F babel.cfg -k _l -k N_ --no-location --sort-output \
			--project Testimony -o $$face/translations/messages.pot $$face >/dev/null && \
		$(VENV)/bin/pybabel update --no-fuzzy-matching -i $$face/translations/messages.pot \
			-d $$face/translations >/dev/null || exit 1; \
	done
