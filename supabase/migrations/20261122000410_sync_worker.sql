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

-- How long a success keeps an entity fresh; null = until forced (the catalogue).
create or replace function public.sync_ttl(job_kind text)
returns interval
language sql
immutable
set search_path = ''
as $$
  select case job_kind
    when 'artist_details' then interval '7 days'
    when 'artist_shows' then interval '24 hours'
    when 'artist_popularity' then interval '1 day'
    when 'user_artists' then interval '1 hour'
    else null
  end
$$;

create or replace function public.sync_is_fresh(job_kind text, entity_id uuid)
returns boolean
language sql
stable
set search_path = ''
as $$
  select coalesce((
    select s.last_success_at is not null and (s.next_due_at is null or s.next_due_at > now())
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
        last_error = null,
        last_error_at = null
$$;

create or replace function public.sync_record_failure(job_kind text, entity_id uuid, error text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  -- Kinds without freshness (create_setlist, tests) have no sync_state row.
  if job_kind not in ('artist_details', 'artist_shows', 'artist_catalogue', 'artist_popularity',
                      'user_artists') or entity_id is null then
    return;
  end if;
  insert into public.sync_state as s (job_kind, entity_id, last_attempt_at, last_error_at,
                                      last_error)
  values (sync_record_failure.job_kind, sync_record_failure.entity_id, now(), now(),
          left(error, 2000))
  on conflict on constraint sync_state_pkey do update
    set last_attempt_at = excluded.last_attempt_at,
        last_error_at = excluded.last_error_at,
        last_error = excluded.last_error;
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
  delete from public.sync_pending_jobs p where p.msg_id = p_msg_id;
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
    delete from public.sync_pending_jobs p where p.msg_id = p_msg_id;
    insert into public.sync_dead_letters (msg_id, job_kind, message, attempts, last_error)
    values (p_msg_id, v_kind, q.message, greatest(q.read_ct, 1),
            left(coalesce(p_error, 'unknown error'), 2000));
    return 'dead';
  end if;
  perform 1 from pgmq.set_vt('sync', p_msg_id, greatest(p_retry_in_seconds, 0));
  return 'retry';
end;
$$;

revoke execute on function public.sync_ttl(text) from public, anon, authenticated;
revoke execute on function public.sync_is_fresh(text, uuid) from public, anon, authenticated;
revoke execute on function public.sync_record_success(text, uuid) from public, anon, authenticated;
revoke execute on function public.sync_record_failure(text, uuid, text) from public, anon, authenticated;
revoke execute on function public.sync_read_jobs(integer, integer) from public, anon, authenticated;
revoke execute on function public.sync_extend_job(bigint, integer) from public, anon, authenticated;
revoke execute on function public.sync_complete_job(bigint, integer, integer) from public, anon, authenticated;
revoke execute on function public.sync_fail_job(bigint, integer, text, integer, boolean, integer)
  from public, anon, authenticated;
grant execute on function public.sync_ttl(text) to service_role;
grant execute on function public.sync_is_fresh(text, uuid) to service_role;
grant execute on function public.sync_record_success(text, uuid) to service_role;
grant execute on function public.sync_record_failure(text, uuid, text) to service_role;
grant execute on function public.sync_read_jobs(integer, integer) to service_role;
grant execute on function public.sync_extend_job(bigint, integer) to service_role;
grant execute on function public.sync_complete_job(bigint, integer, integer) to service_role;
grant execute on function public.sync_fail_job(bigint, integer, text, integer, boolean, integer)
  to service_role;
