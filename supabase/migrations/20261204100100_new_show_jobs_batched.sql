-- New shows queue their create_setlist jobs once per statement, not once per
-- row: an ingest inserting 500 shows sends their 500 messages with one
-- pgmq.send_batch instead of 500 pgmq.send calls (per row, the queueing cost
-- nine tenths of a show ingest).

-- Queues job_kind for every entity, as public.enqueue_sync_job would one by
-- one. Entities without a pending job (the common case: new shows) get their
-- pending rows and messages in one statement each; an entity whose job is
-- already pending goes through public.enqueue_sync_job, the one place that
-- decides how a pending or running job absorbs a new request. Returns the
-- number of new messages.
create or replace function public.enqueue_sync_jobs(job_kind text, entity_ids uuid[])
returns integer
language plpgsql
set search_path = ''
as $$
declare
  fresh uuid[];
  sent bigint[];
  queued integer;
begin
  if job_kind is null then
    raise exception 'job kind is required' using errcode = '22023';
  end if;

  with added as (
    insert into public.sync_pending_jobs as p (job_kind, entity_id)
    select enqueue_sync_jobs.job_kind, e.entity_id
      from (select distinct e.entity_id from unnest(entity_ids) as e(entity_id)
             where e.entity_id is not null) as e
     order by e.entity_id
    on conflict on constraint sync_pending_jobs_pkey do nothing
    returning p.entity_id
  )
  select array_agg(added.entity_id) into fresh from added;

  if fresh is not null then
    select array_agg(s.id) into sent
      from pgmq.send_batch(
             'sync',
             array(select jsonb_build_object('kind', enqueue_sync_jobs.job_kind,
                                             'entity_id', f.entity_id, 'options', '{}'::jsonb)
                     from unnest(fresh) as f(entity_id))) as s(id);
    update public.sync_pending_jobs as p
       set msg_id = q.msg_id
      from pgmq.q_sync as q
     where q.msg_id = any (sent)
       and p.job_kind = enqueue_sync_jobs.job_kind
       and p.entity_id = (q.message ->> 'entity_id')::uuid;
  end if;

  select count(public.enqueue_sync_job(enqueue_sync_jobs.job_kind, e.entity_id)) into queued
    from (select e.entity_id from unnest(entity_ids) as e(entity_id) where e.entity_id is not null
          except
          select f.entity_id from unnest(fresh) as f(entity_id)) as e;

  return queued + coalesce(cardinality(fresh), 0);
end;
$$;

-- Like public.enqueue_sync_job: for the backend's own role and SECURITY DEFINER callers only.
revoke all on function public.enqueue_sync_jobs(text, uuid[])
  from public, anon, authenticated, service_role;

-- Every new show gets its setlist even if nobody opens its page: queue the
-- job (which queues the artist's catalogue instead when it is empty).
-- SECURITY DEFINER: shows are written by backend roles that need not be
-- allowed to queue jobs themselves.
create or replace function public.queue_setlists_for_new_shows()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform public.enqueue_sync_jobs(
    'create_setlist',
    array(select s.id from new_shows as s where s.status not in ('cancelled', 'removed')));
  return null;
end;
$$;

revoke execute on function public.queue_setlists_for_new_shows()
  from public, anon, authenticated, service_role;

drop trigger shows_queue_setlist on public.shows;
drop function public.queue_setlist_for_new_show();

create trigger shows_queue_setlist
  after insert on public.shows
  referencing new table as new_shows
  for each statement execute function public.queue_setlists_for_new_shows();
