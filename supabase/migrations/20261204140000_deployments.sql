-- What `./dev deploy` did to this project, one row per run: the revision, the
-- migration version it left, and when its smoke test passed. Production's
-- deploy reads staging's rows and refuses a revision that has no passed smoke
-- test there. Kept in the database being deployed (not a file on one
-- machine): whoever deploys next, from any machine or CI, sees the same
-- record, and it lives beside the migration history it describes.
-- Schema `ops` is not exposed through the API; only the project's own role
-- (the deploy connects as it) reads or writes it.
create schema if not exists ops;
revoke all on schema ops from public, anon, authenticated, service_role;

create table ops.deployments (
  id bigint generated always as identity primary key,
  environment text not null check (environment in ('staging', 'production')),
  revision text not null check (revision ~ '^[0-9a-f]{40}$'),
  migration_version text,
  started_at timestamptz not null default now(),
  deployed_at timestamptz,
  smoke_passed_at timestamptz,
  check (smoke_passed_at is null or deployed_at is not null)
);

create index deployments_revision_passed
  on ops.deployments (environment, revision) where smoke_passed_at is not null;

revoke all on ops.deployments from public, anon, authenticated, service_role;
