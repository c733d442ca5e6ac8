-- New shows' create_setlist jobs: two writes per show instead of three.
-- enqueue_sync_jobs (20261204100100_new_show_jobs_batched.sql) inserted the
-- pending rows, sent the messages, then updated every pending row with its
-- message id: a second version of each row and of its two indexes (a tenth of
-- a bench_ingest run). Now the messages go first and the pending rows are
-- inserted with their message ids, read back from the queue table by id.
--
-- Same contract: one message per pending (kind, entity). Entities already
-- pending are not sent here; an entity whose pending row appears between the
-- check and the insert (a concurrent enqueue) loses its message again
-- (pgmq.delete, in this transaction: nobody ever sees it) and, like every
-- entity already pending, goes through public.enqueue_sync_job, the one
-- place that decides how a pending or running job absorbs a new request.
-- Those go in entity order, so overlapping batches cannot deadlock.
create or replace function public.enqueue_sync_jobs(job_kind text, entity_ids uuid[])
returns integer
language plpgsql
set search_path = ''
as $$
declare
  wanted uuid[];
  sent bigint[];
  fresh uuid[];
  entity uuid;
  queued integer;
begin
  if job_kind is null then
    raise exception 'job kind is required' using errcode = '22023';
  end if;

  wanted := array(
    select e.entity_id
      from (select distinct e.entity_id from unnest(entity_ids) as e(entity_id)
             where e.entity_id is not null) as e
     where not exists (select 1 from public.sync_pending_jobs as p
                        where p.job_kind = enqueue_sync_jobs.job_kind
                          and p.entity_id = e.entity_id));

  if cardinality(wanted) > 0 then
    select array_agg(s.id) into sent
      from pgmq.send_batch(
             'sync',
             array(select jsonb_build_object('kind', enqueue_sync_jobs.job_kind,
                                             'entity_id', w.entity_id, 'options', '{}'::jsonb)
                     from unnest(wanted) as w(entity_id))) as s(id);

    with added as (
      insert into public.sync_pending_jobs as p (job_kind, entity_id, msg_id)
      select enqueue_sync_jobs.job_kind, (q.message ->> 'entity_id')::uuid, q.msg_id
        from pgmq.q_sync as q
       where q.msg_id = any (sent)
       order by 2
      on conflict on constraint sync_pending_jobs_pkey do nothing
      returning p.entity_id
    )
    select array_agg(added.entity_id) into fresh from added;

    if coalesce(cardinality(fresh), 0) < cardinality(sent) then
      perform pgmq.delete('sync', q.msg_id)
         from pgmq.q_sync as q
        where q.msg_id = any (sent)
          and (q.message ->> 'entity_id')::uuid <> all (coalesce(fresh, '{}'));
    end if;
  end if;

  -- In entity order: two overlapping batches lock the pending rows they
  -- share in one order (unordered, they deadlocked).
  queued := coalesce(cardinality(fresh), 0);
  for entity in
    select e.entity_id from unnest(entity_ids) as e(entity_id) where e.entity_id is not null
    except
    select f.entity_id from unnest(fresh) as f(entity_id)
    order by 1
  loop
    if public.enqueue_sync_job(enqueue_sync_jobs.job_kind, entity) is not null then
      queued := queued + 1;
    end if;
  end loop;

  return queued;
end;
$$;

revoke all on function public.enqueue_sync_jobs(text, uuid[])
  from public, anon, authenticated, service_role;
