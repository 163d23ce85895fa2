"""Helpers for the scenario's tests: the database host, the S3 endpoint, and site.yml runs with
changed variables against the scenario's own inventory."""

import hashlib
import json
import os
import subprocess

import pytest
import testinfra

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "default")
DB_HOST = "chronos-db-%s" % SCENARIO
S3_HOST = "chronos-s3-%s" % SCENARIO
STANZA = "chronos-v2"
CONFIG = "/etc/pgbackrest/pgbackrest.conf"
PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.getcwd())
SECRET_VARIABLES = ("CHRONOS_LAB_CIPHER_PASS", "CHRONOS_LAB_S3_KEY", "CHRONOS_LAB_S3_KEY_SECRET")


@pytest.fixture(scope="module")
def db():
    return testinfra.get_host("docker://%s" % DB_HOST)


@pytest.fixture(scope="module")
def s3():
    return testinfra.get_host("docker://%s" % S3_HOST)


def psql(host, sql, database="postgres"):
    return host.check_output("runuser -u postgres -- psql -XAtq -d %s -c %s", database, sql)


def bucket_keys(s3_host, prefix):
    """Object keys in the lab bucket under prefix, read through moto's S3 API inside the endpoint."""
    script = (
        "import boto3, sys; s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:5000', region_name='ca-central-1',"
        " aws_access_key_id='x', aws_secret_access_key='x');"
        " pages = s3.get_paginator('list_objects_v2').paginate(Bucket='project-chronos-backups', Prefix=sys.argv[1]);"
        " print('\\n'.join(o['Key'] for p in pages for o in p.get('Contents', [])))"
    )
    return s3_host.check_output("/opt/moto/bin/python -c %s %s", script, prefix).split()


def sha256_of(host, path):
    return host.check_output("sha256sum %s", path).split()[0]


def secrets():
    return [os.environ[name] for name in SECRET_VARIABLES if os.environ.get(name)]


def run_playbook(playbook="site.yml", extra_vars=None, verbosity=0):
    """Run a playbook of the collection against this scenario's instances; returns CompletedProcess
    with stdout and stderr merged."""
    inventory = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory")
    command = ["ansible-playbook", "-i", inventory, os.path.join(PROJECT, playbook)]
    if extra_vars:
        command += ["-e", json.dumps(extra_vars)]
    if verbosity:
        command.append("-" + "v" * verbosity)
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                          cwd=PROJECT)


def module(name, **args):
    """Run one of the collection's modules on the database host as postgres, through Ansible, and return
    its result."""
    inventory = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory")
    host = testinfra.get_host("ansible://%s" % DB_HOST, ansible_inventory=inventory)
    arguments = " ".join("%s=%s" % (key, value) for key, value in args.items())
    return host.ansible("chronos.pgbackrest.%s" % name, arguments, become=True, become_user="postgres",
                        check=False)


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()
