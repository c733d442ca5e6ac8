-- Sync bookkeeping: the queue, per-entity freshness, dead letters and the
-- log of every outbound API call. Backend-only: no API role can read it.

select pgmq.create('sync');

create table public.sync_state (
  job_kind text not null check (
    job_kind in ('artist_details', 'artist_shows', 'artist_catalogue', 'artist_popularity',
                 'user_artists')),
  -- An artist id, or a user id for 'user_artists'.
  entity_id uuid not null,
  last_attempt_at timestamptz,
  last_success_at timestamptz,
  last_error_at timestamptz,
  last_error text,
  -- When the entity turns stale (its TTL from the last success).
  next_due_at timestamptz,
  primary key (job_kind, entity_id)
);

create index sync_state_due_idx on public.sync_state (job_kind, next_due_at);

create table public.sync_dead_letters (
  id bigint generated always as identity primary key,
  msg_id bigint not null,
  job_kind text not null,
  message jsonb not null,
  attempts integer not null check (attempts > 0),
  last_error text not null,
  failed_at timestamptz not null default now()
);

create index sync_dead_letters_failed_idx on public.sync_dead_letters (failed_at);

create table public.api_calls (
  id bigint generated always as identity primary key,
  called_at timestamptz not null default now(),
  provider text not null check (provider in ('ticketmaster', 'spotify', 'setlistfm')),
  -- The endpoint template ("/attractions/{id}.json"), never a URL with a key.
  endpoint text not null,
  method text not null,
  status_code integer,
  latency_ms integer not null check (latency_ms >= 0),
  attempt integer not null check (attempt > 0),
  outcome text not null,
  error text
);

create index api_calls_called_at_idx on public.api_calls (called_at);
create index api_calls_provider_idx on public.api_calls (provider, called_at);

alter table public.sync_state enable row level security;
alter table public.sync_dead_letters enable row level security;
alter table public.api_calls enable row level security;

revoke all on table public.sync_state, public.sync_dead_letters, public.api_calls
  from anon, authenticated;
grant select, insert, update, delete on table public.sync_state, public.sync_dead_letters,
  public.api_calls to service_role;
revoke all on sequence public.sync_dead_letters_id_seq, public.api_calls_id_seq
  from anon, authenticated;
