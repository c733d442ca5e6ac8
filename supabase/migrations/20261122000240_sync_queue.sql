-- The one queue for background work: pgmq queue 'sync'. Enqueueing the same
-- (job kind, entity) while one is pending yields one unit of work: the
-- pending row is the lock, taken with the message in one transaction.

create table public.sync_pending_jobs (
  job_kind text not null,
  entity_id uuid not null,
  msg_id bigint,
  enqueued_at timestamptz not null default now(),
  primary key (job_kind, entity_id)
);

create index sync_pending_jobs_msg_idx on public.sync_pending_jobs (msg_id);

alter table public.sync_pending_jobs enable row level security;
revoke all on table public.sync_pending_jobs from anon, authenticated;
grant select, insert, update, delete on table public.sync_pending_jobs to service_role;

-- Returns the new message id, or null when the same job is already pending.
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
begin
  insert into public.sync_pending_jobs (job_kind, entity_id)
  values (enqueue_sync_job.job_kind, enqueue_sync_job.entity_id)
  on conflict do nothing;
  if not found then
    return null;
  end if;
  new_msg_id := pgmq.send(
    'sync',
    jsonb_build_object('kind', enqueue_sync_job.job_kind, 'entity_id', enqueue_sync_job.entity_id,
                       'options', coalesce(options, '{}'::jsonb)),
    greatest(delay_seconds, 0));
  update public.sync_pending_jobs p set msg_id = new_msg_id
   where p.job_kind = enqueue_sync_job.job_kind and p.entity_id = enqueue_sync_job.entity_id;
  return new_msg_id;
end;
$$;

revoke all on function public.enqueue_sync_job(text, uuid, jsonb, integer) from public, anon, authenticated;
grant execute on function public.enqueue_sync_job(text, uuid, jsonb, integer) to service_role;
