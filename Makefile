# The two commands of the README, and a few more. Each target sets up .venv first (quick when already done).
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1

.PHONY: setup demo serve test bench bench-preprocess bench-training bench-scale bench-projection bench-orchestration orchestrate orchestrate-down mlflow-ui lock clean

setup:
	@bash scripts/setup.sh

demo: setup          ## set up, then run the whole pipeline on the offline demo corpus
	dvc repro
	@echo; s2f summary

serve: setup         ## the voice → face web page on http://127.0.0.1:8000 (after make demo: the champions)
	s2f serve

test:                ## set up (with Debian's headless chromium for the web page's test), then run the test suite
	@S2F_SETUP_BROWSER=1 bash scripts/setup.sh
	python -m pytest -n 2 --dist loadfile  # 2 processes, a test file each: most end-to-end tests wait on subprocesses

bench: setup         ## benchmark: dvc repro from a clean clone, retrieval against chance, a no-op repro
	python bench/demo_pipeline.py

bench-training: setup   ## benchmark: encoder training samples/s and FLOP/s vs torch.mm (demo, paper); loader overhead
	python bench/training_throughput.py

bench-preprocess: setup  ## benchmark: preprocessing clips/s (1 and all cores) vs a public-re-implementation-style baseline
	python bench/preprocess_throughput.py

bench-scale: setup      ## benchmark: time and peak RSS of each stage at 1×, 4×, 16× the demo corpus (--quick: 1×, 4×)
	python bench/scale.py

bench-projection: setup  ## per-clip costs measured on real media, projected to AVSpeech and VoxCeleb2 on N workers, M GPUs
	python bench/projection.py $(ARGS)

bench-orchestration: setup  ## benchmark: pipeline via Prefect workers vs plain dvc repro; served latency vs forward
	python bench/orchestration.py

orchestrate: setup   ## the pipeline through Prefect: server on 127.0.0.1:4200, pools cpu/gpu, workers, pipeline/demo
	python -m s2f.orchestration.local up

orchestrate-down:    ## stop the workers and the Prefect server that `make orchestrate` started
	python -m s2f.orchestration.local down

mlflow-ui: setup     ## browse runs, curves, face grids and models at http://127.0.0.1:5000
	@echo "MLflow UI: http://127.0.0.1:5000/#/experiments?workflowType=machine_learning (the Model training views: runs, models, their metrics)"
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns.db --host 127.0.0.1 --port 5000

lock:                ## re-resolve requirements.in into requirements.lock in a scratch venv
	rm -rf /tmp/s2f-lock && python3.11 -m venv /tmp/s2f-lock && \
	/tmp/s2f-lock/bin/pip install -q -r requirements.in && \
	/tmp/s2f-lock/bin/pip freeze --exclude-editable > requirements.lock

clean:               ## remove pipeline outputs and the MLflow store (not .venv, not the DVC cache)
	rm -rf data/raw data/interim data/preprocessed data/features models mlruns.db mlartifacts
