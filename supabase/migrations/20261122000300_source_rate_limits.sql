-- Request-rate limits of the external sources, shared by every process.
--
-- Each function instance and queue worker reserves a slot here before every
-- call to Ticketmaster, Spotify or setlist.fm. Slots of one provider are
-- spaced 1 / requests_per_second apart ("next free time"), handed out under
-- the provider row's lock, so the sources never see more than the configured
-- rate however many processes call them. The same row remembers a daily quota
-- pause: once a provider says the quota is gone, nobody calls it before the
-- reset.

create table public.source_rate_limits (
  provider text primary key check (provider in ('ticketmaster', 'spotify', 'setlistfm')),
  -- The earliest time the next request may be sent (a time in the past: now).
  next_slot_at timestamptz not null default now(),
  -- No request before this time (daily quota exhausted); null when not paused.
  paused_until timestamptz
);

comment on table public.source_rate_limits is
  'Per-provider request slot clock and quota pause, shared by every backend process.';

insert into public.source_rate_limits (provider)
values ('ticketmaster'), ('spotify'), ('setlistfm');

alter table public.source_rate_limits enable row level security;
revoke all on table public.source_rate_limits from public, anon, authenticated;
grant select, insert, update, delete on table public.source_rate_limits to service_role;

-- Reserve the provider's next request slot. Returns how long the caller must
-- wait before sending (0 when the slot is now) and the slot's time, or, while
-- the provider is paused, the end of the pause and no slot.
--
-- p_max_wait_seconds bounds the wait: when the next free slot is further away
-- than that, nothing is reserved (next_slot_at does not move) and the answer
-- is the wait with reserved = false, so the caller can give up (a request
-- answers 503 + Retry-After) without booking a slot nobody will use. Null:
-- no bound (a caller that will wait however long it takes).
create or replace function public.reserve_rate_slot(
  p_provider text,
  p_requests_per_second double precision,
  p_max_wait_seconds double precision default null
)
returns table (
  wait_seconds double precision,
  paused_until timestamptz,
  reserved boolean,
  slot_at timestamptz
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
begin
  if p_requests_per_second is null or p_requests_per_second <= 0 then
    raise exception 'requests per second must be positive, got %', p_requests_per_second
      using errcode = '22023';
  end if;
  if p_max_wait_seconds < 0 then
    raise exception 'maximum wait must not be negative, got %', p_max_wait_seconds
      using errcode = '22023';
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
    return query select 0::double precision, v_paused_until, false, null::timestamptz;
    return;
  end if;

  v_slot := greatest(v_next_slot, v_now);
  v_wait := extract(epoch from v_slot - v_now)::double precision;
  if v_wait > p_max_wait_seconds then
    -- Too far away: book nothing, say how long it would have been.
    return query select v_wait, null::timestamptz, false, null::timestamptz;
    return;
  end if;

  update public.source_rate_limits as l
     set next_slot_at = v_slot + make_interval(secs => 1.0 / p_requests_per_second),
         paused_until = null
   where l.provider = p_provider;

  return query select v_wait, null::timestamptz, true, v_slot;
end;
$$;

-- Pause every call to a provider until p_until (its daily quota is exhausted).
-- A later pause wins over an earlier one.
create or replace function public.pause_rate_limited_source(p_provider text, p_until timestamptz)
returns void
language plpgsql
volatile
security invoker
set search_path = ''
as $$
begin
  update public.source_rate_limits as l
     set paused_until = greatest(coalesce(l.paused_until, p_until), p_until)
   where l.provider = p_provider;
  if not found then
    raise exception 'unknown provider %', p_provider using errcode = '22023';
  end if;
end;
$$;

revoke execute on function public.reserve_rate_slot(text, double precision, double precision)
  from public, anon, authenticated;
revoke execute on function public.pause_rate_limited_source(text, timestamptz)
  from public, anon, authenticated;
grant execute on function public.reserve_rate_slot(text, double precision, double precision)
  to service_role;
grant execute on function public.pause_rate_limited_source(text, timestamptz) to service_role;
