-- The one queue for background work: pgmq queue 'sync'. Enqueueing the same
-- (job kind, entity) while one is pending yields one unit of work: the
-- pending row is the lock, taken with the message in one transaction.
--
-- A job stays "pending" from its enqueue until the worker deletes or archives
-- its message; the worker removes the pending row in that same transaction
-- (public.sync_complete_job / public.sync_fail_job), so a crash can never
-- leave the queue and the pending rows disagreeing.
--
-- Forcing: enqueueing with options {"force": true} while an unforced job of
-- the same kind and entity is pending does not add a second message; it
-- upgrades the pending job instead (options merged into the pending row,
-- which the worker reads together with the message).
--
-- Enqueueing while the job is RUNNING (its message read and still hidden)
-- cannot count on that run: it may already be past the point the request
-- is about (a create_setlist that found no catalogue, a freshness check).
-- The pending row is then marked 'rerun' (options still merged), and the
-- worker, finishing the run (public.sync_complete_job, or the dead-letter
-- path of public.sync_fail_job), sends a fresh message for the pending row
-- instead of deleting it. A retry clears the mark: the retried run comes
-- after the request. (A request made while a failed job waits for its retry
-- looks the same as one made while it runs: at worst one extra run.)
-- Callers needing a fresh result at once run the refresh synchronously
-- (sync_artist / sync_shows do).

create table public.sync_pending_jobs (
  job_kind text not null,
  entity_id uuid not null,
  msg_id bigint,
  -- Options merged from every enqueue while pending ({"force": true} sticks).
  options jsonb not null default '{}'::jsonb,
  -- Asked for again while its message was running: send a fresh one when it ends.
  rerun boolean not null default false,
  enqueued_at timestamptz not null default now(),
  primary key (job_kind, entity_id)
);

create index sync_pending_jobs_msg_idx on public.sync_pending_jobs (msg_id);

alter table public.sync_pending_jobs enable row level security;
revoke all on table public.sync_pending_jobs from anon, authenticated;
grant select, insert, update, delete on table public.sync_pending_jobs to service_role;

-- Returns the new message id, or null when the same job is already pending
-- (its options then absorb the new ones, so a force is never lost; when
-- its message is running, the job is marked to run again after it).
create or replace function public.enqueue_sync_job(
  job_kind text,
  entity_id uuid,
  options jsonb default '{}'::jsonb,
  delay_seconds integer default 0
) returns bigint
language plpgsql
set search_path = ''
as $$
declare
  new_msg_id bigint;
  pending_msg_id bigint;
  in_flight boolean;
  pending_found boolean;
  opts jsonb := coalesce(options, '{}'::jsonb);
begin
  if job_kind is null or entity_id is null then
    raise exception 'job kind and entity are required' using errcode = '22023';
  end if;

  insert into public.sync_pending_jobs as p (job_kind, entity_id, options)
  values (enqueue_sync_job.job_kind, enqueue_sync_job.entity_id, opts)
  on conflict on constraint sync_pending_jobs_pkey do nothing;

  if not found then
    -- Already pending: lock it, and make sure its message still exists (a
    -- queue purged by hand must not block this job forever).
    select p.msg_id into pending_msg_id
      from public.sync_pending_jobs p
     where p.job_kind = enqueue_sync_job.job_kind and p.entity_id = enqueue_sync_job.entity_id
       for update;
    pending_found := found;
    if pending_found and pending_msg_id is not null then
      -- Null when the message is gone; true when running (read by a worker
      -- and still hidden from the others).
      select q.read_ct > 0 and q.vt > clock_timestamp() into in_flight
        from pgmq.q_sync q where q.msg_id = pending_msg_id;
    end if;
    if pending_found and (pending_msg_id is null or in_flight is not null) then
      update public.sync_pending_jobs p
         set options = p.options || opts,
             rerun = p.rerun or coalesce(in_flight, false)
       where p.job_kind = enqueue_sync_job.job_kind and p.entity_id = enqueue_sync_job.entity_id
         and ((p.options || opts) is distinct from p.options
              or (coalesce(in_flight, false) and not p.rerun));
      return null;
    end if;
    if not pending_found then
      -- The pending row went away between our insert and select: try again.
      insert into public.sync_pending_jobs (job_kind, entity_id, options)
      values (enqueue_sync_job.job_kind, enqueue_sync_job.entity_id, opts)
      on conflict on constraint sync_pending_jobs_pkey do nothing;
      if not found then
        return null;
      end if;
    else
      update public.sync_pending_jobs p
         set options = p.options || opts, rerun = false, enqueued_at = now()
       where p.job_kind = enqueue_sync_job.job_kind and p.entity_id = enqueue_sync_job.entity_id;
    end if;
  end if;

  select s into new_msg_id from pgmq.send(
    'sync',
    jsonb_build_object('kind', enqueue_sync_job.job_kind, 'entity_id', enqueue_sync_job.entity_id,
                       'options', opts),
    greatest(coalesce(delay_seconds, 0), 0)) s;
  update public.sync_pending_jobs p set msg_id = new_msg_id
   where p.job_kind = enqueue_sync_job.job_kind and p.entity_id = enqueue_sync_job.entity_id;
  return new_msg_id;
end;
$$;

-- The worker's side of a 'rerun' mark: when the message p_msg_id ends
-- (completed or dead), its pending row either goes away or, marked rerun,
-- gets a fresh message with its merged options. Returns the new message id,
-- or null when the row was released. Called in the transaction that deletes
-- or archives p_msg_id.
create or replace function public.sync_release_pending(p_msg_id bigint)
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  p record;
  new_msg_id bigint;
begin
  -- Locked first: an enqueue marking it rerun either commits before (seen
  -- here) or waits and then finds no pending row (and sends its own message).
  select pj.job_kind, pj.entity_id, pj.options, pj.rerun into p
    from public.sync_pending_jobs pj
   where pj.msg_id = p_msg_id
     for update;
  if not found then
    return null;
  end if;
  if not p.rerun then
    delete from public.sync_pending_jobs pj where pj.msg_id = p_msg_id;
    return null;
  end if;
  select s into new_msg_id from pgmq.send(
    'sync',
    jsonb_build_object('kind', p.job_kind, 'entity_id', p.entity_id, 'options', p.options)) s;
  update public.sync_pending_jobs pj
     set msg_id = new_msg_id, rerun = false, enqueued_at = now()
   where pj.msg_id = p_msg_id;
  return new_msg_id;
end;
$$;

revoke all on function public.sync_release_pending(bigint)
  from public, anon, authenticated, service_role;

-- Not granted to service_role: it has no rights on the pgmq (or cron) schema,
-- so it could not run these anyway. The backend's own role runs them: the
-- DATABASE_URL role (postgres), which owns these functions.
-- SECURITY DEFINER callers (create_setlist, the new-show trigger,
-- queue_setlists_for_artist) queue jobs for any role.
revoke all on function public.enqueue_sync_job(text, uuid, jsonb, integer)
  from public, anon, authenticated, service_role;
