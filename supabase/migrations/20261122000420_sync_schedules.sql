-- pg_cron schedules of the sync engine: stale artists and stale shows are
-- queued (the soonest shows first), the popularity refresh runs daily, and
-- old bookkeeping is cleaned up. Budgets are sized for Ticketmaster's 5,000
-- calls a day: at most 20 show refreshes every 10 minutes (2,880 a day) and
-- 10 artist refreshes every 15 minutes (960 a day) leave room for the
-- refreshes users trigger.
--
-- Running the queue itself is production-only: pg_cron calls the run_jobs
-- function over pg_net with the internal secret from Vault. That piece is
-- public.schedule_run_jobs_webhook(...), called by the deploy step; nothing
-- here needs pg_net (locally the worker runs as a loop).

-- Both schedulers queue only entities that are due (next_due_at null or
-- passed): stale, never tried, or failed and past their backoff
-- (sync_record_failure). A failing entity therefore waits its backoff
-- instead of taking a slot at every run because its show is near.

-- Artists whose details (artist_details, 7 days) or shows (artist_shows,
-- 24 hours; Ticketmaster artists only) are due, the soonest show first.
create or replace function public.enqueue_stale_artist_jobs(job_kind text, max_jobs integer)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  r record;
  queued integer := 0;
begin
  if job_kind not in ('artist_details', 'artist_shows') then
    raise exception 'no stale-artist schedule for %', job_kind using errcode = '22023';
  end if;
  for r in
    select a.id
      from public.artists a
      left join public.sync_state st
        on st.job_kind = enqueue_stale_artist_jobs.job_kind and st.entity_id = a.id
      left join lateral (
        select min(s.local_date) as next_show
          from public.shows s
         where s.artist_id = a.id and s.local_date >= current_date
           and s.status in ('scheduled', 'postponed', 'rescheduled')) ns on true
     where (enqueue_stale_artist_jobs.job_kind <> 'artist_shows'
            or exists (select 1 from public.artist_external_ids x
                        where x.artist_id = a.id and x.source = 'ticketmaster'))
       and (st.next_due_at is null or st.next_due_at <= now())
       and not exists (select 1 from public.sync_pending_jobs p
                        where p.job_kind = enqueue_stale_artist_jobs.job_kind
                          and p.entity_id = a.id)
     order by ns.next_show nulls last, st.next_due_at nulls first, a.id
     limit greatest(max_jobs, 0)
  loop
    if public.enqueue_sync_job(enqueue_stale_artist_jobs.job_kind, r.id) is not null then
      queued := queued + 1;
    end if;
  end loop;
  return queued;
end;
$$;

-- The daily popularity refresh: one job for every stale artist (entity = nil uuid).
create or replace function public.enqueue_popularity_refresh()
returns bigint
language sql
set search_path = ''
as $$
  select public.enqueue_sync_job('artist_popularity', '00000000-0000-0000-0000-000000000000')
$$;

-- Old bookkeeping: API call log, job runs, archived messages, dead letters
-- and pg_cron's own run history (never cleaned by pg_cron itself).
create or replace function public.sync_cleanup(
  api_calls_older_than interval default interval '30 days',
  job_runs_older_than interval default interval '14 days',
  archive_older_than interval default interval '30 days',
  dead_letters_older_than interval default interval '90 days',
  cron_runs_older_than interval default interval '7 days'
) returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  n_calls bigint;
  n_runs bigint;
  n_archive bigint;
  n_dead bigint;
  n_cron bigint;
begin
  delete from public.api_calls where called_at < now() - api_calls_older_than;
  get diagnostics n_calls = row_count;
  delete from public.sync_job_runs where finished_at < now() - job_runs_older_than;
  get diagnostics n_runs = row_count;
  delete from pgmq.a_sync where archived_at < now() - archive_older_than;
  get diagnostics n_archive = row_count;
  delete from public.sync_dead_letters where failed_at < now() - dead_letters_older_than;
  get diagnostics n_dead = row_count;
  delete from cron.job_run_details where end_time < now() - cron_runs_older_than;
  get diagnostics n_cron = row_count;
  return jsonb_build_object('api_calls', n_calls, 'job_runs', n_runs, 'archived_messages',
                            n_archive, 'dead_letters', n_dead, 'cron_runs', n_cron);
end;
$$;

-- Production only (deploy step): pg_cron posts to the run_jobs function every
-- minute through pg_net, with the internal secret read from Vault at each
-- call (never stored in cron.job). Requires pg_net and Vault; re-running it
-- replaces the schedule. Returns the cron job id.
--
--   select vault.create_secret('<INTERNAL_SECRET>', 'internal_secret');
--   select public.schedule_run_jobs_webhook('https://<region>-<project>.cloudfunctions.net/run_jobs');
create or replace function public.schedule_run_jobs_webhook(
  function_url text,
  secret_name text default 'internal_secret',
  schedule text default '* * * * *',
  budget_seconds integer default 50
) returns bigint
language plpgsql
set search_path = ''
as $$
begin
  if to_regnamespace('net') is null then
    raise exception 'pg_net is not installed: enable it (create extension pg_net) first'
      using errcode = '0A000';
  end if;
  if to_regnamespace('vault') is null then
    raise exception 'Vault is not available: the internal secret must live in vault.secrets'
      using errcode = '0A000';
  end if;
  if function_url is null or function_url !~ '^https?://[^[:space:]'']+$' then
    raise exception 'function_url must be an http(s) URL' using errcode = '22023';
  end if;
  if budget_seconds is null or budget_seconds not between 1 and 540 then
    raise exception 'budget_seconds must be between 1 and 540' using errcode = '22023';
  end if;
  return cron.schedule(
    'sync-run-jobs',
    schedule,
    format(
      $cmd$select net.http_post(
  url := %L,
  headers := jsonb_build_object(
    'Content-Type', 'application/json',
    'X-Internal-Secret', (select decrypted_secret from vault.decrypted_secrets where name = %L)),
  body := jsonb_build_object('budget_seconds', %s),
  timeout_milliseconds := %s)$cmd$,
      function_url, secret_name, budget_seconds, (budget_seconds + 10) * 1000));
end;
$$;

create or replace function public.unschedule_run_jobs_webhook()
returns boolean
language sql
set search_path = ''
as $$
  select cron.unschedule(jobid) from cron.job where jobname = 'sync-run-jobs'
$$;

-- The schedulers queue jobs (pgmq) and the cleanup deletes from pgmq and cron
-- tables; pg_cron runs them as the role that scheduled them.
-- Not granted to service_role: it has no rights on the pgmq (or cron) schema,
-- so it could not run these anyway. The backend's own role runs them: the
-- DATABASE_URL role (postgres), which owns these functions.
revoke execute on function public.enqueue_stale_artist_jobs(text, integer)
  from public, anon, authenticated, service_role;
revoke execute on function public.enqueue_popularity_refresh()
  from public, anon, authenticated, service_role;
revoke execute on function public.sync_cleanup(interval, interval, interval, interval, interval)
  from public, anon, authenticated, service_role;
revoke execute on function public.schedule_run_jobs_webhook(text, text, text, integer)
  from public, anon, authenticated, service_role;
revoke execute on function public.unschedule_run_jobs_webhook()
  from public, anon, authenticated, service_role;

select cron.schedule('sync-enqueue-stale-shows', '*/10 * * * *',
                     $$select public.enqueue_stale_artist_jobs('artist_shows', 20)$$);
select cron.schedule('sync-enqueue-stale-artists', '*/15 * * * *',
                     $$select public.enqueue_stale_artist_jobs('artist_details', 10)$$);
select cron.schedule('sync-popularity-daily', '30 3 * * *',
                     'select public.enqueue_popularity_refresh()');
select cron.schedule('sync-cleanup-daily', '15 4 * * *', 'select public.sync_cleanup()');
