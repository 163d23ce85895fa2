"""Helpers every scenario's tests share: the database host and the S3 endpoint of the scenario, psql,
the bucket's keys, the collection's modules through Ansible, and playbook runs against the scenario's
own inventory. A scenario's tests/conftest.py imports everything from here."""

import json
import os
import shlex
import subprocess

import pytest
import testinfra

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "default")
DB_HOST = "chronos-db-%s" % SCENARIO
S3_HOST = "chronos-s3-%s" % SCENARIO
NETWORK = "chronos-molecule-%s" % SCENARIO
S3_ALIAS = "s3.chronos.lab"
STANZA = "chronos-v2"
CONFIG = "/etc/pgbackrest/pgbackrest.conf"
WRAPPER = "/usr/local/bin/pgbackrest-backup.sh"
PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.getcwd())
SECRET_VARIABLES = ("CHRONOS_LAB_CIPHER_PASS", "CHRONOS_LAB_S3_KEY", "CHRONOS_LAB_S3_KEY_SECRET")


@pytest.fixture(scope="module")
def db():
    return testinfra.get_host("docker://%s" % DB_HOST)


@pytest.fixture(scope="module")
def s3():
    return testinfra.get_host("docker://%s" % S3_HOST)


def inventory():
    return os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory")


def psql(host, sql, database="postgres"):
    return host.check_output("runuser -u postgres -- psql -XAtq -d %s -c %s", database, sql)


def lsn(text):
    """'0/3000088' -> an integer that orders like the LSN."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


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


def run_playbook(playbook="site.yml", extra_vars=None, verbosity=0, check=False):
    """Run a playbook (a path from the repository root) against this scenario's instances; returns a
    CompletedProcess with stdout and stderr merged."""
    command = ["ansible-playbook", "-i", inventory(), os.path.join(PROJECT, playbook)]
    if extra_vars:
        command += ["-e", json.dumps(extra_vars)]
    if verbosity:
        command.append("-" + "v" * verbosity)
    if check:
        command.append("--check")
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                          cwd=PROJECT)


def module(name, on=DB_HOST, become_postgres=True, **args):
    """Run one of the collection's modules on a host of this scenario (the database host, as postgres, unless
    told otherwise) through the ansible command, and return its result, failed or not (result["failed"] is
    True when the module failed)."""
    arguments = " ".join("%s=%s" % (key, shlex.quote(str(value))) for key, value in args.items())
    environment = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    become = ["-b", "--become-user", "postgres"] if become_postgres else []
    completed = subprocess.run(
        ["ansible", on, "-i", inventory()] + become + ["-m", "chronos.pgbackrest.%s" % name, "-a", arguments],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False, env=environment, cwd=PROJECT)
    try:
        output = json.loads(completed.stdout)
        return output["plays"][0]["tasks"][0]["hosts"][on]
    except (ValueError, KeyError, IndexError):
        raise AssertionError("ansible gave no result for %s: %s %s" % (name, completed.stdout[-2000:],
                                                                       completed.stderr[-2000:]))


def info():
    result = module("pgbackrest_info", stanza=STANZA)
    assert not result.get("failed"), result.get("msg")
    return result


def labels():
    return [backup["label"] for backup in info()["backups"]]


def docker(*args):
    subprocess.run(["docker"] + list(args), check=True, stdout=subprocess.DEVNULL)
