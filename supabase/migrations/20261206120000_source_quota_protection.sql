-- Public traffic must not exhaust the sources. Ticketmaster gives one key
-- 5,000 calls a day and 5 a second, and search_artists / sync_artist need no
-- sign-in: without these pieces one script looping over search spends the
-- day's quota in about 17 minutes, and then nothing is synced until the reset.
--
-- Every piece keeps its state here, so every instance of every function and
-- every worker shares it:
--
-- * Daily quota shares (source_daily_quotas, reserve_rate_slot): every call
--   to a source is counted when its rate-limit slot is reserved, in one of
--   two shares. 'request' calls (a function answering a client) may use at
--   most daily_limit - sync_reserved a day; 'sync' calls (the queue worker,
--   internal callers) may use the whole quota. So the schedules of stale
--   shows and artists keep running on a day of heavy search. The limits come
--   from each process's settings with every reservation (like the rate) and
--   are remembered for monitoring. The day is the UTC day.
-- * Search cache (search_cache): one Ticketmaster search per normalised query
--   (public.name_key: case, accents, spacing) per TTL, whoever asks.
-- * Client budgets (client_budgets, take_client_budget): a GCRA per client
--   and action, checked before a request's first upstream call.
-- * Single flight (sync_flights): one caller at a time does a piece of
--   upstream work (an artist import, a shows refresh, a catalogue import, a
--   search); the others wait for its outcome, which the leader records in the
--   same transaction as its writes, so "finished" always means "visible".
-- * Held-back jobs (sync_job_holds): a job refused a rate-limit slot, held
--   back by a spent quota or waiting for another caller's flight is put back
--   without using up one of its attempts.

-- ---------------------------------------------------------------------------------------------
-- Daily quota shares
-- ---------------------------------------------------------------------------------------------

create table public.source_daily_quotas (
  provider text primary key references public.source_rate_limits (provider),
  -- The UTC day the counters belong to; the first reservation of a new day resets them.
  day date not null default (now() at time zone 'utc')::date,
  request_calls integer not null default 0 check (request_calls >= 0),
  sync_calls integer not null default 0 check (sync_calls >= 0),
  -- As last configured by a reserving process (null: no daily quota).
  daily_limit integer check (daily_limit > 0),
  sync_reserved integer not null default 0 check (sync_reserved >= 0)
);

comment on table public.source_daily_quotas is
  'Calls made to each source today (UTC), per share: request traffic or the sync engine.';

insert into public.source_daily_quotas (provider)
select provider from public.source_rate_limits;

alter table public.source_daily_quotas enable row level security;
revoke all on table public.source_daily_quotas from public, anon, authenticated;
grant select, insert, update, delete on table public.source_daily_quotas to service_role;

-- The slot reservation now also counts the call in its quota share. A share
-- that is used up reserves nothing and answers quota_reset_at (the next UTC
-- midnight); the slot clock does not move. p_count_call false: a new slot for
-- a call already counted (its caller woke up too late for the first one and
-- sends once, on this one), neither checked against the quota nor counted.
drop function public.reserve_rate_slot(text, double precision, double precision);

create function public.reserve_rate_slot(
  p_provider text,
  p_requests_per_second double precision,
  p_max_wait_seconds double precision default null,
  p_share text default 'sync',
  p_daily_limit integer default null,
  p_sync_reserved integer default 0,
  p_count_call boolean default true
)
returns table (
  wait_seconds double precision,
  paused_until timestamptz,
  reserved boolean,
  slot_at timestamptz,
  quota_reset_at timestamptz
)
language plpgsql
volatile
security invoker
set search_path = ''
as $$
declare
  v_next_slot timestamptz;
  v_paused_until timestamptz;
  v_now timestamptz;
  v_slot timestamptz;
  v_wait double precision;
  v_today date;
  q public.source_daily_quotas%rowtype;
begin
  if p_requests_per_second is null or p_requests_per_second <= 0 then
    raise exception 'requests per second must be positive, got %', p_requests_per_second
      using errcode = '22023';
  end if;
  if p_max_wait_seconds < 0 then
    raise exception 'maximum wait must not be negative, got %', p_max_wait_seconds
      using errcode = '22023';
  end if;
  if p_share is null or p_share not in ('request', 'sync') then
    raise exception 'quota share must be request or sync, got %', p_share using errcode = '22023';
  end if;
  if p_daily_limit <= 0 or p_sync_reserved < 0 or p_sync_reserved > p_daily_limit then
    raise exception 'daily limit % with % reserved for the sync is not valid',
      p_daily_limit, p_sync_reserved using errcode = '22023';
  end if;

  select l.next_slot_at, l.paused_until
    into v_next_slot, v_paused_until
    from public.source_rate_limits as l
   where l.provider = p_provider
     for update;
  if not found then
    raise exception 'unknown provider %', p_provider using errcode = '22023';
  end if;

  -- Read the clock once the lock is held: time spent queueing for the row
  -- must not count as time already waited.
  v_now := clock_timestamp();
  if v_paused_until > v_now then
    return query select 0::double precision, v_paused_until, false, null::timestamptz,
                        null::timestamptz;
    return;
  end if;

  -- The provider row's lock serialises this row too.
  v_today := (v_now at time zone 'utc')::date;
  update public.source_daily_quotas as d
     set day = v_today, request_calls = 0, sync_calls = 0
   where d.provider = p_provider and d.day <> v_today;
  update public.source_daily_quotas as d
     set daily_limit = p_daily_limit, sync_reserved = coalesce(p_sync_reserved, 0)
   where d.provider = p_provider
     and (d.daily_limit is distinct from p_daily_limit
          or d.sync_reserved <> coalesce(p_sync_reserved, 0))
  returning * into q;
  if not found then
    select * into q from public.source_daily_quotas d where d.provider = p_provider;
  end if;
  if p_daily_limit is not null and p_count_call
     and (q.request_calls + q.sync_calls >= p_daily_limit
          or (p_share = 'request'
              and q.request_calls >= p_daily_limit - coalesce(p_sync_reserved, 0))) then
    return query select 0::double precision, null::timestamptz, false, null::timestamptz,
                        ((v_today + 1)::timestamp at time zone 'utc');
    return;
  end if;

  v_slot := greatest(v_next_slot, v_now);
  v_wait := extract(epoch from v_slot - v_now)::double precision;
  if v_wait > p_max_wait_seconds then
    -- Too far away: book nothing, say how long it would have been.
    return query select v_wait, null::timestamptz, false, null::timestamptz, null::timestamptz;
    return;
  end if;

  update public.source_rate_limits as l
     set next_slot_at = v_slot + make_interval(secs => 1.0 / p_requests_per_second),
         paused_until = null
   where l.provider = p_provider;
  update public.source_daily_quotas as d
     set request_calls = d.request_calls + (p_share = 'request')::integer,
         sync_calls = d.sync_calls + (p_share = 'sync')::integer
   where d.provider = p_provider and p_count_call;

  return query select v_wait, null::timestamptz, true, v_slot, null::timestamptz;
end;
$$;

revoke execute on function public.reserve_rate_slot(text, double precision, double precision,
                                                     text, integer, integer, boolean)
  from public, anon, authenticated;
grant execute on function public.reserve_rate_slot(text, double precision, double precision,
                                                   text, integer, integer, boolean)
  to service_role;

-- Each share's use today and when it resets: ./dev status and sync_status.
create function public.source_quota_status()
returns jsonb
language sql
stable
set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'provider', d.provider,
           'daily_limit', d.daily_limit,
           'sync_reserved', d.sync_reserved,
           'request_limit', d.daily_limit - d.sync_reserved,
           'request_calls', case when d.day = today then d.request_calls else 0 end,
           'sync_calls', case when d.day = today then d.sync_calls else 0 end,
           'remaining', d.daily_limit
                        - case when d.day = today then d.request_calls + d.sync_calls else 0 end,
           'resets_at', ((today + 1)::timestamp at time zone 'utc'),
           'paused_until', case when l.paused_until > now() then l.paused_until end)
         order by d.provider), '[]'::jsonb)
    from public.source_daily_quotas d
    join public.source_rate_limits l using (provider)
   cross join lateral (select (now() at time zone 'utc')::date as today) as t
$$;

revoke execute on function public.source_quota_status() from public, anon, authenticated;
grant execute on function public.source_quota_status() to service_role;

-- ---------------------------------------------------------------------------------------------
-- Search cache
-- ---------------------------------------------------------------------------------------------

create table public.search_cache (
  query_key text primary key,
  -- The page size Ticketmaster was asked for: a cached answer serves any
  -- smaller limit, and any limit when it held fewer items (complete).
  fetched_size integer not null check (fetched_size > 0),
  items jsonb not null check (jsonb_typeof(items) = 'array'),
  fetched_at timestamptz not null default now()
);

comment on table public.search_cache is
  'Ticketmaster artist searches by normalised query (public.name_key), shared by every instance.';

create index search_cache_fetched_idx on public.search_cache (fetched_at);

alter table public.search_cache enable row level security;
revoke all on table public.search_cache from public, anon, authenticated;
grant select, insert, update, delete on table public.search_cache to service_role;

-- The cached answer for q when it is younger than the TTL and can serve
-- p_limit items; no row otherwise.
create function public.search_cache_lookup(q text, p_limit integer, ttl_seconds double precision)
returns table (items jsonb, fetched_at timestamptz)
language sql
stable
set search_path = ''
as $$
  select c.items, c.fetched_at
    from public.search_cache c
   where c.query_key = public.name_key(q)
     and c.fetched_at > now() - make_interval(secs => ttl_seconds)
     and (c.fetched_size >= p_limit or jsonb_array_length(c.items) < c.fetched_size)
$$;

create function public.search_cache_store(q text, p_fetched_size integer, p_items jsonb)
returns timestamptz
language sql
set search_path = ''
as $$
  insert into public.search_cache as c (query_key, fetched_size, items, fetched_at)
  values (public.name_key(q), p_fetched_size, p_items, now())
  on conflict (query_key) do update
    set fetched_size = excluded.fetched_size, items = excluded.items,
        fetched_at = excluded.fetched_at
  returning c.fetched_at
$$;

revoke execute on function public.search_cache_lookup(text, integer, double precision)
  from public, anon, authenticated;
revoke execute on function public.search_cache_store(text, integer, jsonb)
  from public, anon, authenticated;
grant execute on function public.search_cache_lookup(text, integer, double precision)
  to service_role;
grant execute on function public.search_cache_store(text, integer, jsonb) to service_role;

-- Offline search: our own artists by accent-insensitive prefix of the name
-- or of one of its words, those with upcoming shows first.
create index artists_name_key_prefix_idx on public.artists (name_key text_pattern_ops);

create function public.search_local_artists(q text, p_limit integer)
returns table (
  artist_id uuid,
  name text,
  ticketmaster_id text,
  spotify_id text,
  musicbrainz_id text,
  image_url text,
  genres text[],
  upcoming_show_count integer,
  ticketmaster_url text
)
language sql
stable
set search_path = ''
as $$
  with wanted as (
    select k.key, regexp_replace(k.key, '([\\%_])', '\\\1', 'g') as pattern
      from (select public.name_key(q) as key) k)
  select a.id, a.name,
         (select x.external_id from public.artist_external_ids x
           where x.artist_id = a.id and x.source = 'ticketmaster'
           order by x.created_at, x.external_id limit 1),
         (select x.external_id from public.artist_external_ids x
           where x.artist_id = a.id and x.source = 'spotify'
           order by x.created_at, x.external_id limit 1),
         (select x.external_id from public.artist_external_ids x
           where x.artist_id = a.id and x.source = 'musicbrainz'
           order by x.created_at, x.external_id limit 1),
         a.image_url, a.genres, u.n, a.ticketmaster_url
    from public.artists a, wanted w
   cross join lateral (
     select count(*)::integer as n from public.shows s
      where s.artist_id = a.id and s.local_date >= current_date
        and s.status in ('scheduled', 'postponed', 'rescheduled')) u
   where w.key <> ''
     and (a.name_key like w.pattern || '%' or a.name_key like '% ' || w.pattern || '%')
   order by (u.n > 0) desc, (a.name_key like w.pattern || '%') desc,
            a.popularity desc nulls last,
            a.name_key, a.id
   limit greatest(least(p_limit, 50), 0)
$$;

revoke execute on function public.search_local_artists(text, integer)
  from public, anon, authenticated;
grant execute on function public.search_local_artists(text, integer) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Per-client budgets
-- ---------------------------------------------------------------------------------------------

-- GCRA per (client, action): tat is the theoretical arrival time of the next
-- request. A client may make `burst` requests at once, then one every
-- 60 / per_minute seconds. client_key is a hash (no address or user id stored).
create table public.client_budgets (
  client_key text not null,
  action text not null,
  tat timestamptz not null,
  primary key (client_key, action)
);

create index client_budgets_tat_idx on public.client_budgets (tat);

alter table public.client_budgets enable row level security;
revoke all on table public.client_budgets from public, anon, authenticated;
grant select, insert, update, delete on table public.client_budgets to service_role;

-- 0 when the request may go ahead (and is counted), else the seconds until it may.
create function public.take_client_budget(
  p_client_key text,
  p_action text,
  p_per_minute double precision,
  p_burst integer
) returns double precision
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_now timestamptz := clock_timestamp();
  v_step interval;
  v_tolerance interval;
  v_tat timestamptz;
begin
  if p_per_minute is null or p_per_minute <= 0 or p_burst is null or p_burst < 1 then
    raise exception 'a budget needs a positive rate and a burst of at least 1'
      using errcode = '22023';
  end if;
  v_step := make_interval(secs => 60.0 / p_per_minute);
  v_tolerance := v_step * (p_burst - 1);
  insert into public.client_budgets as b (client_key, action, tat)
  values (p_client_key, p_action, v_now)
  on conflict (client_key, action) do nothing;
  select greatest(b.tat, v_now) into v_tat
    from public.client_budgets b
   where b.client_key = p_client_key and b.action = p_action
     for update;
  if v_tat - v_now > v_tolerance then
    return extract(epoch from (v_tat - v_now) - v_tolerance)::double precision;
  end if;
  update public.client_budgets b set tat = v_tat + v_step
   where b.client_key = p_client_key and b.action = p_action;
  return 0;
end;
$$;

revoke execute on function public.take_client_budget(text, text, double precision, integer)
  from public, anon, authenticated;
grant execute on function public.take_client_budget(text, text, double precision, integer)
  to service_role;

-- ---------------------------------------------------------------------------------------------
-- Single flight
-- ---------------------------------------------------------------------------------------------

-- One row per piece of upstream work (key), held by the caller doing it
-- until it finishes or its lease expires (a crashed caller). outcome is what
-- the waiting callers need: null for success (they read the result from the
-- tables), or the error they should answer with.
create table public.sync_flights (
  key text primary key,
  holder uuid not null,
  started_at timestamptz not null default now(),
  expires_at timestamptz not null,
  finished_at timestamptz,
  outcome jsonb
);

create index sync_flights_started_idx on public.sync_flights (started_at);

alter table public.sync_flights enable row level security;
revoke all on table public.sync_flights from public, anon, authenticated;
grant select, insert, update, delete on table public.sync_flights to service_role;

-- Take the flight of p_key for p_holder unless another caller holds a live
-- lease on it (a leader renews its lease while it works, so an expired one
-- is a crashed leader's). Answers p_holder when taken, null otherwise.
create function public.sync_flight_take(p_key text, p_holder uuid, lease_seconds double precision)
returns uuid
language sql
volatile
set search_path = ''
as $$
  insert into public.sync_flights as f (key, holder, started_at, expires_at)
  values (p_key, p_holder, clock_timestamp(),
          clock_timestamp() + make_interval(secs => lease_seconds))
  on conflict (key) do update
    set holder = excluded.holder, started_at = excluded.started_at,
        expires_at = excluded.expires_at, finished_at = null, outcome = null
    where f.finished_at is not null or f.expires_at <= clock_timestamp()
  returning f.holder
$$;

-- End a flight (in the leader's own write transaction on success).
create function public.sync_flight_finish(p_key text, p_holder uuid, p_outcome jsonb default null)
returns boolean
language sql
volatile
set search_path = ''
as $$
  update public.sync_flights f
     set finished_at = clock_timestamp(), outcome = p_outcome
   where f.key = p_key and f.holder = p_holder and f.finished_at is null
  returning true
$$;

-- The leader keeps a live flight's lease from running out while it works.
create function public.sync_flight_extend(p_key text, p_holder uuid, lease_seconds double precision)
returns boolean
language sql
volatile
set search_path = ''
as $$
  update public.sync_flights f
     set expires_at = clock_timestamp() + make_interval(secs => lease_seconds)
   where f.key = p_key and f.holder = p_holder and f.finished_at is null
  returning true
$$;

-- The state of p_key's flight as a waiting caller sees it.
create function public.sync_flight_state(p_key text)
returns table (holder uuid, live boolean, finished boolean, outcome jsonb,
               expires_in_seconds double precision)
language sql
stable
set search_path = ''
as $$
  select f.holder, f.finished_at is null and f.expires_at > clock_timestamp(),
         f.finished_at is not null, f.outcome,
         greatest(extract(epoch from f.expires_at - clock_timestamp()), 0)::double precision
    from public.sync_flights f
   where f.key = p_key
$$;

revoke execute on function public.sync_flight_take(text, uuid, double precision)
  from public, anon, authenticated;
revoke execute on function public.sync_flight_finish(text, uuid, jsonb)
  from public, anon, authenticated;
revoke execute on function public.sync_flight_extend(text, uuid, double precision)
  from public, anon, authenticated;
revoke execute on function public.sync_flight_state(text) from public, anon, authenticated;
grant execute on function public.sync_flight_extend(text, uuid, double precision) to service_role;
grant execute on function public.sync_flight_take(text, uuid, double precision) to service_role;
grant execute on function public.sync_flight_finish(text, uuid, jsonb) to service_role;
grant execute on function public.sync_flight_state(text) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Held-back jobs do not use up attempts
-- ---------------------------------------------------------------------------------------------

-- pgmq counts every read (read_ct); a job put back because a limit held it,
-- not because it failed, is counted here, and its attempt is read_ct - holds.
create table public.sync_job_holds (
  msg_id bigint primary key,
  holds integer not null default 0 check (holds >= 0),
  last_reason text,
  held_at timestamptz not null default now()
);

alter table public.sync_job_holds enable row level security;
revoke all on table public.sync_job_holds from anon, authenticated;
grant select, insert, update, delete on table public.sync_job_holds to service_role;

drop function public.sync_read_jobs(integer, integer);

create function public.sync_read_jobs(vt_seconds integer, qty integer)
returns table (msg_id bigint, read_ct integer, enqueued_at timestamptz, message jsonb,
               options jsonb, attempt integer)
language sql
set search_path = ''
as $$
  select r.msg_id, r.read_ct, r.enqueued_at, r.message,
         coalesce(r.message -> 'options', '{}'::jsonb) || coalesce(p.options, '{}'::jsonb),
         greatest(r.read_ct - coalesce(h.holds, 0), 1)
    from pgmq.read('sync', vt_seconds, qty) as r
    left join public.sync_pending_jobs p on p.msg_id = r.msg_id
    left join public.sync_job_holds h on h.msg_id = r.msg_id
$$;

-- Put a read job back for p_delay_seconds without counting the read as an
-- attempt, and without recording a failure of its entity. Returns 'held' or
-- 'gone'.
create function public.sync_hold_job(p_msg_id bigint, p_delay_seconds integer, p_reason text)
returns text
language plpgsql
set search_path = ''
as $$
begin
  perform 1 from pgmq.q_sync m where m.msg_id = p_msg_id for update;
  if not found then
    return 'gone';
  end if;
  insert into public.sync_job_holds as h (msg_id, holds, last_reason, held_at)
  values (p_msg_id, 1, left(p_reason, 500), now())
  on conflict (msg_id) do update
    set holds = h.holds + 1, last_reason = excluded.last_reason, held_at = excluded.held_at;
  perform 1 from pgmq.set_vt('sync', p_msg_id, greatest(p_delay_seconds, 1));
  -- The held run never happened: a request made during it is served by the next one.
  update public.sync_pending_jobs p set rerun = false where p.msg_id = p_msg_id and p.rerun;
  return 'held';
end;
$$;

-- Finishing a job: as before, with attempts counted without the held reads
-- (p_read_ct is the attempt the worker ran), and the holds row gone with the
-- message.
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
  v_attempts integer;
begin
  select m.read_ct, m.message into q from pgmq.q_sync m where m.msg_id = p_msg_id for update;
  if not found then
    return 'gone';
  end if;
  delete from public.sync_job_holds h where h.msg_id = p_msg_id
  returning q.read_ct - h.holds into v_attempts;
  v_attempts := coalesce(v_attempts, q.read_ct);
  perform pgmq.delete('sync', p_msg_id);
  -- Released, or sent again when it was asked for while running.
  perform public.sync_release_pending(p_msg_id);
  insert into public.sync_job_runs (msg_id, job_kind, entity_id, attempt, outcome, duration_ms)
  values (p_msg_id, coalesce(q.message ->> 'kind', '?'),
          case when (q.message ->> 'entity_id') ~* '^[0-9a-f-]{36}$'
               then (q.message ->> 'entity_id')::uuid end,
          greatest(p_read_ct, 1), 'done', greatest(p_duration_ms, 0));
  return case when v_attempts > p_read_ct then 'redelivered' else 'done' end;
end;
$$;

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
  v_holds integer;
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
    delete from public.sync_job_holds h where h.msg_id = p_msg_id returning h.holds into v_holds;
    perform pgmq.archive('sync', p_msg_id);
    perform public.sync_release_pending(p_msg_id);
    insert into public.sync_dead_letters (msg_id, job_kind, message, attempts, last_error)
    values (p_msg_id, v_kind, q.message, greatest(q.read_ct - coalesce(v_holds, 0), 1),
            left(coalesce(p_error, 'unknown error'), 2000));
    return 'dead';
  end if;
  perform 1 from pgmq.set_vt('sync', p_msg_id, greatest(p_retry_in_seconds, 0));
  -- The retried run comes after any request made during this one.
  update public.sync_pending_jobs p set rerun = false where p.msg_id = p_msg_id and p.rerun;
  return 'retry';
end;
$$;

-- How many jobs (at most p_limit) a worker could read now: the worker's
-- batch size, without reading (and hiding) any.
create function public.sync_visible_jobs(p_limit integer)
returns integer
language sql
stable
set search_path = ''
as $$
  select count(*)::integer
    from (select 1 from pgmq.q_sync q where q.vt <= clock_timestamp() limit p_limit) as v
$$;

revoke execute on function public.sync_read_jobs(integer, integer)
  from public, anon, authenticated, service_role;
revoke execute on function public.sync_hold_job(bigint, integer, text)
  from public, anon, authenticated, service_role;
revoke execute on function public.sync_visible_jobs(integer)
  from public, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Cleanup of what these pieces leave behind (daily)
-- ---------------------------------------------------------------------------------------------

create function public.source_protection_cleanup()
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  n_cache bigint;
  n_budgets bigint;
  n_flights bigint;
  n_holds bigint;
begin
  delete from public.search_cache where fetched_at < now() - interval '1 day';
  get diagnostics n_cache = row_count;
  -- A tat in the past is a full budget: the row says nothing a new one would not.
  delete from public.client_budgets where tat < now() - interval '1 hour';
  get diagnostics n_budgets = row_count;
  delete from public.sync_flights
   where coalesce(finished_at, expires_at) < now() - interval '1 hour';
  get diagnostics n_flights = row_count;
  delete from public.sync_job_holds h
   where not exists (select 1 from pgmq.q_sync q where q.msg_id = h.msg_id);
  get diagnostics n_holds = row_count;
  return jsonb_build_object('search_cache', n_cache, 'client_budgets', n_budgets,
                            'flights', n_flights, 'job_holds', n_holds);
end;
$$;

revoke execute on function public.source_protection_cleanup()
  from public, anon, authenticated, service_role;

select cron.schedule('source-protection-cleanup', '45 4 * * *',
                     'select public.source_protection_cleanup()');
