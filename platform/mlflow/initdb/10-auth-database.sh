#!/bin/sh
# Runs once, when the postgres container initialises an empty data volume.
# The basic-auth app keeps users and permissions in a database of its own: it versions its
# schema separately from the tracking store, and keeping the two apart lets each be
# migrated (and restored) without touching the other.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -c "CREATE DATABASE mlflow_auth OWNER \"$POSTGRES_USER\";"
