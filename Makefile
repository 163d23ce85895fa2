# make lab    provision the embedded lab with site.yml and print its backups
# make lab-container   the same lab in production's layout: PostgreSQL as the main process of chronos-db
# make test   every test: unit, alert rules, sanity, lint, molecule, the built collection
# make bench  measure backup, restore and playbook speed in the lab (bench/README.md)
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
ROOT := $(CURDIR)
# Puts the virtualenv first on PATH and the lab's secrets in the environment.
WITH_ENV := eval "$$(scripts/lab-env.sh)"; export PATH="$(ROOT)/.venv/bin:$$PATH" ANSIBLE_CONFIG="$(ROOT)/ansible.cfg";
# Two lanes that run side by side (scripts/molecule.sh): the database-host scenarios, and the container scenarios,
# which all manage this machine as their Docker host.
MOLECULE_HOST_LANE := host host-trixie monitoring
MOLECULE_CONTAINER_LANE := container container18 container-trixie

.PHONY: bootstrap lab lab-container lab-down test unit rules sanity lint collection molecule bench
PROMTOOL := .build/prometheus/usr/bin/promtool

bootstrap:
	scripts/bootstrap.sh

lab: bootstrap
	scripts/lab.sh up
	$(WITH_ENV) ansible-playbook -i inventories/lab site.yml
	docker exec -u postgres chronos-db pgbackrest --stanza=chronos-v2 info

lab-container: bootstrap
	scripts/lab.sh up container
	$(WITH_ENV) ansible-playbook -i inventories/container-lab site.yml
	docker exec chronos-db pgbackrest --stanza=chronos-v2 info

lab-down:
	scripts/lab.sh down

test: bootstrap
	$(MAKE) unit rules sanity lint molecule collection

unit:
	.venv/bin/pytest -q tests/unit

rules:
	$(PROMTOOL) check rules templates/prometheus/pgbackrest-alerts.yml
	$(PROMTOOL) test rules tests/prometheus/pgbackrest-alerts.test.yml

sanity:
	scripts/sanity.sh

lint:
	$(WITH_ENV) ansible-lint --profile production

# The tarball as people install it: contents, install, ansible-doc, execution environment, antsibull lints.
collection:
	scripts/collection-check.sh

molecule:
	$(WITH_ENV) scripts/molecule.sh "$(MOLECULE_HOST_LANE)" "$(MOLECULE_CONTAINER_LANE)"

bench: bootstrap
	$(WITH_ENV) python bench/bench.py $(BENCH_ARGS)
