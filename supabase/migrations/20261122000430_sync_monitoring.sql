-- Monitoring of the sync engine in one call (the status command, the
-- sync_status function, dashboards): per job kind the queue depth, oldest
-- message age, jobs done and failed in the last hour and dead letters; per
-- provider the API calls, error rate and latency of the last hour.

create or replace function public.sync_monitoring()
returns jsonb
language sql
stable
set search_path = ''
as $$
  with queue as (
    select coalesce(q.message ->> 'kind', '?') as kind,
           count(*) as depth,
           count(*) filter (where q.vt <= now()) as visible,
           count(*) filter (where q.vt > now() and q.read_ct > 0) as in_flight,
           count(*) filter (where q.vt > now() and q.read_ct = 0) as delayed,
           extract(epoch from now() - min(q.enqueued_at)) as oldest_age_seconds,
           max(q.read_ct) as max_attempts
      from pgmq.q_sync q
     group by 1
  ),
  runs as (
    select r.job_kind as kind,
           count(*) filter (where r.outcome = 'done') as done,
           count(*) filter (where r.outcome in ('retry', 'dead')) as failed,
           round(avg(r.duration_ms) filter (where r.outcome = 'done')) as avg_duration_ms
      from public.sync_job_runs r
     where r.finished_at > now() - interval '1 hour'
     group by 1
  ),
  dead as (
    select d.job_kind as kind,
           count(*) as total,
           count(*) filter (where d.failed_at > now() - interval '1 hour') as last_hour
      from public.sync_dead_letters d
     group by 1
  ),
  kinds as (
    select kind from queue union select kind from runs union select kind from dead
  ),
  calls as (
    select c.provider,
           count(*) as calls,
           count(*) filter (where c.outcome not in ('ok', 'not_found')) as errors,
           round(avg(c.latency_ms)) as avg_latency_ms,
           percentile_cont(0.95) within group (order by c.latency_ms) as p95_latency_ms
      from public.api_calls c
     where c.called_at > now() - interval '1 hour'
     group by 1
  )
  select jsonb_build_object(
    'generated_at', now(),
    'queue', jsonb_build_object(
      'depth', coalesce((select sum(depth) from queue), 0),
      'oldest_age_seconds', (select max(oldest_age_seconds) from queue)),
    'jobs', coalesce((
      select jsonb_agg(jsonb_build_object(
               'kind', k.kind,
               'depth', coalesce(q.depth, 0),
               'visible', coalesce(q.visible, 0),
               'in_flight', coalesce(q.in_flight, 0),
               'delayed', coalesce(q.delayed, 0),
               'oldest_age_seconds', round(q.oldest_age_seconds::numeric, 1),
               'done_last_hour', coalesce(r.done, 0),
               'failed_last_hour', coalesce(r.failed, 0),
               'avg_duration_ms', r.avg_duration_ms,
               'dead_letters', coalesce(d.total, 0),
               'dead_letters_last_hour', coalesce(d.last_hour, 0))
             order by k.kind)
        from kinds k
        left join queue q on q.kind = k.kind
        left join runs r on r.kind = k.kind
        left join dead d on d.kind = k.kind), '[]'::jsonb),
    'providers', (
      select jsonb_agg(jsonb_build_object(
               'provider', p.provider,
               'calls_last_hour', coalesce(c.calls, 0),
               'errors_last_hour', coalesce(c.errors, 0),
               'error_rate', case when coalesce(c.calls, 0) = 0 then 0
                                  else round(c.errors::numeric / c.calls, 4) end,
               'avg_latency_ms', c.avg_latency_ms,
               'p95_latency_ms', round(c.p95_latency_ms::numeric))
             order by p.provider)
        from (values ('setlistfm'), ('spotify'), ('ticketmaster')) as p (provider)
        left join calls c on c.provider = p.provider))
$$;

-- It reads pgmq.q_sync.
-- Not granted to service_role: it has no rights on the pgmq (or cron) schema,
-- so it could not run these anyway. The backend's own role runs them: the
-- DATABASE_URL role (postgres), which owns these functions.
revoke execute on function public.sync_monitoring()
  from public, anon, authenticated, service_role;
