#!/usr/bin/env bash
# Roles and databases of the cluster stack, created once on an empty PostgreSQL data directory.
#
# The official postgres image runs /docker-entrypoint-initdb.d/*.sh on its first start only, as
# the superuser POSTGRES_USER; docker-compose.yml mounts this file there. The deploy tests run it
# natively against the local server (PGHOST/PGPORT from the environment).
#   MLflow: role MLFLOW_DB_USER owns MLFLOW_DB_NAME (runs) and MLFLOW_AUTH_DB_NAME (users).
#   Optuna: role OPTUNA_DB_USER owns OPTUNA_DB_NAME (studies; also read by optuna-dashboard).
# Passwords come from the environment and reach psql as variables (:'name' quotes them), so no
# secret is spliced into SQL text or shown on a command line inside SQL.
set -euo pipefail

: "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD (see .env.example)}"
: "${OPTUNA_DB_PASSWORD:?set OPTUNA_DB_PASSWORD (see .env.example)}"

psql -v ON_ERROR_STOP=1 --no-psqlrc \
  --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
  -v mlflow_user="${MLFLOW_DB_USER:-mlflow}" \
  -v mlflow_password="${MLFLOW_DB_PASSWORD}" \
  -v mlflow_db="${MLFLOW_DB_NAME:-mlflow}" \
  -v mlflow_auth_db="${MLFLOW_AUTH_DB_NAME:-mlflow_auth}" \
  -v optuna_user="${OPTUNA_DB_USER:-optuna}" \
  -v optuna_password="${OPTUNA_DB_PASSWORD}" \
  -v optuna_db="${OPTUNA_DB_NAME:-optuna}" <<'SQL'
CREATE ROLE :"mlflow_user" LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE :"mlflow_db" OWNER :"mlflow_user";
CREATE DATABASE :"mlflow_auth_db" OWNER :"mlflow_user";
CREATE ROLE :"optuna_user" LOGIN PASSWORD :'optuna_password';
CREATE DATABASE :"optuna_db" OWNER :"optuna_user";
-- Each role reaches its own databases only.
REVOKE ALL ON DATABASE :"mlflow_db" FROM PUBLIC;
REVOKE ALL ON DATABASE :"mlflow_auth_db" FROM PUBLIC;
REVOKE ALL ON DATABASE :"optuna_db" FROM PUBLIC;
SQL
echo "postgres-init: created databases ${MLFLOW_DB_NAME:-mlflow}, ${MLFLOW_AUTH_DB_NAME:-mlflow_auth}, ${OPTUNA_DB_NAME:-optuna}"
