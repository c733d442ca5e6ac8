-- Local stand-in for the pieces of the Supabase platform that TheSet's
-- migrations rely on, with Supabase's own semantics (see shared/SUPABASE.md).
-- Never part of supabase/migrations/: on Supabase all of this already exists.
-- Safe to run again on a database that already has it. Runs as the cluster's
-- superuser, `supabase_admin`, as the platform does; the migrations then run as
-- `postgres`, which is NOT a superuser (devstack/migrate.py).

-- Roles are cluster-wide: create them once per cluster.
-- `postgres` has exactly the attributes hosted Supabase gives it: supabase/postgres
-- migrations/db/migrations/10000000000000_demote-postgres.sql ends with
-- `ALTER ROLE postgres NOSUPERUSER CREATEDB CREATEROLE LOGIN REPLICATION BYPASSRLS`.
do $$
begin
  if not exists (select from pg_roles where rolname = 'postgres') then
    create role postgres;
  end if;
  alter role postgres nosuperuser createdb createrole login replication bypassrls;
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin inherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin inherit;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin inherit bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
  -- The owners of the platform's own schemas, as on Supabase.
  if not exists (select from pg_roles where rolname = 'supabase_auth_admin') then
    create role supabase_auth_admin nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'supabase_realtime_admin') then
    create role supabase_realtime_admin nologin noinherit;
  end if;
end
$$;

grant anon, authenticated, service_role to authenticator;
grant anon, authenticated, service_role to postgres;
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';

-- The project's database belongs to `postgres` (so `public`, owned by
-- pg_database_owner, is its to create in), never to the superuser.
do $$
begin
  execute format('alter database %I owner to postgres', current_database());
end
$$;

create schema if not exists extensions;
grant usage on schema extensions to anon, authenticated, service_role;

-- Supabase historically granted every new object in public to the API roles.
-- Reproducing that default here keeps the migrations honest: they must revoke
-- and grant explicitly, and the RLS matrix tests see what production sees.
grant usage on schema public to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on sequences to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on functions to anon, authenticated, service_role;

-- auth ---------------------------------------------------------------------
create schema if not exists auth authorization supabase_auth_admin;
grant usage on schema auth to anon, authenticated, service_role, postgres;

create table if not exists auth.users (
  instance_id uuid,
  id uuid primary key,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  phone text unique default null,
  last_sign_in_at timestamptz,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_super_admin boolean,
  is_anonymous boolean not null default false,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  deleted_at timestamptz
);

create or replace function auth.uid() returns uuid
language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role() returns text
language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

create or replace function auth.email() returns text
language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.email', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
  )::text
$$;

create or replace function auth.jwt() returns jsonb
language sql stable as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

grant execute on function auth.uid(), auth.role(), auth.email(), auth.jwt()
  to anon, authenticated, service_role;
alter table auth.users owner to supabase_auth_admin;
alter function auth.uid() owner to supabase_auth_admin;
alter function auth.role() owner to supabase_auth_admin;
alter function auth.email() owner to supabase_auth_admin;
alter function auth.jwt() owner to supabase_auth_admin;
-- What hosted `postgres` has on auth (demote-postgres: GRANT ALL ON ALL TABLES /
-- ROUTINES IN SCHEMA auth TO postgres): it may reference auth.users and put
-- triggers on it, but owns nothing there and cannot create in the schema.
grant all on all tables in schema auth to postgres;
grant all on all routines in schema auth to postgres;

-- realtime -----------------------------------------------------------------
create schema if not exists realtime;
grant usage on schema realtime to anon, authenticated, service_role, postgres;

create table if not exists realtime.messages (
  topic text not null,
  extension text not null,
  payload jsonb,
  event text,
  private boolean default false,
  updated_at timestamp without time zone not null default now(),
  inserted_at timestamp without time zone not null default now(),
  id uuid not null default gen_random_uuid(),
  primary key (id, inserted_at)
) partition by range (inserted_at);

alter table realtime.messages enable row level security;
grant select, insert, update on realtime.messages to anon, authenticated, service_role;

-- The Realtime server creates daily partitions ahead and drops them after
-- 72 hours; locally, cover a few days around now.
do $$
declare
  day date;
begin
  for day in select generate_series(current_date - 3, current_date + 7, interval '1 day')::date loop
    execute format(
      'create table if not exists realtime.%I partition of realtime.messages
         for values from (%L) to (%L)',
      'messages_' || to_char(day, 'YYYY_MM_DD'), day, day + 1);
  end loop;
end
$$;

create or replace function realtime.topic() returns text
language sql stable as $$
  select nullif(current_setting('realtime.topic', true), '')::text
$$;

create or replace function realtime.send(
  payload jsonb, event text, topic text, private boolean default true
) returns void
language plpgsql as $$
declare
  generated_id uuid := gen_random_uuid();
  final_payload jsonb;
begin
  begin
    final_payload := case
      when payload ? 'id' then payload
      else jsonb_set(payload, '{id}', to_jsonb(generated_id))
    end;
    perform set_config('realtime.topic', topic, true);
    insert into realtime.messages (id, payload, event, topic, private, extension)
    values (generated_id, final_payload, event, topic, private, 'broadcast');
  exception when others then
    raise warning 'ErrorSendingBroadcastMessage: %', sqlerrm;
  end;
end;
$$;

create or replace function realtime.broadcast_changes(
  topic_name text, event_name text, operation text, table_name text,
  table_schema text, new record, old record, level text default 'ROW'
) returns void
language plpgsql as $$
declare
  row_data jsonb := jsonb_build_object(
    'old_record', case when old is null then null else to_jsonb(old) end,
    'record', case when new is null then null else to_jsonb(new) end,
    'operation', operation, 'table', table_name, 'schema', table_schema);
begin
  if level = 'STATEMENT' then
    raise exception 'function can only be triggered for each row, not for each statement';
  end if;
  if operation in ('INSERT', 'UPDATE', 'DELETE') then
    perform realtime.send(row_data, event_name, topic_name);
  else
    raise exception 'Unexpected operation type %', operation;
  end if;
end;
$$;

grant execute on function realtime.topic(), realtime.send(jsonb, text, text, boolean)
  to anon, authenticated, service_role, postgres;
alter table realtime.messages owner to supabase_realtime_admin;
-- Hosted `postgres` may create policies on realtime.messages without owning it:
-- supautils' `policy_grants` lists the table for `postgres` (supabase/postgres,
-- the supautils.policy_grants parameter). supautils is not here; membership of
-- the owner role is the nearest stand-in, and the only right `postgres` has
-- locally that it lacks on hosted Supabase.
grant supabase_realtime_admin to postgres;

-- migration history, as the Supabase CLI records it -----------------------
-- `supabase db push` creates these as the role it connects as: `postgres`.
create schema if not exists supabase_migrations authorization postgres;
create table if not exists supabase_migrations.schema_migrations (
  version text primary key,
  statements text[],
  name text
);
alter table supabase_migrations.schema_migrations owner to postgres;

-- Supabase puts the extensions schema on every API role's search path.
alter role postgres set search_path = "$user", public, extensions;
alter role anon set search_path = "$user", public, extensions;
alter role authenticated set search_path = "$user", public, extensions;
alter role service_role set search_path = "$user", public, extensions;

-- Extensions the platform installs as superuser ---------------------------
-- pg_cron: in pg_catalog, and only in the database its launcher watches; then
-- the grants Supabase's pg_cron after-create script gives `postgres`
-- (supabase/postgres ansible/files/postgresql_extension_custom_scripts/pg_cron):
-- the schema and its functions, every table but cron.job, which it may only read.
do $$
begin
  if current_setting('cron.database_name', true) = current_database() then
    create extension if not exists pg_cron with schema pg_catalog;
    grant usage on schema cron to postgres with grant option;
    grant all on all functions in schema cron to postgres with grant option;
    grant all privileges on all tables in schema cron to postgres with grant option;
    revoke all on table cron.job from postgres;
    grant select on table cron.job to postgres with grant option;
  end if;
end
$$;

-- pgmq (installed just before this file by devstack/migrate.py): Supabase's
-- pgmq after-create script hands every object of the extension to `postgres`
-- (supabase/postgres ansible/files/postgresql_extension_custom_scripts/pgmq).
do $$
declare
  object record;
begin
  if to_regnamespace('pgmq') is null then
    return;
  end if;
  alter schema pgmq owner to postgres;
  for object in
    select c.relname, c.relkind from pg_class c
     where c.relnamespace = 'pgmq'::regnamespace and c.relkind in ('r', 'p', 'v', 'S')
  loop
    execute format('alter %s pgmq.%I owner to postgres',
                   case object.relkind when 'S' then 'sequence' when 'v' then 'view'
                                       else 'table' end,
                   object.relname);
  end loop;
  for object in
    select p.oid::regprocedure as signature from pg_proc p
     where p.pronamespace = 'pgmq'::regnamespace
  loop
    execute format('alter routine %s owner to postgres', object.signature);
  end loop;
  for object in
    select t.oid::regtype as name from pg_type t
     where t.typnamespace = 'pgmq'::regnamespace and t.typtype = 'c'
       and not exists (select from pg_class c where c.oid = t.typrelid and c.relkind <> 'c')
  loop
    execute format('alter type %s owner to postgres', object.name);
  end loop;
end
$$;
