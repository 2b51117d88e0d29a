-- Runs once, when the postgres volume is first initialised (docker-entrypoint-initdb.d).
-- POSTGRES_DB creates the MLflow database; the Prefect server gets its own database on the same server.
CREATE DATABASE prefect OWNER s2f;
