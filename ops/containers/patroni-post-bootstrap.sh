#!/bin/sh
# Patroni's post_bootstrap hook (ops/containers/patroni.yml): run once, on the member that
# initialised the cluster, with a connection string to it as $1. The schema is the migrate
# service's job; the database it migrates is made here.
set -eu
psql "$1" -v ON_ERROR_STOP=1 -c "CREATE DATABASE catalog"
