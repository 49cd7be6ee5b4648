# Tasks in one place: `make test`, `make lint`, `make format`, `make bench`, `make docs`.
PYTHON ?= python3

.PHONY: test lint format bench docs ci

test:
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check .

format:
	$(PYTHON) -m ruff check --fix --select I .

bench:
	$(PYTHON) -m bench.state_store --states 200
	$(PYTHON) -m bench.graph_ops --supervoxels 1000000 --max-neuron 20000 --edits 10

docs:  # the OpenAPI document, generated from server/endpoints.py (in a throwaway home)
	AXONLINK_HOME=$$(mktemp -d) $(PYTHON) -c "from server import create_app; import json; app = create_app(); \
	print(json.dumps(app.test_client().get('/api/v1/openapi.json').get_json(), indent=1))" > docs/openapi.json

ci:
	bash .ci/run
