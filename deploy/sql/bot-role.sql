-- The bot's own database account: CREATEROLE, not superuser (docs/security.md).
-- Run as a superuser on the shared cluster (safe to run again), e.g.:
--   kubectl exec -i -n databases postgresql-shared-1 -- psql -U postgres < deploy/sql/bot-role.sql
-- then set its password with psql's \password (SCRAM computed client-side, so the plaintext
-- never reaches the server or its logs):
--   kubectl exec -it -n databases postgresql-shared-1 -- psql -U postgres -c '\password pgdb_bot'
-- and store postgresql://pgdb_bot:<password>@postgresql-shared-rw.databases.svc:5432/postgres
-- as PGDB_PG_DSN in Infisical at /pgdb-bot.

\set ON_ERROR_STOP on

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgdb_bot') THEN
    CREATE ROLE pgdb_bot LOGIN CREATEROLE NOSUPERUSER NOCREATEDB NOREPLICATION NOBYPASSRLS;
  END IF;
END
$$;
ALTER ROLE pgdb_bot LOGIN CREATEROLE NOSUPERUSER NOCREATEDB NOREPLICATION NOBYPASSRLS;

-- `/pgdb usage` and the usage findings (connections near the limit, database sizes) read every
-- session and every database's size in one catalog query: that needs pg_read_all_stats.
GRANT pg_read_all_stats TO pgdb_bot;

-- Its own tables (audit log, workflow records, alert state) live in schema pgdb_bot of the
-- `postgres` database; the bot creates and migrates them itself.
CREATE SCHEMA IF NOT EXISTS pgdb_bot AUTHORIZATION pgdb_bot;
ALTER SCHEMA pgdb_bot OWNER TO pgdb_bot;  -- in case an earlier superuser run created it

-- PostgreSQL 16+: a CREATEROLE role may alter only the roles it has ADMIN OPTION on. Grant it
-- on every app role that existed before the bot (login roles that are not system roles), so
-- `create` can adopt them and `repair` can re-enable them. Roles the bot creates get it
-- automatically. On PostgreSQL 15 this grant is harmless.
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT rolname FROM pg_roles
    WHERE rolcanlogin AND NOT rolsuper
      AND rolname NOT IN ('postgres', 'streaming_replica', 'pgdb_bot', 'app')
      AND rolname !~ '^(pg_|cnpg_)'
  LOOP
    EXECUTE format('GRANT %I TO pgdb_bot WITH ADMIN OPTION', r.rolname);
  END LOOP;
END
$$;
