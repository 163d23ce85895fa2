# make lab    provision the embedded lab with site.yml and print its backups
# make lab-container   the same lab in production's layout: PostgreSQL as the main process of chronos-db
# make lab-monitoring  the lab plus chronos-monitoring: Prometheus, Alertmanager, a webhook receiver
# make test   every test: unit, alert rules, sanity, lint, molecule, the built collection
# make bench  measure backup, restore and playbook speed on bookworm and trixie, each in a lab of its own (bench/README.md)
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
ROOT := $(CURDIR)
# Puts the virtualenv first on PATH and the lab's secrets in the environment.
WITH_ENV := eval "$$(scripts/lab-env.sh)"; export PATH="$(ROOT)/.venv/bin:$$PATH" ANSIBLE_CONFIG="$(ROOT)/ansible.cfg";
# Two lanes that run side by side (scripts/molecule.sh), of about the same length: the database-host scenarios, and
# the container scenarios, which all manage this machine as their Docker host and so run one after another, then the
# monitoring scenario.
MOLECULE_HOST_LANE := host host-trixie
MOLECULE_CONTAINER_LANE := container container18 container-trixie monitoring

.PHONY: bootstrap lab lab-container lab-monitoring monitoring-up lab-down test unit rules static sanity lint collection molecule bench
PROMTOOL := .build/prometheus/usr/bin/promtool
# The monitoring lab beside `make lab`: which lab, and what it publishes on this machine's loopback.
LAB_INVENTORY ?= inventories/lab
LAB_NETWORK ?= chronos-lab
LAB_DB ?= chronos-db
MONITORING_CONTAINER ?= chronos-monitoring
MONITORING_PUBLISH ?= -p 127.0.0.1:9090:9090 -p 127.0.0.1:9093:9093 -p 127.0.0.1:9095:9095
# Every `for:` of the rules becomes this in the lab, so that alerts fire within a minute (empty: production's).
MONITORING_ALERT_FOR ?= 30s

bootstrap:
	scripts/bootstrap.sh

# What a lab needs, and only that: its images, not the seven the tests build.
LAB_BOOTSTRAP := packages venv tls collection
lab:
	scripts/bootstrap.sh $(LAB_BOOTSTRAP) lab-images
	scripts/lab.sh up
	$(WITH_ENV) ansible-playbook -i inventories/lab site.yml
	docker exec -u postgres chronos-db pgbackrest --stanza=chronos-v2 info

lab-container:
	scripts/bootstrap.sh $(LAB_BOOTSTRAP) container-lab-images
	scripts/lab.sh up container
	$(WITH_ENV) ansible-playbook -i inventories/container-lab site.yml
	docker exec chronos-db pgbackrest --stanza=chronos-v2 info

lab-monitoring: lab monitoring-up

# node_exporter and cron on the lab's database host, then a fresh chronos-monitoring scraping it with the rules of
# templates/prometheus.
monitoring-up:
	scripts/bootstrap.sh monitoring
	$(WITH_ENV) ansible-playbook -i $(LAB_INVENTORY) molecule/monitoring/prepare.yml -e monitoring_cron=true
	docker rm -f $(MONITORING_CONTAINER) >/dev/null 2>&1 || true
	docker run -d --name $(MONITORING_CONTAINER) --hostname $(MONITORING_CONTAINER) --network $(LAB_NETWORK) \
	  $(MONITORING_PUBLISH) -e SCRAPE_TARGETS=$(LAB_DB):9100 -e ALERT_FOR=$(MONITORING_ALERT_FOR) \
	  -v $(ROOT)/templates/prometheus:/etc/chronos-monitoring/rules:ro chronos-pgbackrest/monitoring:bookworm >/dev/null
	@echo "Prometheus: http://127.0.0.1:9090  Alertmanager: http://127.0.0.1:9093  delivered: http://127.0.0.1:9095/alerts"

lab-down:
	docker rm -f $(MONITORING_CONTAINER) >/dev/null 2>&1 || true
	scripts/lab.sh down

# The molecule lanes wait on PostgreSQL, pgBackRest and the lab's S3 endpoint more than they compute: the static checks
# (sanity on the checkout, lint, the built collection) run beside them instead of before, once the fast tests passed.
test: bootstrap
	$(MAKE) unit rules
	$(MAKE) -j2 --output-sync=line molecule static

static:
	$(MAKE) sanity lint collection

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
