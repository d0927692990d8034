# The two commands: `make run` starts the whole product, `make test` runs every check.
.PHONY: run test lint fmt bench migrate seed

run:
	bash scripts/bootstrap.sh
	.venv/bin/python manage.py migrate --noinput
	.venv/bin/python manage.py seed_demo
	.venv/bin/python -m staging.devstack

test:
	bash scripts/test.sh

lint:
	bash scripts/bootstrap.sh dev
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy .

fmt:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

migrate:
	.venv/bin/python manage.py migrate --noinput

seed:
	.venv/bin/python manage.py seed_demo
