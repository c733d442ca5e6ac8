-- The worker's side of the queue: freshness (TTL) bookkeeping, reading jobs,
-- extending a running job's visibility, and finishing a job (done, retry
-- later, or dead letter) in the same transaction as the job's own writes.

-- One row per finished attempt: what the monitoring counts per hour.
create table public.sync_job_runs (
  id bigint generated always as identity primary key,
  msg_id bigint,
  job_kind text not null,
  entity_id uuid,
  attempt integer not null check (attempt > 0),
  outcome text not null check (outcome in ('done', 'retry', 'dead')),
  duration_ms integer check (duration_ms >= 0),
  error text,
  finished_at timestamptz not null default now()
);

create index sync_job_runs_finished_idx on public.sync_job_runs (finished_at);
create index sync_job_runs_kind_idx on public.sync_job_runs (job_kind, finished_at);

alter table public.sync_job_runs enable row level security;
revoke all on table public.sync_job_runs from anon, authenticated;
grant select, insert, update, delete on table public.sync_job_runs to service_role;
revoke all on sequence public.sync_job_runs_id_seq from anon, authenticated;

-- ---------------------------------------------------------------------------------------------
-- Freshness
-- ---------------------------------------------------------------------------------------------

-- The job kinds that keep per-entity freshness in sync_state, with how long
-- a success keeps an entity fresh (null = until forced: the catalogue). The
-- one list: sync_state's job_kind references it, sync_ttl and
-- sync_record_failure read it, and shared.sync.freshness.JobKind is tested
-- against it. Kinds without freshness (create_setlist) are not listed.
create table public.sync_job_kinds (
  kind text primary key,
  ttl interval check (ttl > interval '0')
);

insert into public.sync_job_kinds (kind, ttl) values
  ('artist_details', interval '7 days'),
  ('artist_shows', interval '24 hours'),
  ('artist_catalogue', null),
  ('artist_popularity', interval '1 day'),
  ('user_artists', interval '1 hour');

alter table public.sync_job_kinds enable row level security;
revoke all on table public.sync_job_kinds from anon, authenticated;
grant select, insert, update, delete on table public.sync_job_kinds to service_role;

-- The foundation's literal list of kinds gives way to the reference table.
alter table public.sync_state
  drop constraint sync_state_job_kind_check,
  add constraint sync_state_job_kind_fkey
    foreign key (job_kind) references public.sync_job_kinds (kind);

-- Failed attempts since the last success: the retry backoff grows with it.
alter table public.sync_state
  add column consecutive_failures integer not null default 0
    check (consecutive_failures >= 0);

create or replace function public.sync_ttl(job_kind text)
returns interval
language sql
stable
set search_path = ''
as $$
  select k.ttl from public.sync_job_kinds k where k.kind = sync_ttl.job_kind
$$;

-- How long an entity whose sync failed n times in a row waits before the
-- schedulers pick it again: 5 minutes doubling per failure, capped at the
-- kind's TTL (a day for kinds fresh until forced), so a permanently failing
-- entity is tried about as often as a healthy one and never hogs the slots.
create or replace function public.sync_failure_backoff(job_kind text, failures integer)
returns interval
language sql
stable
set search_path = ''
as $$
  select least(coalesce(public.sync_ttl(sync_failure_backoff.job_kind), interval '1 day'),
               interval '5 minutes' * power(2, least(greatest(failures, 1) - 1, 20)))
$$;

-- Fresh: a success whose TTL has not run out, and no failure since (a failed
-- refresh of a stale entity only moves when it is tried next).
create or replace function public.sync_is_fresh(job_kind text, entity_id uuid)
returns boolean
language sql
stable
set search_path = ''
as $$
  select coalesce((
    select s.last_success_at is not null and s.consecutive_failures = 0
           and (s.next_due_at is null or s.next_due_at > now())
      from public.sync_state s
     where s.job_kind = sync_is_fresh.job_kind and s.entity_id = sync_is_fresh.entity_id), false)
$$;

create or replace function public.sync_record_success(job_kind text, entity_id uuid)
returns void
language sql
set search_path = ''
as $$
  insert into public.sync_state as s (job_kind, entity_id, last_attempt_at, last_success_at,
                                      next_due_at)
  values (sync_record_success.job_kind, sync_record_success.entity_id, now(), now(),
          now() + public.sync_ttl(sync_record_success.job_kind))
  on conflict on constraint sync_state_pkey do update
    set last_attempt_at = excluded.last_attempt_at,
        last_success_at = excluded.last_success_at,
        next_due_at = excluded.next_due_at,
        consecutive_failures = 0,
        last_error = null,
        last_error_at = null
$$;

-- A failed sync of an entity: counted, and the entity is due again only
-- after sync_failure_backoff (the schedulers skip it until then). A failed
-- forced refresh of a still-fresh entity is recorded but leaves it fresh.
create or replace function public.sync_record_failure(job_kind text, entity_id uuid, error text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  -- Kinds without freshness (create_setlist, tests) have no sync_state row.
  if entity_id is null or not exists (select 1 from public.sync_job_kinds k
                                       where k.kind = sync_record_failure.job_kind) then
    return;
  end if;
  insert into public.sync_state as s (job_kind, entity_id, last_attempt_at, last_error_at,
                                      last_error, consecutive_failures, next_due_at)
  values (sync_record_failure.job_kind, sync_record_failure.entity_id, now(), now(),
          left(error, 2000), 1,
          now() + public.sync_failure_backoff(sync_record_failure.job_kind, 1))
  on conflict on constraint sync_state_pkey do update
    set last_attempt_at = excluded.last_attempt_at,
        last_error_at = excluded.last_error_at,
        last_error = excluded.last_error,
        consecutive_failures = case
          when s.last_success_at is not null and s.consecutive_failures = 0
               and (s.next_due_at is null or s.next_due_at > now())
            then 0
          else s.consecutive_failures + 1 end,
        next_due_at = case
          when s.last_success_at is not null and s.consecutive_failures = 0
               and (s.next_due_at is null or s.next_due_at > now())
            then s.next_due_at
          else now() + public.sync_failure_backoff(sync_record_failure.job_kind,
                                                   s.consecutive_failures + 1) end;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Worker
-- ---------------------------------------------------------------------------------------------

-- Read up to qty jobs, hidden for vt_seconds; options merge the message's
-- with those the pending row absorbed since (a later force).
create or replace function public.sync_read_jobs(vt_seconds integer, qty integer)
returns table (msg_id bigint, read_ct integer, enqueued_at timestamptz, message jsonb,
               options jsonb)
language sql
set search_path = ''
as $$
  select r.msg_id, r.read_ct, r.enqueued_at, r.message,
         coalesce(r.message -> 'options', '{}'::jsonb) || coalesce(p.options, '{}'::jsonb)
    from pgmq.read('sync', vt_seconds, qty) as r
    left join public.sync_pending_jobs p on p.msg_id = r.msg_id
$$;

-- Heartbeat: keep a running job hidden for another vt_seconds.
create or replace function public.sync_extend_job(p_msg_id bigint, vt_seconds integer)
returns boolean
language plpgsql
set search_path = ''
as $$
begin
  perform 1 from pgmq.set_vt('sync', p_msg_id, vt_seconds);
  return found;
end;
$$;

-- Finish a job successfully. Called inside the job's own transaction, so its
-- writes and the message's deletion commit together. Returns 'done',
-- 'redelivered' (another worker read it meanwhile: its visibility timeout
-- ran out; the writes are idempotent, so it is finished all the same) or
-- 'gone' (someone already finished it).
create or replace function public.sync_complete_job(
  p_msg_id bigint,
  p_read_ct integer,
  p_duration_ms integer default null
) returns text
language plpgsql
set search_path = ''
as $$
declare
  q record;
begin
  select m.read_ct, m.message into q from pgmq.q_sync m where m.msg_id = p_msg_id for update;
  if not found then
    return 'gone';
  end if;
  perform pgmq.delete('sync', p_msg_id);
  -- Released, or sent again when it was asked for while running.
  perform public.sync_release_pending(p_msg_id);
  insert into public.sync_job_runs (msg_id, job_kind, entity_id, attempt, outcome, duration_ms)
  values (p_msg_id, coalesce(q.message ->> 'kind', '?'),
          case when (q.message ->> 'entity_id') ~* '^[0-9a-f-]{36}$'
               then (q.message ->> 'entity_id')::uuid end,
          greatest(p_read_ct, 1), 'done', greatest(p_duration_ms, 0));
  return case when q.read_ct > p_read_ct then 'redelivered' else 'done' end;
end;
$$;

-- A failed attempt: retry after p_retry_in_seconds, or, when p_dead, archive
-- the message and record a dead letter with the last error. Returns 'retry',
-- 'dead' or 'gone'.
create or replace function public.sync_fail_job(
  p_msg_id bigint,
  p_read_ct integer,
  p_error text,
  p_retry_in_seconds integer,
  p_dead boolean,
  p_duration_ms integer default null
) returns text
language plpgsql
set search_path = ''
as $$
declare
  q record;
  v_kind text;
  v_entity uuid;
begin
  select m.read_ct, m.message into q from pgmq.q_sync m where m.msg_id = p_msg_id for update;
  if not found then
    return 'gone';
  end if;
  v_kind := coalesce(q.message ->> 'kind', '?');
  v_entity := case when (q.message ->> 'entity_id') ~* '^[0-9a-f-]{36}$'
                   then (q.message ->> 'entity_id')::uuid end;
  perform public.sync_record_failure(v_kind, v_entity, coalesce(p_error, 'unknown error'));
  insert into public.sync_job_runs (msg_id, job_kind, entity_id, attempt, outcome, duration_ms,
                                    error)
  values (p_msg_id, v_kind, v_entity, greatest(p_read_ct, 1),
          case when p_dead then 'dead' else 'retry' end, greatest(p_duration_ms, 0),
          left(p_error, 2000));
  if p_dead then
    perform pgmq.archive('sync', p_msg_id);
    perform public.sync_release_pending(p_msg_id);
    insert into public.sync_dead_letters (msg_id, job_kind, message, attempts, last_error)
    values (p_msg_id, v_kind, q.message, greatest(q.read_ct, 1),
            left(coalesce(p_error, 'unknown error'), 2000));
    return 'dead';
  end if;
  perform 1 from pgmq.set_vt('sync', p_msg_id, greatest(p_retry_in_seconds, 0));
  -- The retried run comes after any request made during this one.
  update public.sync_pending_jobs p set rerun = false where p.msg_id = p_msg_id and p.rerun;
  return 'retry';
end;
$$;

revoke execute on function public.sync_ttl(text) from public, anon, authenticated;
revoke execute on function public.sync_failure_backoff(text, integer) from public, anon, authenticated;
revoke execute on function public.sync_is_fresh(text, uuid) from public, anon, authenticated;
revoke execute on function public.sync_record_success(text, uuid) from public, anon, authenticated;
revoke execute on function public.sync_record_failure(text, uuid, text) from public, anon, authenticated;
grant execute on function public.sync_ttl(text) to service_role;
grant execute on function public.sync_failure_backoff(text, integer) to service_role;
grant execute on function public.sync_is_fresh(text, uuid) to service_role;
grant execute on function public.sync_record_success(text, uuid) to service_role;
grant execute on function public.sync_record_failure(text, uuid, text) to service_role;

-- The worker's queue functions read and write pgmq.
-- Not granted to service_role: it has no rights on the pgmq (or cron) schema,
-- so it could not run these anyway. The backend's own role runs them: the
-- DATABASE_URL role (postgres), which owns these functions.
revoke execute on function public.sync_read_jobs(integer, integer)
  from public, anon, authenticated, service_role;
revoke execute on function public.sync_extend_job(bigint, integer)
  from public, anon, authenticated, service_role;
revoke execute on function public.sync_complete_job(bigint, integer, integer)
  from public, anon, authenticated, service_role;
revoke execute on function public.sync_fail_job(bigint, integer, text, integer, boolean, integer)
  from public, anon, authenticated, service_role;
