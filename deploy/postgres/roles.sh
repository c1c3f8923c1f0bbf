#!/bin/sh
# PostgreSQL's first start (docker-entrypoint-initdb.d): the three roles of license-svc.
# license_svc_owner owns the database (and so the `public` schema) and is what `license-svc
# migrate` connects as; license_svc_service and license_svc_readonly get their rights from
# `migrate --grant-service … --grant-readonly …`. Passwords come from the environment.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v owner_pw="$DB_OWNER_PASSWORD" -v service_pw="$DB_SERVICE_PASSWORD" \
  -v readonly_pw="$DB_READONLY_PASSWORD" <<'SQL'
CREATE ROLE license_svc_owner LOGIN PASSWORD :'owner_pw';
CREATE ROLE license_svc_service LOGIN PASSWORD :'service_pw';
CREATE ROLE license_svc_readonly LOGIN PASSWORD :'readonly_pw';
ALTER DATABASE license_svc OWNER TO license_svc_owner;
ALTER SCHEMA public OWNER TO license_svc_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
