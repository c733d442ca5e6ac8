-- The client's API alone in `public`; the engine in `private`.
--
-- PostgREST serves `public` (supabase/config.toml, api.schemas): whatever sits
-- there is reachable at /rest/v1, held off only by its grants. Now `public` holds exactly what the client reads and calls:
-- the tables it reads under RLS and the RPCs openapi.yaml lists under
-- `x-postgrest` (tests/db/test_public_api.py compares the two). Everything else
-- (the sync queue and its bookkeeping, ingest, the sources' quotas and rate
-- slots, single flights, caches and budgets, vote tallies and broadcasts,
-- schedules, triggers, helpers) moves to `private`, which PostgREST does not
-- serve.
--
-- A move keeps each object's identity: owners, grants, RLS policies, triggers,
-- foreign keys, defaults, generated columns, the Realtime policy and cron's
-- function references follow by OID. Function bodies and cron commands name
-- objects by text, so every function whose text names a moved object is
-- restated below (pg_get_functiondef, with those names requalified and nothing
-- else changed), and the scheduled commands are requalified at the end.

create schema private;
comment on schema private is
  'The backend''s engine: sync queue and bookkeeping, ingest, source quotas, caches, vote tallies and broadcasts, schedules. Not served by PostgREST; public is the client''s API.';

-- The public API's invoker functions and the Realtime policy call private helpers as
-- anon or a signed-in user; each helper keeps its own execute grant.
grant usage on schema private to anon, authenticated, service_role;
-- PostgreSQL lets every role execute a new function, and a schema's default
-- privileges cannot take that back: each function here revokes it itself
-- (tests/db/test_public_api.py checks that none is left executable by PUBLIC).

alter table public.api_calls set schema private;
alter table public.artist_live_history set schema private;
alter table public.artist_live_songs set schema private;
alter table public.client_budgets set schema private;
alter table public.played_setlist_lookups set schema private;
alter table public.search_cache set schema private;
alter table public.source_daily_quotas set schema private;
alter table public.source_rate_limits set schema private;
alter table public.sync_dead_letters set schema private;
alter table public.sync_flights set schema private;
alter table public.sync_job_holds set schema private;
alter table public.sync_job_kinds set schema private;
alter table public.sync_job_runs set schema private;
alter table public.sync_pending_jobs set schema private;
alter table public.sync_state set schema private;
alter table public.vote_broadcasts set schema private;
alter table public.vote_tallies set schema private;

alter type public.ingest_artist_item set schema private;
alter type public.ingest_show_item set schema private;
alter type public.ingest_venue_item set schema private;

alter function public.acting_fan(action text) set schema private;
alter function public.artist_ids_by_external_id(sources text[], external_ids text[]) set schema private;
alter function public.artist_lock_keys(id_sources text[], id_values text[], name_keys text[]) set schema private;
alter function public.artist_musicbrainz_id(p_artist_id uuid) set schema private;
alter function public.check_webhook_target(function_url text) set schema private;
alter function public.enqueue_played_setlist_lookups(max_jobs integer) set schema private;
alter function public.enqueue_popularity_refresh() set schema private;
alter function public.enqueue_stale_artist_jobs(job_kind text, max_jobs integer) set schema private;
alter function public.enqueue_sync_job(job_kind text, entity_id uuid, options jsonb, delay_seconds integer) set schema private;
alter function public.enqueue_sync_jobs(job_kind text, entity_ids uuid[]) set schema private;
alter function public.exact_vote_count(entry setlist_songs) set schema private;
alter function public.flush_vote_broadcasts(every interval) set schema private;
alter function public.import_played_setlist(p_show_id uuid, p_setlist jsonb) set schema private;
alter function public.ingest_artist_lock_keys(batch jsonb) set schema private;
alter function public.ingest_artist_rows(batch jsonb) set schema private;
alter function public.ingest_artists(batch jsonb, mode text) set schema private;
alter function public.ingest_external_ids(batch jsonb) set schema private;
alter function public.ingest_live_history(p_artist_id uuid, p_setlists jsonb) set schema private;
alter function public.ingest_round(item_ords integer[], item_keys text[]) set schema private;
alter function public.ingest_show_lock_keys(batch jsonb) set schema private;
alter function public.ingest_show_rows(batch jsonb) set schema private;
alter function public.ingest_shows(batch jsonb) set schema private;
alter function public.ingest_song_lock_keys(p_artist_id uuid, batch jsonb) set schema private;
alter function public.ingest_song_rows(batch jsonb) set schema private;
alter function public.ingest_songs(p_artist_id uuid, batch jsonb) set schema private;
alter function public.ingest_venue_lock_keys(batch jsonb) set schema private;
alter function public.ingest_venue_rows(batch jsonb) set schema private;
alter function public.ingest_venues(batch jsonb) set schema private;
alter function public.is_setlist_topic(topic text) set schema private;
alter function public.live_draw_weight(plays integer, has_history boolean) set schema private;
alter function public.name_key(value text) set schema private;
alter function public.pause_rate_limited_source(p_provider text, p_until timestamp with time zone) set schema private;
alter function public.played_setlist(p_show_id uuid) set schema private;
alter function public.played_setlist_retry_offsets() set schema private;
alter function public.played_setlist_status(p_show_id uuid) set schema private;
alter function public.post_show_inserted_webhook() set schema private;
alter function public.predicted_setlist_songs(setlist_id uuid) set schema private;
alter function public.queue_setlists_for_artist(p_artist_id uuid) set schema private;
alter function public.queue_setlists_for_new_shows() set schema private;
alter function public.record_played_setlist_error(p_show_id uuid, p_error text) set schema private;
alter function public.record_played_setlist_lookup(p_show_id uuid, p_found boolean) set schema private;
alter function public.replace_user_artists(p_user_id uuid, top_artist_ids uuid[], followed_artist_ids uuid[]) set schema private;
alter function public.reserve_rate_slot(p_provider text, p_requests_per_second double precision, p_max_wait_seconds double precision, p_share text, p_daily_limit integer, p_sync_reserved integer, p_count_call boolean) set schema private;
alter function public.resolve_setlistfm_songs(p_artist_id uuid, items jsonb) set schema private;
alter function public.retire_missing_shows(p_artist_id uuid, p_seen uuid[], p_from date) set schema private;
alter function public.schedule_new_show_webhook(function_url text, secret_name text) set schema private;
alter function public.schedule_run_jobs_webhook(function_url text, secret_name text, schedule text, budget_seconds integer) set schema private;
alter function public.schedule_vote_broadcasts(every interval) set schema private;
alter function public.search_cache_lookup(q text, p_limit integer, ttl_seconds double precision) set schema private;
alter function public.search_cache_store(q text, p_fetched_size integer, p_items jsonb) set schema private;
alter function public.search_local_artists(q text, p_limit integer) set schema private;
alter function public.show_lock_keys(id_sources text[], id_values text[], natural_keys text[]) set schema private;
alter function public.show_setlist_accuracy(p_show_id uuid) set schema private;
alter function public.show_started_at(p_show_id uuid) set schema private;
alter function public.show_summary(show_id uuid) set schema private;
alter function public.song_title_key(title text) set schema private;
alter function public.songs_added_per_show_limit() set schema private;
alter function public.source_protection_cleanup() set schema private;
alter function public.source_quota_status() set schema private;
alter function public.sync_cleanup(api_calls_older_than interval, job_runs_older_than interval, archive_older_than interval, dead_letters_older_than interval, cron_runs_older_than interval) set schema private;
alter function public.sync_complete_job(p_msg_id bigint, p_read_ct integer, p_duration_ms integer) set schema private;
alter function public.sync_extend_job(p_msg_id bigint, vt_seconds integer) set schema private;
alter function public.sync_fail_job(p_msg_id bigint, p_read_ct integer, p_error text, p_retry_in_seconds integer, p_dead boolean, p_duration_ms integer) set schema private;
alter function public.sync_failure_backoff(job_kind text, failures integer) set schema private;
alter function public.sync_flight_extend(p_key text, p_holder uuid, lease_seconds double precision) set schema private;
alter function public.sync_flight_finish(p_key text, p_holder uuid, p_outcome jsonb) set schema private;
alter function public.sync_flight_state(p_key text) set schema private;
alter function public.sync_flight_take(p_key text, p_holder uuid, lease_seconds double precision) set schema private;
alter function public.sync_hold_job(p_msg_id bigint, p_delay_seconds integer, p_reason text) set schema private;
alter function public.sync_is_fresh(job_kind text, entity_id uuid) set schema private;
alter function public.sync_lock_keys(keys text[]) set schema private;
alter function public.sync_monitoring() set schema private;
alter function public.sync_profile_from_auth_user() set schema private;
alter function public.sync_read_jobs(vt_seconds integer, qty integer) set schema private;
alter function public.sync_record_failure(job_kind text, entity_id uuid, error text) set schema private;
alter function public.sync_record_success(job_kind text, entity_id uuid) set schema private;
alter function public.sync_release_pending(p_msg_id bigint) set schema private;
alter function public.sync_ttl(job_kind text) set schema private;
alter function public.sync_visible_jobs(p_limit integer) set schema private;
alter function public.take_client_budget(p_client_key text, p_action text, p_per_minute double precision, p_burst integer) set schema private;
alter function public.touch_updated_at() set schema private;
alter function public.unschedule_new_show_webhook() set schema private;
alter function public.unschedule_run_jobs_webhook() set schema private;
alter function public.unschedule_vote_broadcasts() set schema private;
alter function public.venue_lock_keys(id_sources text[], id_values text[], name_keys text[], city_keys text[], countries text[]) set schema private;
alter function public.votes_maintain_count() set schema private;
alter function public.votes_per_show_limit() set schema private;
alter function public.voting_closes_at(starts_at timestamp with time zone, local_date date, local_time time without time zone, timezone text) set schema private;

-- Every function whose text names a moved object, as pg_get_functiondef gives it,
-- with those names requalified and nothing else changed.

CREATE OR REPLACE FUNCTION private.acting_fan(action text)
 RETURNS uuid
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
declare
  caller uuid := auth.uid();
begin
  if caller is null then
    raise exception 'sign in to %', action using errcode = '42501', hint = 'not_signed_in';
  end if;
  if coalesce((auth.jwt() ->> 'is_anonymous')::boolean, false) then
    raise exception 'anonymous users cannot %; sign in with an account', action
      using errcode = 'PT403', hint = 'anonymous_user';
  end if;
  return caller;
end;
$function$;

CREATE OR REPLACE FUNCTION public.add_song(show_id uuid, song_id uuid)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  caller uuid := private.acting_fan('add songs');
  show_artist uuid;
  show_status text;
  closes_at timestamptz;
  song_artist uuid;
  song_title text;
  predicted uuid;
  existing_votes integer;
  added integer;
  added_limit constant integer := private.songs_added_per_show_limit();
  entry uuid;
  entry_position integer;
begin
  if add_song.show_id is null or add_song.song_id is null then
    raise exception 'show_id and song_id are required'
      using errcode = '22004', hint = 'missing_argument';
  end if;

  select s.artist_id, s.status,
         private.voting_closes_at(s.starts_at, s.local_date, s.local_time, v.timezone)
    into show_artist, show_status, closes_at
    from public.shows s
    join public.venues v on v.id = s.venue_id
   where s.id = add_song.show_id;
  if not found then
    raise exception 'no such show' using errcode = 'P0002', hint = 'show_not_found';
  end if;
  select so.artist_id, so.title into song_artist, song_title
    from public.songs so where so.id = add_song.song_id;
  if not found then
    raise exception 'no such song' using errcode = 'P0002', hint = 'song_not_found';
  end if;
  if song_artist <> show_artist then
    raise exception 'this song is not in the catalogue of the show''s artist'
      using errcode = 'PT422', hint = 'song_of_another_artist';
  end if;
  if show_status in ('cancelled', 'removed') or closes_at <= now() then
    raise exception 'this show''s setlist is closed' using errcode = 'PT409', hint = 'voting_closed';
  end if;
  if not exists (select 1 from auth.users u where u.id = caller) then
    raise exception 'this account no longer exists' using errcode = 'PT401', hint = 'unknown_user';
  end if;

  -- The show's five picks come first (the catalogue is not empty: it holds this song).
  perform public.create_setlist(add_song.show_id, false);
  -- Additions to one setlist go one at a time: positions and limits stay exact.
  select sl.id into predicted
    from public.setlists sl
   where sl.show_id = add_song.show_id and sl.kind = 'predicted'
     for update;

  select count(*) into added
    from public.setlist_songs ss
   where ss.setlist_id = predicted and ss.added_by = caller;
  select ss.id, ss.position, private.exact_vote_count(ss)
    into entry, entry_position, existing_votes
    from public.setlist_songs ss
   where ss.setlist_id = predicted and ss.song_id = add_song.song_id;
  if found then
    -- Already there (drawn, or added by someone): nothing to add, say where it is.
    return jsonb_build_object(
      'setlist_song_id', entry, 'setlist_id', predicted, 'show_id', add_song.show_id,
      'song_id', add_song.song_id, 'title', song_title, 'position', entry_position,
      'vote_count', existing_votes, 'added', false, 'songs_added', added,
      'songs_added_limit', added_limit);
  end if;
  if added >= added_limit then
    raise exception 'you have added % songs to this setlist, the most one fan may', added_limit
      using errcode = 'PT409', hint = 'add_limit_reached';
  end if;

  insert into public.setlist_songs (setlist_id, song_id, position, added_by)
  select predicted, add_song.song_id, coalesce(max(ss.position), 0) + 1, caller
    from public.setlist_songs ss
   where ss.setlist_id = predicted
  returning id, position into entry, entry_position;

  -- Immediate: a new song is rare and every listener needs its row.
  perform realtime.send(
    jsonb_build_object('setlist_song_id', entry, 'song_id', add_song.song_id,
                       'title', song_title, 'position', entry_position, 'vote_count', 0),
    'song_added', 'setlist:' || predicted::text, true);

  return jsonb_build_object(
    'setlist_song_id', entry, 'setlist_id', predicted, 'show_id', add_song.show_id,
    'song_id', add_song.song_id, 'title', song_title, 'position', entry_position,
    'vote_count', 0, 'added', true, 'songs_added', added + 1, 'songs_added_limit', added_limit);
end;
$function$;

CREATE OR REPLACE FUNCTION private.artist_ids_by_external_id(sources text[], external_ids text[])
 RETURNS TABLE(source text, external_id text, artist_id uuid)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select x.source, x.external_id, x.artist_id
    from unnest(artist_ids_by_external_id.sources, artist_ids_by_external_id.external_ids)
           as q(source, external_id)
    join public.artist_external_ids x
      on x.source = q.source and x.external_id = q.external_id
$function$;

CREATE OR REPLACE FUNCTION private.artist_lock_keys(id_sources text[], id_values text[], name_keys text[])
 RETURNS text[]
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  select array(
    select 'artist:' || x.source || ':' || x.external_id
      from unnest(id_sources, id_values) as x(source, external_id)
    union all
    select 'artist:name:' || k.name_key from unnest(name_keys) as k(name_key)
     where k.name_key is not null)
$function$;

CREATE OR REPLACE FUNCTION private.artist_musicbrainz_id(p_artist_id uuid)
 RETURNS text
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select x.external_id from public.artist_external_ids x
   where x.artist_id = p_artist_id and x.source = 'musicbrainz'
   order by x.created_at, x.external_id
   limit 1
$function$;

CREATE OR REPLACE FUNCTION public.cast_vote(setlist_song_id uuid, vote boolean DEFAULT true)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  caller uuid := private.acting_fan('vote');
  song record;  -- the setlist song (entry), its setlist's kind, show, closing, the account
  used integer;
  votes_limit constant integer := private.votes_per_show_limit();
  has_voted boolean;
begin
  if cast_vote.setlist_song_id is null or cast_vote.vote is null then
    raise exception 'setlist_song_id and vote are required'
      using errcode = '22004', hint = 'missing_argument';
  end if;

  select ss as entry, sl.kind, sl.show_id, s.status,
         private.voting_closes_at(s.starts_at, s.local_date, s.local_time, v.timezone) as closes_at,
         exists (select 1 from auth.users u where u.id = caller) as known_user
    into song
    from public.setlist_songs ss
    join public.setlists sl on sl.id = ss.setlist_id
    join public.shows s on s.id = sl.show_id
    join public.venues v on v.id = s.venue_id
   where ss.id = cast_vote.setlist_song_id;
  if not found then
    raise exception 'no such setlist song' using errcode = 'P0002', hint = 'setlist_song_not_found';
  end if;
  if song.kind <> 'predicted' then
    raise exception 'only the predicted setlist takes votes'
      using errcode = 'PT409', hint = 'setlist_not_votable';
  end if;
  if song.status in ('cancelled', 'removed') or song.closes_at <= now() then
    raise exception 'voting on this show is closed' using errcode = 'PT409', hint = 'voting_closed';
  end if;
  if not song.known_user then
    raise exception 'this account no longer exists' using errcode = 'PT401', hint = 'unknown_user';
  end if;

  -- One voter's requests on one show go one at a time, so the limit holds
  -- under concurrency; other voters never wait for it. The count below is a
  -- statement of its own, after the lock: it sees what this voter's previous
  -- request committed.
  perform pg_advisory_xact_lock(hashtextextended('cast_vote:' || caller::text || ':'
                                                 || song.show_id::text, 0));
  select count(*)::integer, coalesce(bool_or(vo.setlist_song_id = cast_vote.setlist_song_id), false)
    into used, has_voted
    from public.votes vo
    join public.setlist_songs ss on ss.id = vo.setlist_song_id
   where vo.user_id = caller and ss.setlist_id = (song.entry).setlist_id;

  if cast_vote.vote and not has_voted then
    if used >= votes_limit then
      raise exception 'you have used all % of your votes on this show', votes_limit
        using errcode = 'PT409', hint = 'vote_limit_reached';
    end if;
    insert into public.votes (user_id, setlist_song_id)
    values (caller, cast_vote.setlist_song_id)
    on conflict do nothing;
    used := used + 1;
    has_voted := true;
  elsif not cast_vote.vote and has_voted then
    delete from public.votes vo
     where vo.user_id = caller and vo.setlist_song_id = cast_vote.setlist_song_id;
    used := used - 1;
    has_voted := false;
  end if;

  return jsonb_build_object(
    'setlist_song_id', cast_vote.setlist_song_id,
    'setlist_id', (song.entry).setlist_id,
    'show_id', song.show_id,
    'vote_count', private.exact_vote_count(song.entry),
    'voted', has_voted,
    'votes_used', used,
    'votes_limit', votes_limit);
end;
$function$;

CREATE OR REPLACE FUNCTION private.check_webhook_target(function_url text)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
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
end;
$function$;

CREATE OR REPLACE FUNCTION public.create_setlist(show_id uuid, enqueue_when_pending boolean DEFAULT true)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  show_artist uuid;
  show_status text;
  closes_at timestamptz;
  predicted uuid;
  created boolean := false;
  queued boolean := false;
  has_history boolean;
begin
  if create_setlist.show_id is null then
    raise exception 'show_id is required' using errcode = '22004', hint = 'missing_argument';
  end if;
  select s.artist_id, s.status,
         private.voting_closes_at(s.starts_at, s.local_date, s.local_time, v.timezone)
    into show_artist, show_status, closes_at
    from public.shows s
    join public.venues v on v.id = s.venue_id
   where s.id = create_setlist.show_id;
  if not found then
    raise exception 'no such show' using errcode = 'P0002', hint = 'show_not_found';
  end if;

  select sl.id into predicted
    from public.setlists sl
   where sl.show_id = create_setlist.show_id and sl.kind = 'predicted';

  if predicted is null or not exists (select 1 from public.setlist_songs ss
                                       where ss.setlist_id = predicted) then
    if show_status in ('cancelled', 'removed') or closes_at <= now() then
      raise exception 'this show is cancelled or over: it gets no predicted setlist'
        using errcode = 'PT409', hint = 'show_closed';
    end if;
    if not exists (select 1 from public.songs so where so.artist_id = show_artist) then
      if coalesce(create_setlist.enqueue_when_pending, true) then
        -- Null when the job is already pending: it is queued either way.
        perform private.enqueue_sync_job('create_setlist', create_setlist.show_id);
        queued := true;
      end if;
      return jsonb_build_object(
        'show_id', create_setlist.show_id, 'artist_id', show_artist, 'status', 'pending',
        'created', false, 'setlist_id', predicted, 'songs', '[]'::jsonb,
        'pending_reason', 'catalogue_empty', 'job_queued', queued);
    end if;

    insert into public.setlists (show_id, kind)
    values (create_setlist.show_id, 'predicted')
    on conflict do nothing
    returning id into predicted;
    if predicted is null then
      -- Someone else's setlist row (committed: our insert waited for it).
      select sl.id into predicted
        from public.setlists sl
       where sl.show_id = create_setlist.show_id and sl.kind = 'predicted'
         for update;
    end if;

    if not exists (select 1 from public.setlist_songs ss where ss.setlist_id = predicted) then
      select coalesce(h.setlists_counted > 0, false) into has_history
        from (select 1) one
        left join private.artist_live_history h on h.artist_id = show_artist;
      insert into public.setlist_songs (setlist_id, song_id, position)
      select predicted, pick.id, row_number() over (order by pick.draw)
        from (select so.id,
                     -ln(1.0 - random()) / private.live_draw_weight(ls.plays, has_history)
                       as draw
                from public.songs so
                left join private.artist_live_songs ls
                  on ls.artist_id = show_artist and ls.song_id = so.id
               where so.artist_id = show_artist
               order by draw
               limit 5) pick;
      created := true;
    end if;
  end if;

  return jsonb_build_object(
    'show_id', create_setlist.show_id, 'artist_id', show_artist, 'status', 'ready',
    'created', created, 'setlist_id', predicted,
    'songs', private.predicted_setlist_songs(predicted),
    'pending_reason', null, 'job_queued', false);
end;
$function$;

CREATE OR REPLACE FUNCTION private.enqueue_played_setlist_lookups(max_jobs integer)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  r record;
  queued integer := 0;
  first_offset interval := (private.played_setlist_retry_offsets())[1];
begin
  for r in
    select s.id
      from public.shows s
      join public.venues v on v.id = s.venue_id
      left join private.played_setlist_lookups l on l.show_id = s.id
     where s.local_date between current_date - 30 and current_date
       and s.status in ('scheduled', 'rescheduled')
       and case when l.show_id is null
                then private.voting_closes_at(s.starts_at, s.local_date, s.local_time, v.timezone)
                     + first_offset <= now()
                else l.next_attempt_at <= now() end
       and exists (select 1 from public.artist_external_ids x
                    where x.artist_id = s.artist_id and x.source = 'musicbrainz')
       and not exists (select 1 from private.sync_pending_jobs p
                        where p.job_kind = 'played_setlist' and p.entity_id = s.id)
     order by s.local_date desc, s.starts_at desc nulls last, s.id
     limit greatest(max_jobs, 0)
  loop
    if private.enqueue_sync_job('played_setlist', r.id) is not null then
      queued := queued + 1;
    end if;
  end loop;
  return queued;
end;
$function$;

CREATE OR REPLACE FUNCTION private.enqueue_popularity_refresh()
 RETURNS bigint
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  select private.enqueue_sync_job('artist_popularity', '00000000-0000-0000-0000-000000000000')
$function$;

CREATE OR REPLACE FUNCTION private.enqueue_stale_artist_jobs(job_kind text, max_jobs integer)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  r record;
  queued integer := 0;
begin
  if job_kind not in ('artist_details', 'artist_shows', 'artist_live_history') then
    raise exception 'no stale-artist schedule for %', job_kind using errcode = '22023';
  end if;
  for r in
    select a.id
      from public.artists a
      left join private.sync_state st
        on st.job_kind = enqueue_stale_artist_jobs.job_kind and st.entity_id = a.id
      left join lateral (
        select min(s.local_date) as next_show
          from public.shows s
         where s.artist_id = a.id and s.local_date >= current_date
           and s.status in ('scheduled', 'postponed', 'rescheduled')) ns on true
     where (enqueue_stale_artist_jobs.job_kind <> 'artist_shows'
            or exists (select 1 from public.artist_external_ids x
                        where x.artist_id = a.id and x.source = 'ticketmaster'))
       and (enqueue_stale_artist_jobs.job_kind <> 'artist_live_history'
            or (ns.next_show is not null
                and exists (select 1 from public.artist_external_ids x
                             where x.artist_id = a.id and x.source = 'musicbrainz')))
       and (st.next_due_at is null or st.next_due_at <= now())
       and not exists (select 1 from private.sync_pending_jobs p
                        where p.job_kind = enqueue_stale_artist_jobs.job_kind
                          and p.entity_id = a.id)
     order by ns.next_show nulls last, st.next_due_at nulls first, a.id
     limit greatest(max_jobs, 0)
  loop
    if private.enqueue_sync_job(enqueue_stale_artist_jobs.job_kind, r.id) is not null then
      queued := queued + 1;
    end if;
  end loop;
  return queued;
end;
$function$;

CREATE OR REPLACE FUNCTION private.enqueue_sync_job(job_kind text, entity_id uuid, options jsonb DEFAULT '{}'::jsonb, delay_seconds integer DEFAULT 0)
 RETURNS bigint
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
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

  insert into private.sync_pending_jobs as p (job_kind, entity_id, options)
  values (enqueue_sync_job.job_kind, enqueue_sync_job.entity_id, opts)
  on conflict on constraint sync_pending_jobs_pkey do nothing;

  if not found then
    -- Already pending: lock it, and make sure its message still exists (a
    -- queue purged by hand must not block this job forever).
    select p.msg_id into pending_msg_id
      from private.sync_pending_jobs p
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
      update private.sync_pending_jobs p
         set options = p.options || opts,
             rerun = p.rerun or coalesce(in_flight, false)
       where p.job_kind = enqueue_sync_job.job_kind and p.entity_id = enqueue_sync_job.entity_id
         and ((p.options || opts) is distinct from p.options
              or (coalesce(in_flight, false) and not p.rerun));
      return null;
    end if;
    if not pending_found then
      -- The pending row went away between our insert and select: try again.
      insert into private.sync_pending_jobs (job_kind, entity_id, options)
      values (enqueue_sync_job.job_kind, enqueue_sync_job.entity_id, opts)
      on conflict on constraint sync_pending_jobs_pkey do nothing;
      if not found then
        return null;
      end if;
    else
      update private.sync_pending_jobs p
         set options = p.options || opts, rerun = false, enqueued_at = now()
       where p.job_kind = enqueue_sync_job.job_kind and p.entity_id = enqueue_sync_job.entity_id;
    end if;
  end if;

  select s into new_msg_id from pgmq.send(
    'sync',
    jsonb_build_object('kind', enqueue_sync_job.job_kind, 'entity_id', enqueue_sync_job.entity_id,
                       'options', opts),
    greatest(coalesce(delay_seconds, 0), 0)) s;
  update private.sync_pending_jobs p set msg_id = new_msg_id
   where p.job_kind = enqueue_sync_job.job_kind and p.entity_id = enqueue_sync_job.entity_id;
  return new_msg_id;
end;
$function$;

CREATE OR REPLACE FUNCTION private.enqueue_sync_jobs(job_kind text, entity_ids uuid[])
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
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
     where not exists (select 1 from private.sync_pending_jobs as p
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
      insert into private.sync_pending_jobs as p (job_kind, entity_id, msg_id)
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
    if private.enqueue_sync_job(enqueue_sync_jobs.job_kind, entity) is not null then
      queued := queued + 1;
    end if;
  end loop;

  return queued;
end;
$function$;

CREATE OR REPLACE FUNCTION private.exact_vote_count(entry setlist_songs)
 RETURNS integer
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
begin
  return (select coalesce(sum(t.votes), 0)::integer
            from private.vote_tallies t
           where t.setlist_song_id = entry.id);
end;
$function$;

CREATE OR REPLACE FUNCTION private.flush_vote_broadcasts(every interval DEFAULT '00:00:01'::interval)
 RETURNS TABLE(setlist_id uuid, version bigint, songs integer)
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  window_start timestamptz;
  changed uuid[];
begin
  if every is null or every <= interval '0' then
    raise exception 'every must be a positive interval' using errcode = '22023';
  end if;
  -- One flush at a time: a second one now would only find nothing to do.
  if not pg_try_advisory_xact_lock(hashtextextended('flush_vote_broadcasts', 0)) then
    return;
  end if;
  window_start := date_bin(every, now(), timestamptz '2000-01-01 00:00:00+00');

  -- Clear the dirty slots of setlists due for a message. A slot a vote holds
  -- right now is skipped: it is dirty when that vote commits.
  with due as (
    select t.setlist_song_id, t.slot
      from private.vote_tallies t
      join public.setlist_songs ss on ss.id = t.setlist_song_id
      left join private.vote_broadcasts b on b.setlist_id = ss.setlist_id
     where t.dirty and (b.sent_at is null or b.sent_at < window_start)
       for update of t skip locked
  ), cleared as (
    update private.vote_tallies t
       set dirty = false
      from due
     where t.setlist_song_id = due.setlist_song_id and t.slot = due.slot
    returning t.setlist_song_id
  )
  select array_agg(distinct cleared.setlist_song_id) into changed from cleared;
  if changed is null then
    return;
  end if;

  -- A new snapshot: the sums include every slot cleared above.
  return query
  with counted as (
    update public.setlist_songs ss
       set vote_count = private.exact_vote_count(ss)
     where ss.id = any(changed)
    returning ss.setlist_id, ss.id, ss.vote_count
  ), per_setlist as (
    select c.setlist_id,
           jsonb_agg(jsonb_build_object('setlist_song_id', c.id, 'vote_count', c.vote_count)
                     order by c.id) as vote_counts,
           count(*)::integer as songs
      from counted c
     group by c.setlist_id
  ), versioned as (
    insert into private.vote_broadcasts as b (setlist_id, version, sent_at)
    select p.setlist_id, 1, now() from per_setlist p
    on conflict on constraint vote_broadcasts_pkey
      do update set version = b.version + 1, sent_at = excluded.sent_at
    returning b.setlist_id, b.version
  )
  select v.setlist_id, v.version, p.songs
    from versioned v
    join per_setlist p on p.setlist_id = v.setlist_id
    cross join lateral (
      select realtime.send(
        jsonb_build_object('setlist_id', v.setlist_id, 'version', v.version,
                           'vote_counts', p.vote_counts),
        'vote_counts', 'setlist:' || v.setlist_id::text, true)) sent;
end;
$function$;

CREATE OR REPLACE FUNCTION public.get_artist_page(artist_id uuid)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
declare
  page jsonb;
begin
  select jsonb_build_object(
           'artist', jsonb_build_object(
             'id', a.id, 'name', a.name, 'image_url', a.image_url,
             'genres', to_jsonb(a.genres), 'popularity', a.popularity,
             'followers', a.followers, 'spotify_url', a.spotify_url,
             'ticketmaster_url', a.ticketmaster_url),
           'upcoming_shows', coalesce((
             select jsonb_agg(jsonb_build_object(
                      'id', u.id, 'name', u.name, 'local_date', u.local_date,
                      'local_time', u.local_time, 'starts_at', u.starts_at,
                      'status', u.status, 'ticket_url', u.ticket_url,
                      'venue', jsonb_build_object(
                        'id', u.venue_id, 'name', u.venue_name, 'city', u.city,
                        'state_code', u.state_code, 'country_code', u.country_code))
                    order by u.local_date, u.local_time nulls last, u.id)
               from (select s.id, s.name, s.local_date, s.local_time, s.starts_at, s.status,
                            s.ticket_url, v.id as venue_id, v.name as venue_name, v.city,
                            v.state_code, v.country_code
                       from public.shows s
                       join public.venues v on v.id = s.venue_id
                      where s.artist_id = a.id
                        and s.local_date >= current_date
                        and s.status <> 'removed'
                      order by s.local_date, s.local_time nulls last, s.id
                      limit 200) u), '[]'::jsonb),
           'past_shows', coalesce((
             select jsonb_agg(jsonb_build_object(
                      'id', p.id, 'name', p.name, 'local_date', p.local_date,
                      'status', p.status,
                      'venue', jsonb_build_object(
                        'id', p.venue_id, 'name', p.venue_name, 'city', p.city,
                        'state_code', p.state_code, 'country_code', p.country_code),
                      'played', private.played_setlist_status(p.id),
                      'accuracy', private.show_setlist_accuracy(p.id))
                    order by p.local_date desc, p.id)
               from (select s.id, s.name, s.local_date, s.status, v.id as venue_id,
                            v.name as venue_name, v.city, v.state_code, v.country_code
                       from public.shows s
                       join public.venues v on v.id = s.venue_id
                      where s.artist_id = a.id
                        and s.local_date < current_date
                        and s.status <> 'removed'
                      order by s.local_date desc, s.id
                      limit 20) p), '[]'::jsonb),
           'accuracy', (
             select case when count(*) = 0 then null else jsonb_build_object(
                      'shows', count(*),
                      'hits', sum((x.acc ->> 'hits')::integer),
                      'precision', round(avg((x.acc ->> 'precision')::numeric), 4),
                      'recall', round(avg((x.acc ->> 'recall')::numeric), 4)) end
               from (select private.show_setlist_accuracy(s.id) as acc
                       from public.shows s
                      where s.artist_id = a.id
                        and s.local_date < current_date
                        and s.status <> 'removed'
                        and exists (select 1 from public.setlists sl
                                     where sl.show_id = s.id and sl.kind = 'actual')) x
              where x.acc is not null))
    into page
    from public.artists a
   where a.id = get_artist_page.artist_id;
  if page is null then
    raise exception 'no such artist' using errcode = 'P0002', hint = 'artist_not_found';
  end if;
  return page;
end;
$function$;

CREATE OR REPLACE FUNCTION public.get_show_page(show_id uuid)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
declare
  caller uuid := auth.uid();
  page jsonb;
  predicted uuid;
  broadcast_version bigint;
  my_votes jsonb := '[]'::jsonb;
  songs jsonb;
begin
  select jsonb_build_object(
           'show', jsonb_build_object(
             'id', s.id, 'name', s.name, 'local_date', s.local_date, 'local_time', s.local_time,
             'starts_at', s.starts_at, 'status', s.status, 'ticket_url', s.ticket_url,
             'image_url', s.image_url, 'on_sale_at', s.on_sale_at, 'price_min', s.price_min,
             'price_max', s.price_max, 'price_currency', s.price_currency),
           'artist', jsonb_build_object(
             'id', a.id, 'name', a.name, 'image_url', a.image_url, 'genres', to_jsonb(a.genres),
             'spotify_url', a.spotify_url, 'ticketmaster_url', a.ticketmaster_url),
           'venue', jsonb_build_object(
             'id', v.id, 'name', v.name, 'city', v.city, 'state', v.state,
             'state_code', v.state_code, 'country_code', v.country_code, 'country', v.country,
             'address', v.address, 'timezone', v.timezone, 'latitude', v.latitude,
             'longitude', v.longitude),
           'voting', jsonb_build_object(
             'open', s.status not in ('cancelled', 'removed')
                     and private.voting_closes_at(s.starts_at, s.local_date, s.local_time,
                                                 v.timezone) > now(),
             'closes_at', private.voting_closes_at(s.starts_at, s.local_date, s.local_time,
                                                  v.timezone),
             'votes_limit', private.votes_per_show_limit(),
             'songs_added_limit', private.songs_added_per_show_limit()))
    into page
    from public.shows s
    join public.artists a on a.id = s.artist_id
    join public.venues v on v.id = s.venue_id
   where s.id = get_show_page.show_id;
  if page is null then
    raise exception 'no such show' using errcode = 'P0002', hint = 'show_not_found';
  end if;

  select sl.id, coalesce(b.version, 0) into predicted, broadcast_version
    from public.setlists sl
    left join private.vote_broadcasts b on b.setlist_id = sl.id
   where sl.show_id = get_show_page.show_id and sl.kind = 'predicted';

  -- Only a signed-in caller touches votes (anon has no grant on the table).
  if caller is not null and predicted is not null then
    select coalesce(jsonb_agg(vo.setlist_song_id order by vo.created_at), '[]'::jsonb)
      into my_votes
      from public.votes vo
      join public.setlist_songs ss on ss.id = vo.setlist_song_id
     where vo.user_id = caller and ss.setlist_id = predicted;
  end if;

  if predicted is null then
    page := page || jsonb_build_object('predicted_setlist', null);
  else
    -- Exact counts (private.exact_vote_count), read in this statement's snapshot.
    select coalesce(jsonb_agg(jsonb_build_object(
             'setlist_song_id', c.id, 'song_id', so.id, 'title', so.title, 'album', so.album,
             'duration_ms', so.duration_ms, 'spotify_url', so.spotify_url,
             'position', c.position, 'vote_count', c.vote_count,
             'added_by_me', caller is not null and c.added_by is not distinct from caller,
             'voted', my_votes @> to_jsonb(c.id))
           order by c.vote_count desc, c.position), '[]'::jsonb)
      into songs
      from (select ss.id, ss.song_id, ss.position, ss.added_by,
                   private.exact_vote_count(ss) as vote_count
              from public.setlist_songs ss
             where ss.setlist_id = predicted) c
      join public.songs so on so.id = c.song_id;
    -- broadcast_version: the last 'vote_counts' message sent before this read;
    -- a client drops messages up to it (these counts are at least as new).
    page := page || jsonb_build_object('predicted_setlist', jsonb_build_object(
      'id', predicted, 'topic', 'setlist:' || predicted::text,
      'broadcast_version', broadcast_version, 'songs', songs));
  end if;

  page := page || jsonb_build_object(
    'my_votes', case when caller is null then null else my_votes end,
    'votes_used', case when caller is null then null else jsonb_array_length(my_votes) end);

  page := page || jsonb_build_object(
    'played', private.played_setlist(get_show_page.show_id),
    'accuracy', private.show_setlist_accuracy(get_show_page.show_id));
  return page;
end;
$function$;

CREATE OR REPLACE FUNCTION private.import_played_setlist(p_show_id uuid, p_setlist jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_artist uuid;
  v_setlist uuid;
  v_action text := 'created';
  new_rows jsonb;
  old_rows jsonb;
  old_meta record;
  v_source_id text := nullif(btrim(p_setlist ->> 'setlistfm_id'), '');
  v_version text := nullif(btrim(p_setlist ->> 'version_id'), '');
  v_url text := nullif(btrim(p_setlist ->> 'url'), '');
  v_updated timestamptz := (p_setlist ->> 'last_updated')::timestamptz;
  items jsonb := p_setlist -> 'songs';
begin
  select s.artist_id into v_artist from public.shows s where s.id = p_show_id;
  if not found then
    raise exception 'no such show' using errcode = 'P0002', hint = 'show_not_found';
  end if;
  if v_source_id is null or jsonb_typeof(items) <> 'array' or jsonb_array_length(items) = 0 then
    raise exception 'a played setlist needs its setlist.fm id and at least one song'
      using errcode = '22023';
  end if;

  with resolved as (
    select r.title_key, r.song_id from private.resolve_setlistfm_songs(v_artist, items) r),
  played as (
    select distinct on (r.song_id) r.song_id, i.ordinality as ord, i.value as item
      from jsonb_array_elements(items) with ordinality as i
      join resolved r on r.title_key = private.song_title_key(btrim(i.value ->> 'title'))
     order by r.song_id, i.ordinality)
  select jsonb_agg(jsonb_build_object(
           'position', p.position, 'song_id', p.song_id,
           'set_number', (p.item ->> 'set_number')::smallint,
           'set_name', nullif(btrim(p.item ->> 'set_name'), ''),
           'encore', nullif((p.item ->> 'encore')::smallint, 0),
           'is_cover', coalesce((p.item ->> 'is_cover')::boolean, false),
           'cover_artist_name', nullif(btrim(p.item ->> 'cover_artist_name'), ''),
           'cover_artist_mbid', nullif(btrim(p.item ->> 'cover_artist_mbid'), ''),
           'info', nullif(btrim(p.item ->> 'info'), ''))
         order by p.position)
    into new_rows
    from (select pl.*, row_number() over (order by pl.ord)::integer as position
            from played pl) p;

  insert into public.setlists (show_id, kind, source_id, source_url, source_version_id,
                               source_updated_at)
  values (p_show_id, 'actual', v_source_id, v_url, v_version, v_updated)
  on conflict on constraint setlists_one_per_kind do nothing
  returning id into v_setlist;

  if v_setlist is null then
    -- Stored before (or by a concurrent import, committed: our insert waited).
    select sl.id, sl.source_id, sl.source_url, sl.source_version_id, sl.source_updated_at
      into old_meta
      from public.setlists sl
     where sl.show_id = p_show_id and sl.kind = 'actual'
       for update;
    v_setlist := old_meta.id;
    select coalesce(jsonb_agg(jsonb_build_object(
             'position', ss.position, 'song_id', ss.song_id, 'set_number', ss.set_number,
             'set_name', ss.set_name, 'encore', ss.encore, 'is_cover', ss.is_cover,
             'cover_artist_name', ss.cover_artist_name,
             'cover_artist_mbid', ss.cover_artist_mbid, 'info', ss.info)
           order by ss.position), '[]'::jsonb)
      into old_rows
      from public.setlist_songs ss
     where ss.setlist_id = v_setlist;
    if old_rows = new_rows
       and (old_meta.source_id, old_meta.source_url, old_meta.source_version_id,
            old_meta.source_updated_at)
           is not distinct from (v_source_id, v_url, v_version, v_updated) then
      return jsonb_build_object('setlist_id', v_setlist, 'action', 'unchanged',
                                'songs', jsonb_array_length(new_rows));
    end if;
    v_action := 'updated';
    update public.setlists sl
       set source_id = v_source_id, source_url = v_url, source_version_id = v_version,
           source_updated_at = v_updated
     where sl.id = v_setlist;
    -- Played setlists carry no votes: an edit replaces their songs.
    delete from public.setlist_songs ss where ss.setlist_id = v_setlist;
  end if;

  insert into public.setlist_songs (setlist_id, song_id, position, set_number, set_name, encore,
                                    is_cover, cover_artist_name, cover_artist_mbid, info)
  select v_setlist, (r ->> 'song_id')::uuid, (r ->> 'position')::integer,
         (r ->> 'set_number')::smallint, r ->> 'set_name', (r ->> 'encore')::smallint,
         (r ->> 'is_cover')::boolean, r ->> 'cover_artist_name', r ->> 'cover_artist_mbid',
         r ->> 'info'
    from jsonb_array_elements(new_rows) r;

  return jsonb_build_object('setlist_id', v_setlist, 'action', v_action,
                            'songs', jsonb_array_length(new_rows));
end;
$function$;

CREATE OR REPLACE FUNCTION private.ingest_artist_lock_keys(batch jsonb)
 RETURNS text[]
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select private.artist_lock_keys(
           array_agg(x.source), array_agg(x.external_id),
           array(select private.name_key(i.name) from private.ingest_artist_rows(batch) as i))
    from private.ingest_external_ids(batch) as x
$function$;

CREATE OR REPLACE FUNCTION private.ingest_artist_rows(batch jsonb)
 RETURNS TABLE(ord integer, name text, image_url text, genres text[], popularity smallint, followers integer, ticketmaster_url text, spotify_url text)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select t.ordinality::integer,
         nullif(pg_catalog.btrim(t.value ->> 'name'), ''),
         t.value ->> 'image_url',
         -- "no genres" from a source means "unknown"
         nullif(array(select pg_catalog.jsonb_array_elements_text(
                               coalesce(t.value -> 'genres', '[]'::jsonb))), '{}'),
         (t.value ->> 'popularity')::smallint,
         (t.value ->> 'followers')::integer,
         t.value ->> 'ticketmaster_url',
         t.value ->> 'spotify_url'
    from pg_catalog.jsonb_array_elements(batch) with ordinality as t
$function$;

CREATE OR REPLACE FUNCTION private.ingest_artists(batch jsonb, mode text DEFAULT 'replace'::text)
 RETURNS TABLE(ord integer, artist_id uuid, action text)
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
#variable_conflict use_column
declare
  bad record;
  items private.ingest_artist_item[];
  name_keys text[];
  id_ords integer[];
  id_sources text[];
  id_values text[];
  pending integer[];
  round_ords integer[];
  round_ids uuid[];
  round_new boolean[];
  touched uuid[];
  to_merge bigint;
  out_ords integer[] := '{}';
  out_ids uuid[] := '{}';
  out_actions text[] := '{}';
  rounds integer := 0;
begin
  if mode is null or mode not in ('replace', 'fill') then
    raise exception 'mode must be replace or fill, got %', mode using errcode = '22023';
  end if;
  if batch is null or jsonb_typeof(batch) <> 'array' then
    raise exception 'batch must be a json array' using errcode = '22023';
  end if;

  select array_agg(x.ord), array_agg(x.source), array_agg(x.external_id)
    into id_ords, id_sources, id_values
    from private.ingest_external_ids(batch) as x;
  select array_agg(i.ord order by i.ord), array_agg(private.name_key(i.name) order by i.ord),
         array_agg(row(i.name, i.image_url, i.genres, i.popularity, i.followers,
                       i.ticketmaster_url, i.spotify_url)::private.ingest_artist_item order by i.ord)
    into pending, name_keys, items
    from private.ingest_artist_rows(batch) as i;

  select i.ord, i.name_key is null as nameless into bad
    from unnest(pending, name_keys) as i(ord, name_key)
   where i.name_key is null
      or exists (select 1 from unnest(id_ords, id_sources) as x(ord, source)
                  where x.ord = i.ord and x.source not in ('ticketmaster', 'spotify', 'musicbrainz'))
   order by i.ord
   limit 1;
  if bad.nameless then
    raise exception 'artist % has no name', bad.ord using errcode = '22023';
  elsif bad.ord is not null then
    raise exception 'artist % has an unknown id source', bad.ord using errcode = '22023';
  end if;

  perform private.sync_lock_keys(private.artist_lock_keys(id_sources, id_values, name_keys));

  while cardinality(pending) > 0 loop
    rounds := rounds + 1;
    if rounds > cardinality(name_keys) + 1 then
      raise exception 'ingest_artists made no progress' using errcode = 'XX000';
    end if;

    with ids as (
      select x.ord, x.source, x.external_id
        from unnest(id_ords, id_sources, id_values) as x(ord, source, external_id)
       where x.ord in (select unnest(pending))
    ), item as (
      select p.ord, name_keys[p.ord] as name_key, coalesce(s.sources, '{}') as sources
        from unnest(pending) as p(ord)
        left join (select ids.ord, array_agg(distinct ids.source) as sources
                     from ids group by ids.ord) as s on s.ord = p.ord
    ), by_id as (
      select ids.ord, m.artist_id, m.source, m.external_id
        from ids
        join public.artist_external_ids as m
          on m.source = ids.source and m.external_id = ids.external_id
    ), by_name as (
      select item.ord, item.sources, a.id as artist_id, a.created_at
        from item
        join public.artists as a on a.name_key = item.name_key
    ), candidate as (
      -- 1. Any known external id (one-to-one sources first).
      (select distinct on (b.ord) b.ord, b.artist_id, 1 as step
         from by_id as b
        order by b.ord, array_position(array['spotify', 'musicbrainz', 'ticketmaster'], b.source),
                 b.external_id)
      union all
      -- 2. The natural key: same name, and no source in which both the input
      --    and the artist have ids without sharing one (two bands of one name
      --    on Ticketmaster, with different attraction ids, stay two artists).
      --    Step 1 found no shared id, so: no source in which both have ids.
      (select distinct on (n.ord) n.ord, n.artist_id, 2
         from by_name as n
        where not exists (
                select 1
                  from public.artist_external_ids as m
                 where m.artist_id = n.artist_id and m.source = any (n.sources))
        order by n.ord, n.created_at, n.artist_id)
    ), resolved as (
      select distinct on (c.ord) c.ord, c.artist_id from candidate as c order by c.ord, c.step
    ), keyed as (
      select item.ord, 'name:' || item.name_key as key from item
      union all select ids.ord, ids.source || ':' || ids.external_id from ids
      union all select b.ord, 'row:' || b.artist_id from by_id as b
      union all select n.ord, 'row:' || n.artist_id from by_name as n
    ), round as (
      select unnest(private.ingest_round(array_agg(k.ord), array_agg(k.key))) as ord from keyed as k
    )
    select array_agg(r.ord order by r.ord),
           array_agg(coalesce(v.artist_id, gen_random_uuid()) order by r.ord),
           array_agg(v.artist_id is null order by r.ord),
           -- Ids to merge: unknown, or known for another row. None (an unchanged
           -- batch): the merge statement is skipped.
           (select count(*) from ids
              left join by_id as b
                on b.ord = ids.ord and b.source = ids.source and b.external_id = ids.external_id
              left join resolved as w on w.ord = ids.ord
             where b.artist_id is null or b.artist_id is distinct from w.artist_id)
      into round_ords, round_ids, round_new, to_merge
      from round as r
      left join resolved as v on v.ord = r.ord;

    if true = any (round_new) then
      insert into public.artists (id, name, image_url, genres, popularity, followers,
                                  ticketmaster_url, spotify_url)
      select r.id, i.name, i.image_url, coalesce(i.genres, '{}'), i.popularity, i.followers,
             i.ticketmaster_url, i.spotify_url
        from unnest(round_ords, round_ids, round_new) as r(ord, id, is_new)
        join unnest(items) with ordinality as i on i.ordinality = r.ord
       where r.is_new;
    end if;

    -- 'replace' (authoritative details: the artist import) sets every column
    -- the input knows; 'fill' (artists embedded in events) only fills
    -- columns that are still empty.
    touched := '{}';
    if false = any (round_new) then
      with changed as (
        update public.artists as a
           set name = n.name, image_url = n.image_url, genres = n.genres,
               popularity = n.popularity, followers = n.followers,
               ticketmaster_url = n.ticketmaster_url, spotify_url = n.spotify_url
          from (select r.id,
                       case when mode = 'replace' then i.name else c.name end as name,
                       case when mode = 'replace' then coalesce(i.image_url, c.image_url)
                            else coalesce(c.image_url, i.image_url) end as image_url,
                       case when mode = 'replace' or cardinality(c.genres) = 0
                            then coalesce(i.genres, c.genres) else c.genres end as genres,
                       case when mode = 'replace' then coalesce(i.popularity, c.popularity)
                            else coalesce(c.popularity, i.popularity) end as popularity,
                       case when mode = 'replace' then coalesce(i.followers, c.followers)
                            else coalesce(c.followers, i.followers) end as followers,
                       case when mode = 'replace' then coalesce(i.ticketmaster_url, c.ticketmaster_url)
                            else coalesce(c.ticketmaster_url, i.ticketmaster_url) end
                         as ticketmaster_url,
                       case when mode = 'replace' then coalesce(i.spotify_url, c.spotify_url)
                            else coalesce(c.spotify_url, i.spotify_url) end as spotify_url
                  from unnest(round_ords, round_ids, round_new) as r(ord, id, is_new)
                  join unnest(items) with ordinality as i on i.ordinality = r.ord
                  join public.artists as c on c.id = r.id
                 where not r.is_new) as n
         where a.id = n.id
           and (a.name, a.image_url, a.genres, a.popularity, a.followers, a.ticketmaster_url,
                a.spotify_url)
               is distinct from
               (n.name, n.image_url, n.genres, n.popularity, n.followers, n.ticketmaster_url,
                n.spotify_url)
        returning a.id
      )
      select array(select changed.id from changed) into touched;
    end if;

    if to_merge > 0 then
      with merged as (
        -- Ids from a new source join the entity; an id owned by another artist stays there.
        insert into public.artist_external_ids (source, external_id, artist_id)
        select x.source, x.external_id, r.id
          from unnest(id_ords, id_sources, id_values) as x(ord, source, external_id)
          join unnest(round_ords, round_ids) as r(ord, id) on r.ord = x.ord
         order by x.source, x.external_id
        on conflict on constraint artist_external_ids_pkey do nothing
        returning artist_id
      )
      select touched || array(select merged.artist_id from merged) into touched;
    end if;

    out_ords := out_ords || round_ords;
    out_ids := out_ids || round_ids;
    out_actions := out_actions || array(
      select case when r.is_new then 'created'
                  when t.id is not null then 'updated'
                  else 'unchanged' end
        from unnest(round_ords, round_ids, round_new) with ordinality as r(ord, id, is_new, n)
        left join (select distinct t.id from unnest(touched) as t(id)) as t on t.id = r.id
       order by r.n);
    pending := array(select unnest(pending) except select unnest(round_ords) order by 1);
  end loop;

  return query
    select o.ord, o.id, o.action from unnest(out_ords, out_ids, out_actions) as o(ord, id, action)
     order by o.ord;
end;
$function$;

CREATE OR REPLACE FUNCTION private.ingest_external_ids(batch jsonb)
 RETURNS TABLE(ord integer, source text, external_id text)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select distinct i.ordinality::integer, e ->> 'source', pg_catalog.btrim(e ->> 'id')
    from pg_catalog.jsonb_array_elements(batch) with ordinality as i,
         pg_catalog.jsonb_array_elements(coalesce(i.value -> 'external_ids', '[]'::jsonb)) as e
   where nullif(pg_catalog.btrim(e ->> 'id'), '') is not null
$function$;

CREATE OR REPLACE FUNCTION private.ingest_live_history(p_artist_id uuid, p_setlists jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  all_songs jsonb;
  n_setlists integer;
  n_songs integer;
begin
  if not exists (select 1 from public.artists a where a.id = p_artist_id) then
    raise exception 'no such artist' using errcode = 'P0002', hint = 'artist_not_found';
  end if;
  if p_setlists is null or jsonb_typeof(p_setlists) <> 'array' then
    raise exception 'setlists must be a json array' using errcode = '22023';
  end if;
  n_setlists := jsonb_array_length(p_setlists);
  select coalesce(jsonb_agg(song), '[]'::jsonb) into all_songs
    from jsonb_array_elements(p_setlists) sl, jsonb_array_elements(sl -> 'songs') song;

  insert into private.artist_live_history as h (artist_id, setlists_counted, newest_event_date,
                                               oldest_event_date)
  select p_artist_id, n_setlists, max((sl ->> 'event_date')::date),
         min((sl ->> 'event_date')::date)
    from jsonb_array_elements(p_setlists) sl
  on conflict (artist_id) do update
    set setlists_counted = excluded.setlists_counted,
        newest_event_date = excluded.newest_event_date,
        oldest_event_date = excluded.oldest_event_date
  where (h.setlists_counted, h.newest_event_date, h.oldest_event_date)
        is distinct from (excluded.setlists_counted, excluded.newest_event_date,
                          excluded.oldest_event_date);

  perform private.resolve_setlistfm_songs(p_artist_id, all_songs);

  with plays as (
    select so.id as song_id, count(distinct sl ->> 'setlistfm_id')::integer as plays,
           max((sl ->> 'event_date')::date) as last_played_on
      from jsonb_array_elements(p_setlists) sl
     cross join jsonb_array_elements(sl -> 'songs') song
      join public.songs so
        on so.artist_id = p_artist_id
       and so.title_key = private.song_title_key(btrim(song ->> 'title'))
     group by so.id),
  gone as (
    delete from private.artist_live_songs ls
     where ls.artist_id = p_artist_id
       and not exists (select 1 from plays p where p.song_id = ls.song_id)),
  upserted as (
    insert into private.artist_live_songs as ls (artist_id, song_id, plays, last_played_on)
    select p_artist_id, p.song_id, p.plays, p.last_played_on from plays p
    on conflict (artist_id, song_id) do update
      set plays = excluded.plays, last_played_on = excluded.last_played_on
    where (ls.plays, ls.last_played_on)
          is distinct from (excluded.plays, excluded.last_played_on))
  select count(*)::integer into n_songs from plays;

  return jsonb_build_object('setlists', n_setlists, 'songs', n_songs);
end;
$function$;

CREATE OR REPLACE FUNCTION private.ingest_round(item_ords integer[], item_keys text[])
 RETURNS integer[]
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  with k as (
    select k.ord, k.key from unnest(item_ords, item_keys) as k(ord, key) where k.key is not null
  ), first as (
    select k.key, min(k.ord) as ord from k group by k.key
  )
  select coalesce(array_agg(k.ord order by k.ord), '{}')
    from (select k.ord from k join first as f on f.key = k.key
           group by k.ord having bool_and(f.ord = k.ord)) as k
$function$;

CREATE OR REPLACE FUNCTION private.ingest_show_lock_keys(batch jsonb)
 RETURNS text[]
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select private.show_lock_keys(
           array_agg(x.source), array_agg(x.external_id),
           array(select i.artist_id || '|' || i.venue_id || '|' || i.local_date
                   from private.ingest_show_rows(batch) as i))
    from private.ingest_external_ids(batch) as x
$function$;

CREATE OR REPLACE FUNCTION private.ingest_show_rows(batch jsonb)
 RETURNS TABLE(ord integer, artist_id uuid, venue_id uuid, local_date date, local_time time without time zone, starts_at timestamp with time zone, name text, status text, ticket_url text, image_url text, on_sale_at timestamp with time zone, price_min numeric, price_max numeric, price_currency text)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select p.ord, p.artist_id, p.venue_id, p.local_date, p.local_time, p.starts_at, p.name,
         p.status, p.ticket_url, p.image_url, p.on_sale_at,
         case when p.valid_prices then p.price_min end,
         case when p.valid_prices then p.price_max end,
         p.price_currency
    from (select t.ordinality::integer as ord,
                 (t.value ->> 'artist_id')::uuid as artist_id,
                 (t.value ->> 'venue_id')::uuid as venue_id,
                 (t.value ->> 'local_date')::date as local_date,
                 (t.value ->> 'local_time')::time as local_time,
                 (t.value ->> 'starts_at')::timestamptz as starts_at,
                 t.value ->> 'name' as name,
                 coalesce(t.value ->> 'status', 'scheduled') as status,
                 t.value ->> 'ticket_url' as ticket_url,
                 t.value ->> 'image_url' as image_url,
                 (t.value ->> 'on_sale_at')::timestamptz as on_sale_at,
                 (t.value ->> 'price_min')::numeric(10, 2) as price_min,
                 (t.value ->> 'price_max')::numeric(10, 2) as price_max,
                 not coalesce((t.value ->> 'price_min')::numeric(10, 2) < 0
                              or (t.value ->> 'price_max')::numeric(10, 2) < 0
                              or (t.value ->> 'price_min')::numeric(10, 2)
                                 > (t.value ->> 'price_max')::numeric(10, 2), false)
                   as valid_prices,
                 case when pg_catalog.upper(t.value ->> 'price_currency') ~ '^[A-Z]{3}$'
                      then pg_catalog.upper(t.value ->> 'price_currency') end as price_currency
            from pg_catalog.jsonb_array_elements(batch) with ordinality as t) as p
$function$;

CREATE OR REPLACE FUNCTION private.ingest_shows(batch jsonb)
 RETURNS TABLE(ord integer, show_id uuid, action text)
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
#variable_conflict use_column
declare
  bad integer;
  items private.ingest_show_item[];
  natural_keys text[];
  id_ords integer[];
  id_sources text[];
  id_values text[];
  pending integer[];
  round_ords integer[];
  round_ids uuid[];
  round_new boolean[];
  inserted uuid[];
  touched uuid[];
  to_merge bigint;
  out_ords integer[] := '{}';
  out_ids uuid[] := '{}';
  out_actions text[] := '{}';
  rounds integer := 0;
begin
  if batch is null or jsonb_typeof(batch) <> 'array' then
    raise exception 'batch must be a json array' using errcode = '22023';
  end if;

  select array_agg(x.ord), array_agg(x.source), array_agg(x.external_id)
    into id_ords, id_sources, id_values
    from private.ingest_external_ids(batch) as x;
  select array_agg(i.ord order by i.ord),
         array_agg(i.artist_id || '|' || i.venue_id || '|' || i.local_date order by i.ord),
         array_agg(row(i.artist_id, i.venue_id, i.local_date, i.local_time, i.starts_at, i.name,
                       i.status, i.ticket_url, i.image_url, i.on_sale_at, i.price_min,
                       i.price_max, i.price_currency,
                       i.artist_id || '|' || i.venue_id || '|' || i.local_date
                   )::private.ingest_show_item order by i.ord)
    into pending, natural_keys, items
    from private.ingest_show_rows(batch) as i;
  select min(k.ord) into bad from unnest(pending, natural_keys) as k(ord, key) where k.key is null;
  if bad is not null then
    raise exception 'show % needs artist_id, venue_id and local_date', bad using errcode = '22023';
  end if;

  perform private.sync_lock_keys(private.show_lock_keys(id_sources, id_values, natural_keys));

  while cardinality(pending) > 0 loop
    rounds := rounds + 1;
    if rounds > 2 * cardinality(natural_keys) + 1 then
      raise exception 'ingest_shows made no progress' using errcode = 'XX000';
    end if;

    with item as (
      select i.ordinality::integer as ord, i.artist_id, i.venue_id, i.local_date, i.natural_key
        from unnest(items) with ordinality as i
       where i.ordinality in (select unnest(pending))
    ), ids as (
      select x.ord, x.source, x.external_id
        from unnest(id_ords, id_sources, id_values) as x(ord, source, external_id)
       where x.ord in (select unnest(pending))
    ), by_key as (
      select item.ord, s.id as show_id
        from item
        join public.shows as s
          on s.artist_id = item.artist_id and s.venue_id = item.venue_id
         and s.local_date = item.local_date
    ), by_id as (
      select ids.ord, m.show_id, m.source, m.external_id
        from ids
        join public.show_external_ids as m
          on m.source = ids.source and m.external_id = ids.external_id
    ), resolved as (
      -- The concert we already hold on the natural key (an event that moved
      -- onto it is that concert), else an event id we know.
      select item.ord, coalesce(k.show_id, b.show_id) as show_id
        from item
        left join by_key as k on k.ord = item.ord
        left join (select distinct on (b.ord) b.ord, b.show_id from by_id as b
                    order by b.ord, b.source, b.external_id) as b on b.ord = item.ord
    ), keyed as (
      select item.ord, 'key:' || item.natural_key as key from item
      union all select ids.ord, ids.source || ':' || ids.external_id from ids
      union all select b.ord, 'row:' || b.show_id from by_id as b
      union all select k.ord, 'row:' || k.show_id from by_key as k
    ), round as (
      select unnest(private.ingest_round(array_agg(k.ord), array_agg(k.key))) as ord from keyed as k
    )
    select array_agg(r.ord order by r.ord),
           array_agg(coalesce(v.show_id, gen_random_uuid()) order by r.ord),
           array_agg(v.show_id is null order by r.ord),
           -- Ids to merge: unknown, or known for another row. None (an unchanged
           -- batch): the merge statement is skipped.
           (select count(*) from ids
              left join by_id as b
                on b.ord = ids.ord and b.source = ids.source and b.external_id = ids.external_id
              left join resolved as w on w.ord = ids.ord
             where b.show_id is null or b.show_id is distinct from w.show_id)
      into round_ords, round_ids, round_new, to_merge
      from round as r
      join resolved as v on v.ord = r.ord;

    if true = any (round_new) then
      with created as (
        insert into public.shows (id, artist_id, venue_id, local_date, local_time, starts_at, name,
                                  status, ticket_url, image_url, on_sale_at, price_min, price_max,
                                  price_currency)
        select r.id, i.artist_id, i.venue_id, i.local_date, i.local_time, i.starts_at, i.name,
               i.status, i.ticket_url, i.image_url, i.on_sale_at, i.price_min, i.price_max,
               i.price_currency
          from unnest(round_ords, round_ids, round_new) as r(ord, id, is_new)
          join unnest(items) with ordinality as i on i.ordinality = r.ord
         where r.is_new
        on conflict on constraint shows_natural_key do nothing
        returning id
      )
      select array(select created.id from created) into inserted;

      -- A new show whose natural key was taken after all waits for the next round.
      if cardinality(inserted) < cardinality(array_positions(round_new, true)) then
        select coalesce(array_agg(r.ord order by r.ord), '{}'),
               coalesce(array_agg(r.id order by r.ord), '{}'),
               coalesce(array_agg(r.is_new order by r.ord), '{}')
          into round_ords, round_ids, round_new
          from unnest(round_ords, round_ids, round_new) as r(ord, id, is_new)
         where not r.is_new or r.id in (select unnest(inserted));
      end if;
    end if;

    touched := '{}';
    if false = any (round_new) then
      with changed as (
        update public.shows as s
           set artist_id = n.artist_id, venue_id = n.venue_id, local_date = n.local_date,
               local_time = n.local_time, starts_at = n.starts_at, name = n.name,
               status = n.status, ticket_url = n.ticket_url, image_url = n.image_url,
               on_sale_at = n.on_sale_at, price_min = n.price_min, price_max = n.price_max,
               price_currency = n.price_currency
          from (select r.id, i.artist_id, i.venue_id, i.local_date, i.local_time, i.starts_at,
                       coalesce(i.name, c.name) as name,
                       i.status,
                       coalesce(i.ticket_url, c.ticket_url) as ticket_url,
                       coalesce(i.image_url, c.image_url) as image_url,
                       coalesce(i.on_sale_at, c.on_sale_at) as on_sale_at,
                       case when i.price_min is not null then i.price_min else c.price_min end
                         as price_min,
                       case when i.price_min is not null then i.price_max else c.price_max end
                         as price_max,
                       case when i.price_min is not null
                            then coalesce(i.price_currency, c.price_currency)
                            else c.price_currency end as price_currency
                  from unnest(round_ords, round_ids, round_new) as r(ord, id, is_new)
                  join unnest(items) with ordinality as i on i.ordinality = r.ord
                  join public.shows as c on c.id = r.id
                 where not r.is_new) as n
         where s.id = n.id
           and (s.artist_id, s.venue_id, s.local_date, s.local_time, s.starts_at, s.name,
                s.status, s.ticket_url, s.image_url, s.on_sale_at, s.price_min, s.price_max,
                s.price_currency)
               is distinct from
               (n.artist_id, n.venue_id, n.local_date, n.local_time, n.starts_at, n.name,
                n.status, n.ticket_url, n.image_url, n.on_sale_at, n.price_min, n.price_max,
                n.price_currency)
        returning s.id
      )
      select array(select changed.id from changed) into touched;
    end if;

    if to_merge > 0 then
      with merged as (
        insert into public.show_external_ids as x (source, external_id, show_id)
        select e.source, e.external_id, r.id
          from unnest(id_ords, id_sources, id_values) as e(ord, source, external_id)
          join unnest(round_ords, round_ids) as r(ord, id) on r.ord = e.ord
         order by e.source, e.external_id
        on conflict on constraint show_external_ids_pkey do update
          set show_id = excluded.show_id
          where x.show_id <> excluded.show_id
        returning x.show_id
      )
      select touched || array(select merged.show_id from merged) into touched;
    end if;

    out_ords := out_ords || round_ords;
    out_ids := out_ids || round_ids;
    out_actions := out_actions || array(
      select case when r.is_new then 'created'
                  when t.id is not null then 'updated'
                  else 'unchanged' end
        from unnest(round_ords, round_ids, round_new) with ordinality as r(ord, id, is_new, n)
        left join (select distinct t.id from unnest(touched) as t(id)) as t on t.id = r.id
       order by r.n);
    pending := array(select unnest(pending) except select unnest(round_ords) order by 1);
  end loop;

  return query
    select o.ord, o.id, o.action from unnest(out_ords, out_ids, out_actions) as o(ord, id, action)
     order by o.ord;
end;
$function$;

CREATE OR REPLACE FUNCTION private.ingest_song_lock_keys(p_artist_id uuid, batch jsonb)
 RETURNS text[]
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select array(
    select 'songs:' || p_artist_id::text
    union all
    select 'song:spotify:' || btrim(i ->> 'spotify_id')
      from jsonb_array_elements(batch) as i
     where nullif(btrim(i ->> 'spotify_id'), '') is not null)
$function$;

CREATE OR REPLACE FUNCTION private.ingest_song_rows(batch jsonb)
 RETURNS TABLE(ord integer, title text, title_key text, spotify_id text, spotify_url text, album text, album_spotify_id text, release_date date, duration_ms integer, isrc text, popularity smallint)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select t.ordinality::integer,
         nullif(pg_catalog.btrim(t.value ->> 'title'), ''),
         nullif(pg_catalog.btrim(private.song_title_key(
           nullif(pg_catalog.btrim(t.value ->> 'title'), ''))), ''),
         nullif(pg_catalog.btrim(t.value ->> 'spotify_id'), ''),
         t.value ->> 'spotify_url',
         t.value ->> 'album',
         t.value ->> 'album_spotify_id',
         (t.value ->> 'release_date')::date,
         nullif((t.value ->> 'duration_ms')::integer, 0),
         case when pg_catalog.upper(t.value ->> 'isrc') ~ '^[A-Z0-9]{12}$'
              then pg_catalog.upper(t.value ->> 'isrc') end,
         (t.value ->> 'popularity')::smallint
    from pg_catalog.jsonb_array_elements(batch) with ordinality as t
$function$;

CREATE OR REPLACE FUNCTION private.ingest_songs(p_artist_id uuid, batch jsonb)
 RETURNS TABLE(ord integer, song_id uuid, action text)
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
#variable_conflict use_column
declare
  bad integer;
  title_keys text[];
  pending integer[];
  round_ords integer[];
  round_ids uuid[];
  round_new boolean[];
  round_spotify text[];
  inserted uuid[];
  touched uuid[];
  out_ords integer[] := '{}';
  out_ids uuid[] := '{}';
  out_actions text[] := '{}';
  rounds integer := 0;
begin
  if p_artist_id is null then
    raise exception 'an artist is required' using errcode = '22023';
  end if;
  if batch is null or jsonb_typeof(batch) <> 'array' then
    raise exception 'batch must be a json array' using errcode = '22023';
  end if;

  select array_agg(i.ord order by i.ord),
         array_agg(case when i.title is not null then i.title_key end order by i.ord)
    into pending, title_keys
    from private.ingest_song_rows(batch) as i;
  select min(k.ord) into bad from unnest(pending, title_keys) as k(ord, key) where k.key is null;
  if bad is not null then
    raise exception 'song % needs a title', bad using errcode = '22023';
  end if;

  -- One catalogue import per artist at a time; one writer per track id.
  perform private.sync_lock_keys(private.ingest_song_lock_keys(p_artist_id, batch));

  while cardinality(pending) > 0 loop
    rounds := rounds + 1;
    if rounds > 2 * cardinality(title_keys) + 1 then
      raise exception 'ingest_songs made no progress' using errcode = 'XX000';
    end if;

    with item as (
      -- A track id credited to another artist's song stays with that song.
      select i.ord, i.title_key, i.spotify_id as given_spotify_id,
             case when not exists (select 1 from public.songs as s
                                    where s.spotify_id = i.spotify_id
                                      and s.artist_id <> p_artist_id)
                  then i.spotify_id end as spotify_id
        from private.ingest_song_rows(batch) as i
       where i.ord in (select unnest(pending))
    ), by_spotify as (
      select item.ord, s.id as song_id
        from item
        join public.songs as s on s.spotify_id = item.spotify_id
    ), by_title as (
      select item.ord, s.id as song_id
        from item
        join public.songs as s on s.artist_id = p_artist_id and s.title_key = item.title_key
    ), keyed as (
      select item.ord, 'title:' || item.title_key as key from item
      union all select item.ord, 'spotify:' || item.given_spotify_id from item
      union all select b.ord, 'row:' || b.song_id from by_spotify as b
      union all select b.ord, 'row:' || b.song_id from by_title as b
    ), round as (
      select unnest(private.ingest_round(array_agg(k.ord), array_agg(k.key))) as ord from keyed as k
    )
    select array_agg(r.ord order by r.ord),
           array_agg(coalesce(bs.song_id, bt.song_id, gen_random_uuid()) order by r.ord),
           array_agg(bs.song_id is null and bt.song_id is null order by r.ord),
           array_agg(item.spotify_id order by r.ord)
      into round_ords, round_ids, round_new, round_spotify
      from round as r
      join item on item.ord = r.ord
      left join by_spotify as bs on bs.ord = r.ord
      left join by_title as bt on bt.ord = r.ord;

    -- A conflict here is a title or track id written without the locks: the
    -- item waits for the next round, which finds that song (or, when the
    -- track id is another artist's, stores the song without it).
    if true = any (round_new) then
      with created as (
        insert into public.songs (id, artist_id, title, album, album_spotify_id,
                                  release_date, duration_ms, isrc, spotify_id, spotify_url,
                                  popularity)
        select r.id, p_artist_id, i.title, i.album, i.album_spotify_id,
               i.release_date, i.duration_ms, i.isrc, r.spotify_id, i.spotify_url, i.popularity
          from unnest(round_ords, round_ids, round_new, round_spotify)
                 as r(ord, id, is_new, spotify_id)
          join private.ingest_song_rows(batch) as i on i.ord = r.ord
         where r.is_new
        on conflict do nothing
        returning id
      )
      select array(select created.id from created) into inserted;

      select coalesce(array_agg(r.ord order by r.ord), '{}'),
             coalesce(array_agg(r.id order by r.ord), '{}'),
             coalesce(array_agg(r.is_new order by r.ord), '{}'),
             coalesce(array_agg(r.spotify_id order by r.ord), '{}')
        into round_ords, round_ids, round_new, round_spotify
        from unnest(round_ords, round_ids, round_new, round_spotify)
               as r(ord, id, is_new, spotify_id)
       where not r.is_new or r.id in (select unnest(inserted));
    end if;

    with changed as (
      update public.songs as s
         set title = n.title, album = n.album,
             album_spotify_id = n.album_spotify_id, release_date = n.release_date,
             duration_ms = n.duration_ms, isrc = n.isrc, spotify_id = n.spotify_id,
             spotify_url = n.spotify_url, popularity = n.popularity
        -- A title that is another song's (a song found by its track id, renamed
        -- to the title of another): the song keeps its own, its key with it.
        from (select r.id,
                     case when exists (select 1 from public.songs as o
                                        where o.artist_id = p_artist_id
                                          and o.title_key = i.title_key and o.id <> r.id)
                          then c.title else i.title end as title,
                     case when m.takes_spotify then r.spotify_id else c.spotify_id end
                       as spotify_id,
                     case when m.takes_spotify then coalesce(i.spotify_url, c.spotify_url)
                          else c.spotify_url end as spotify_url,
                     coalesce(i.album, c.album) as album,
                     coalesce(i.album_spotify_id, c.album_spotify_id) as album_spotify_id,
                     coalesce(i.release_date, c.release_date) as release_date,
                     coalesce(i.duration_ms, c.duration_ms) as duration_ms,
                     coalesce(i.isrc, c.isrc) as isrc,
                     coalesce(i.popularity, c.popularity) as popularity
                from unnest(round_ords, round_ids, round_new, round_spotify)
                       as r(ord, id, is_new, spotify_id)
                join private.ingest_song_rows(batch) as i on i.ord = r.ord
                join public.songs as c on c.id = r.id
                cross join lateral (
                  select r.spotify_id is not null
                         and not exists (select 1 from public.songs as o
                                          where o.spotify_id = r.spotify_id and o.id <> r.id)
                           as takes_spotify) as m
               where not r.is_new) as n
       where s.id = n.id
         and (s.title, s.album, s.album_spotify_id, s.release_date, s.duration_ms,
              s.isrc, s.spotify_id, s.spotify_url, s.popularity)
             is distinct from
             (n.title, n.album, n.album_spotify_id, n.release_date, n.duration_ms,
              n.isrc, n.spotify_id, n.spotify_url, n.popularity)
      returning s.id
    )
    select array(select changed.id from changed) into touched;

    out_ords := out_ords || round_ords;
    out_ids := out_ids || round_ids;
    out_actions := out_actions || array(
      select case when r.is_new then 'created'
                  when t.id is not null then 'updated'
                  else 'unchanged' end
        from unnest(round_ords, round_ids, round_new) with ordinality as r(ord, id, is_new, n)
        left join unnest(touched) as t(id) on t.id = r.id
       order by r.n);
    pending := array(select unnest(pending) except select unnest(round_ords) order by 1);
  end loop;

  if 'created' = any (out_actions) then
    perform private.queue_setlists_for_artist(p_artist_id);
  end if;

  return query
    select o.ord, o.id, o.action from unnest(out_ords, out_ids, out_actions) as o(ord, id, action)
     order by o.ord;
end;
$function$;

CREATE OR REPLACE FUNCTION private.ingest_venue_lock_keys(batch jsonb)
 RETURNS text[]
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select private.venue_lock_keys(x.sources, x.external_ids, v.name_keys, v.city_keys, v.countries)
    from (select array_agg(x.source) as sources, array_agg(x.external_id) as external_ids
            from private.ingest_external_ids(batch) as x) as x,
         (select array_agg(private.name_key(i.name)) as name_keys,
                 array_agg(private.name_key(i.city)) as city_keys,
                 array_agg(i.country_code) as countries
            from private.ingest_venue_rows(batch) as i) as v
$function$;

CREATE OR REPLACE FUNCTION private.ingest_venue_rows(batch jsonb)
 RETURNS TABLE(ord integer, name text, city_given text, city text, country_code text, state text, state_code text, country text, address text, postal_code text, timezone text, latitude numeric, longitude numeric)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select t.ordinality::integer,
         nullif(pg_catalog.btrim(t.value ->> 'name'), ''),
         nullif(pg_catalog.btrim(t.value ->> 'city'), ''),
         -- A venue without a city still needs one for its natural key.
         coalesce(nullif(pg_catalog.btrim(t.value ->> 'city'), ''), 'Unknown'),
         case when pg_catalog.upper(pg_catalog.btrim(t.value ->> 'country_code')) ~ '^[A-Z]{2}$'
              then pg_catalog.upper(pg_catalog.btrim(t.value ->> 'country_code')) end,
         t.value ->> 'state',
         t.value ->> 'state_code',
         t.value ->> 'country',
         t.value ->> 'address',
         t.value ->> 'postal_code',
         t.value ->> 'timezone',
         (t.value ->> 'latitude')::numeric(9, 6),
         (t.value ->> 'longitude')::numeric(9, 6)
    from pg_catalog.jsonb_array_elements(batch) with ordinality as t
$function$;

CREATE OR REPLACE FUNCTION private.ingest_venues(batch jsonb)
 RETURNS TABLE(ord integer, venue_id uuid, action text)
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
#variable_conflict use_column
declare
  bad record;
  items private.ingest_venue_item[];
  name_keys text[];
  city_keys text[];
  countries text[];
  cities_given boolean[];
  id_ords integer[];
  id_sources text[];
  id_values text[];
  pending integer[];
  round_ords integer[];
  round_ids uuid[];
  round_new boolean[];
  inserted uuid[];
  touched uuid[];
  to_merge bigint;
  out_ords integer[] := '{}';
  out_ids uuid[] := '{}';
  out_actions text[] := '{}';
  rounds integer := 0;
begin
  if batch is null or jsonb_typeof(batch) <> 'array' then
    raise exception 'batch must be a json array' using errcode = '22023';
  end if;

  select array_agg(x.ord), array_agg(x.source), array_agg(x.external_id)
    into id_ords, id_sources, id_values
    from private.ingest_external_ids(batch) as x;
  select array_agg(i.ord order by i.ord), array_agg(i.name_key order by i.ord),
         array_agg(i.city_key order by i.ord),
         array_agg(i.country_code order by i.ord), array_agg(i.city_given is not null order by i.ord),
         array_agg(row(i.name, i.city_given, i.city, i.country_code, i.state, i.state_code,
                       i.country, i.address, i.postal_code, i.timezone, i.latitude, i.longitude,
                       i.name_key, i.city_key)::private.ingest_venue_item order by i.ord)
    into pending, name_keys, city_keys, countries, cities_given, items
    from (select i.*, private.name_key(i.name) as name_key, private.name_key(i.city) as city_key
            from private.ingest_venue_rows(batch) as i
          offset 0) as i;  -- each key computed once

  select i.ord, i.name_key is null as nameless into bad
    from unnest(pending, name_keys) as i(ord, name_key)
   where i.name_key is null
      or exists (select 1 from unnest(id_ords, id_sources) as x(ord, source)
                  where x.ord = i.ord and x.source not in ('ticketmaster', 'setlistfm'))
   order by i.ord
   limit 1;
  if bad.nameless then
    raise exception 'venue % has no name', bad.ord using errcode = '22023';
  elsif bad.ord is not null then
    raise exception 'venue % has an unknown id source', bad.ord using errcode = '22023';
  end if;

  perform private.sync_lock_keys(
    private.venue_lock_keys(id_sources, id_values, name_keys, city_keys, countries));

  while cardinality(pending) > 0 loop
    rounds := rounds + 1;
    if rounds > 2 * cardinality(name_keys) + 1 then
      raise exception 'ingest_venues made no progress' using errcode = 'XX000';
    end if;

    with item as (
      select i.ordinality::integer as ord, i.name_key, i.city_key, i.country_code,
             i.city_given is not null as city_given
        from unnest(items) with ordinality as i
       where i.ordinality in (select unnest(pending))
    ), ids as (
      select x.ord, x.source, x.external_id
        from unnest(id_ords, id_sources, id_values) as x(ord, source, external_id)
       where x.ord in (select unnest(pending))
    ), by_id as (
      select ids.ord, m.venue_id, m.source, m.external_id
        from ids
        join public.venue_external_ids as m
          on m.source = ids.source and m.external_id = ids.external_id
    ), by_key as (
      select item.ord, v.id as venue_id
        from item
        join public.venues as v
          on v.name_key = item.name_key and v.city_key = item.city_key
         and v.country_code is not distinct from item.country_code
    ), resolved as (
      select item.ord, coalesce(b.venue_id, k.venue_id) as venue_id
        from item
        left join (select distinct on (b.ord) b.ord, b.venue_id from by_id as b
                    order by b.ord, b.source, b.external_id) as b on b.ord = item.ord
        left join by_key as k on k.ord = item.ord
    ), keyed as (
      select item.ord, 'key:' || item.name_key || '|' || item.city_key || '|'
                       || coalesce(item.country_code, '') as key
        from item
      union all select ids.ord, ids.source || ':' || ids.external_id from ids
      union all select b.ord, 'row:' || b.venue_id from by_id as b
      union all select k.ord, 'row:' || k.venue_id from by_key as k
      -- The natural keys a rename of the venue found would check and write.
      union all
      select item.ord, 'key:' || item.name_key || '|'
                       || case when item.city_given then item.city_key else c.city_key end || '|'
                       || coalesce(item.country_code, c.country_code, '')
        from item
        join resolved as v on v.ord = item.ord
        join public.venues as c on c.id = v.venue_id
      union all
      select item.ord, 'key:' || item.name_key || '|' || item.city_key || '|'
                       || coalesce(item.country_code, c.country_code, '')
        from item
        join resolved as v on v.ord = item.ord
        join public.venues as c on c.id = v.venue_id
    ), round as (
      select unnest(private.ingest_round(array_agg(k.ord), array_agg(k.key))) as ord from keyed as k
    )
    select array_agg(r.ord order by r.ord),
           array_agg(coalesce(v.venue_id, gen_random_uuid()) order by r.ord),
           array_agg(v.venue_id is null order by r.ord),
           -- Ids to merge: unknown, or known for another row. None (an unchanged
           -- batch): the merge statement is skipped.
           (select count(*) from ids
              left join by_id as b
                on b.ord = ids.ord and b.source = ids.source and b.external_id = ids.external_id
              left join resolved as w on w.ord = ids.ord
             where b.venue_id is null or b.venue_id is distinct from w.venue_id)
      into round_ords, round_ids, round_new, to_merge
      from round as r
      join resolved as v on v.ord = r.ord;

    if true = any (round_new) then
      with created as (
        insert into public.venues (id, name, city, state, state_code, country_code, country,
                                   address, postal_code, timezone, latitude, longitude)
        select r.id, i.name, i.city, i.state, i.state_code, i.country_code, i.country, i.address,
               i.postal_code, i.timezone, i.latitude, i.longitude
          from unnest(round_ords, round_ids, round_new) as r(ord, id, is_new)
          join unnest(items) with ordinality as i on i.ordinality = r.ord
         where r.is_new
        on conflict on constraint venues_natural_key do nothing
        returning id
      )
      select array(select created.id from created) into inserted;

      -- A new venue whose natural key was taken after all waits for the next round.
      select coalesce(array_agg(r.ord order by r.ord), '{}'),
             coalesce(array_agg(r.id order by r.ord), '{}'),
             coalesce(array_agg(r.is_new order by r.ord), '{}')
        into round_ords, round_ids, round_new
        from unnest(round_ords, round_ids, round_new) as r(ord, id, is_new)
       where not r.is_new or r.id in (select unnest(inserted));
    end if;

    touched := '{}';
    if false = any (round_new) then
      with changed as (
        update public.venues as v
           set name = n.name, city = n.city, state = n.state, state_code = n.state_code,
               country_code = n.country_code, country = n.country, address = n.address,
               postal_code = n.postal_code, timezone = n.timezone, latitude = n.latitude,
               longitude = n.longitude
          from (select r.id,
                       case when m.renames then i.name else c.name end as name,
                       case when m.renames then coalesce(i.city_given, c.city) else c.city end
                         as city,
                       case when m.renames then coalesce(i.country_code, c.country_code)
                            else c.country_code end as country_code,
                       coalesce(i.state, c.state) as state,
                       coalesce(i.state_code, c.state_code) as state_code,
                       coalesce(i.country, c.country) as country,
                       coalesce(i.address, c.address) as address,
                       coalesce(i.postal_code, c.postal_code) as postal_code,
                       coalesce(i.timezone, c.timezone) as timezone,
                       coalesce(i.latitude, c.latitude) as latitude,
                       coalesce(i.longitude, c.longitude) as longitude
                  from unnest(round_ords, round_ids, round_new) as r(ord, id, is_new)
                  join unnest(items) with ordinality as i on i.ordinality = r.ord
                  join public.venues as c on c.id = r.id
                  -- Renames move the natural key: only when no other venue holds the new one
                  -- (none does when the key stays the venue's own: it is unique).
                  cross join lateral (
                    select case
                             when (i.name_key, i.city_key, coalesce(i.country_code, c.country_code))
                                  is not distinct from (c.name_key, c.city_key, c.country_code)
                             then true
                             else not exists (
                                    select 1 from public.venues as o
                                     where o.name_key = i.name_key
                                       and o.city_key = i.city_key
                                       and o.country_code is not distinct from
                                           coalesce(i.country_code, c.country_code)
                                       and o.id <> r.id) end as renames) as m
                 where not r.is_new) as n
         where v.id = n.id
           and (v.name, v.city, v.state, v.state_code, v.country_code, v.country, v.address,
                v.postal_code, v.timezone, v.latitude, v.longitude)
               is distinct from
               (n.name, n.city, n.state, n.state_code, n.country_code, n.country, n.address,
                n.postal_code, n.timezone, n.latitude, n.longitude)
        returning v.id
      )
      select array(select changed.id from changed) into touched;
    end if;

    if to_merge > 0 then
      with merged as (
        insert into public.venue_external_ids (source, external_id, venue_id)
        select x.source, x.external_id, r.id
          from unnest(id_ords, id_sources, id_values) as x(ord, source, external_id)
          join unnest(round_ords, round_ids) as r(ord, id) on r.ord = x.ord
         order by x.source, x.external_id
        on conflict on constraint venue_external_ids_pkey do nothing
        returning venue_id
      )
      select touched || array(select merged.venue_id from merged) into touched;
    end if;

    out_ords := out_ords || round_ords;
    out_ids := out_ids || round_ids;
    out_actions := out_actions || array(
      select case when r.is_new then 'created'
                  when t.id is not null then 'updated'
                  else 'unchanged' end
        from unnest(round_ords, round_ids, round_new) with ordinality as r(ord, id, is_new, n)
        left join (select distinct t.id from unnest(touched) as t(id)) as t on t.id = r.id
       order by r.n);
    pending := array(select unnest(pending) except select unnest(round_ords) order by 1);
  end loop;

  return query
    select o.ord, o.id, o.action from unnest(out_ords, out_ids, out_actions) as o(ord, id, action)
     order by o.ord;
end;
$function$;

CREATE OR REPLACE FUNCTION private.is_setlist_topic(topic text)
 RETURNS boolean
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select case
    when is_setlist_topic.topic ~ '^setlist:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
      then exists (select 1 from public.setlists s
                    where s.id = substr(is_setlist_topic.topic, 9)::uuid)
    else false
  end
$function$;

CREATE OR REPLACE FUNCTION private.live_draw_weight(plays integer, has_history boolean)
 RETURNS double precision
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  select case when has_history then coalesce(plays, 0) + 0.1 else 1.0 end
$function$;

CREATE OR REPLACE FUNCTION public.my_artists()
 RETURNS TABLE(artist_id uuid, name text, image_url text, genres text[], is_top boolean, top_rank integer, is_followed boolean, synced_at timestamp with time zone, upcoming_show_count bigint, next_show jsonb)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
declare
  caller uuid := auth.uid();
begin
  if caller is null then
    raise exception 'sign in to see your artists' using errcode = '42501', hint = 'not_signed_in';
  end if;
  return query
    select a.id, a.name, a.image_url, a.genres, m.is_top, m.top_rank, m.is_followed,
           m.synced_at,
           (select count(*) from public.shows s
             where s.artist_id = a.id
               and s.status in ('scheduled', 'postponed', 'rescheduled')
               and s.local_date >= current_date),
           (select private.show_summary(s.id) from public.shows s
             where s.artist_id = a.id
               and s.status in ('scheduled', 'postponed', 'rescheduled')
               and s.local_date >= current_date
             order by s.local_date, s.id
             limit 1)
      from (select ua.artist_id,
                   bool_or(ua.relation = 'top') as is_top,
                   min(ua.rank) filter (where ua.relation = 'top') as top_rank,
                   bool_or(ua.relation = 'followed') as is_followed,
                   max(ua.synced_at) as synced_at
              from public.user_artists ua
             where ua.user_id = caller
             group by ua.artist_id) m
      join public.artists a on a.id = m.artist_id
     order by m.top_rank nulls last, a.name, a.id;
end;
$function$;

CREATE OR REPLACE FUNCTION private.name_key(value text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
  select coalesce(
    nullif(pg_catalog.btrim(pg_catalog.regexp_replace(
      pg_catalog.replace(
        pg_catalog.lower(extensions.unaccent('extensions.unaccent'::regdictionary, value)),
        '&', ' and '),
      '[^[:alnum:]]+', ' ', 'g')), ''),
    pg_catalog.lower(pg_catalog.btrim(value)))
$function$;

CREATE OR REPLACE FUNCTION private.pause_rate_limited_source(p_provider text, p_until timestamp with time zone)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  update private.source_rate_limits as l
     set paused_until = greatest(coalesce(l.paused_until, p_until), p_until)
   where l.provider = p_provider;
  if not found then
    raise exception 'unknown provider %', p_provider using errcode = '22023';
  end if;
end;
$function$;

CREATE OR REPLACE FUNCTION private.played_setlist(p_show_id uuid)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  with lookup as (select private.played_setlist_status(p_show_id) as status),
  actual as (
    select sl.id, sl.source_url from public.setlists sl
     where sl.show_id = p_show_id and sl.kind = 'actual')
  select case when l.status is null then null else jsonb_build_object(
           'status', l.status,
           'id', a.id,
           'source_url', a.source_url,
           'songs', coalesce((
             select jsonb_agg(jsonb_build_object(
                      'position', ss.position, 'song_id', so.id, 'title', so.title,
                      'set_number', ss.set_number, 'set_name', ss.set_name,
                      'encore', ss.encore, 'is_cover', ss.is_cover,
                      'cover_artist', case when ss.cover_artist_name is null
                                            and ss.cover_artist_mbid is null then null
                                       else jsonb_build_object('name', ss.cover_artist_name,
                                                               'mbid', ss.cover_artist_mbid)
                                       end,
                      'info', ss.info)
                    order by ss.position)
               from public.setlist_songs ss
               join public.songs so on so.id = ss.song_id
              where ss.setlist_id = a.id), '[]'::jsonb))
         end
    from lookup l
    left join actual a on true
$function$;

CREATE OR REPLACE FUNCTION private.played_setlist_retry_offsets()
 RETURNS interval[]
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  select array[interval '6 hours', interval '1 day', interval '3 days', interval '7 days']
$function$;

CREATE OR REPLACE FUNCTION private.played_setlist_status(p_show_id uuid)
 RETURNS text
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
  select case
           when exists (select 1 from public.setlists sl
                         where sl.show_id = p_show_id and sl.kind = 'actual') then 'found'
           else (select l.status from private.played_setlist_lookups l
                  where l.show_id = p_show_id)
         end
$function$;

CREATE OR REPLACE FUNCTION private.post_show_inserted_webhook()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  if new.status in ('cancelled', 'removed') then
    return null;
  end if;
  perform net.http_post(
    url := tg_argv[0],
    headers := jsonb_build_object(
      'Content-Type', 'application/json',
      'X-Internal-Secret',
      (select s.decrypted_secret from vault.decrypted_secrets s where s.name = tg_argv[1])),
    body := jsonb_build_object(
      'type', 'INSERT', 'table', tg_table_name, 'schema', tg_table_schema,
      'record', to_jsonb(new), 'old_record', null),
    timeout_milliseconds := 5000);
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION private.predicted_setlist_songs(setlist_id uuid)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(jsonb_agg(jsonb_build_object(
           'setlist_song_id', c.id,
           'song_id', so.id,
           'title', so.title,
           'album', so.album,
           'duration_ms', so.duration_ms,
           'spotify_url', so.spotify_url,
           'position', c.position,
           'vote_count', c.vote_count)
         order by c.vote_count desc, c.position), '[]'::jsonb)
    from (select ss.id, ss.song_id, ss.position, private.exact_vote_count(ss) as vote_count
            from public.setlist_songs ss
           where ss.setlist_id = predicted_setlist_songs.setlist_id) c
    join public.songs so on so.id = c.song_id
$function$;

CREATE OR REPLACE FUNCTION private.queue_setlists_for_artist(p_artist_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  queued integer;
begin
  select count(private.enqueue_sync_job('create_setlist', s.id)) into queued
    from public.shows s
   where s.artist_id = p_artist_id
     and s.local_date >= current_date
     and s.status not in ('cancelled', 'removed')
     and not exists (select 1
                       from public.setlists sl
                       join public.setlist_songs ss on ss.setlist_id = sl.id
                      where sl.show_id = s.id and sl.kind = 'predicted');
  return queued;
end;
$function$;

CREATE OR REPLACE FUNCTION private.queue_setlists_for_new_shows()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  perform private.enqueue_sync_jobs(
    'create_setlist',
    array(select s.id from new_shows as s where s.status not in ('cancelled', 'removed')));
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION private.record_played_setlist_error(p_show_id uuid, p_error text)
 RETURNS void
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  insert into private.played_setlist_lookups as l (show_id, status, last_attempt_at,
                                                  next_attempt_at, last_error)
  values (p_show_id, 'waiting', now(), now() + interval '1 hour', left(p_error, 2000))
  on conflict (show_id) do update
    set last_attempt_at = excluded.last_attempt_at,
        next_attempt_at = excluded.next_attempt_at,
        last_error = excluded.last_error
$function$;

CREATE OR REPLACE FUNCTION private.record_played_setlist_lookup(p_show_id uuid, p_found boolean)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  started timestamptz := private.show_started_at(p_show_id);
  offsets interval[] := private.played_setlist_retry_offsets();
  slot integer;
  next_at timestamptz;
  row_out private.played_setlist_lookups%rowtype;
begin
  if started is null then
    raise exception 'no such show' using errcode = 'P0002', hint = 'show_not_found';
  end if;
  select count(*)::integer into slot from unnest(offsets) o where started + o <= now();
  next_at := case when slot < cardinality(offsets) then started + offsets[slot + 1] end;
  insert into private.played_setlist_lookups as l (show_id, status, attempts, schedule_slot,
                                                  last_attempt_at, next_attempt_at)
  values (p_show_id,
          case when p_found then 'found' when next_at is null then 'none_found' else 'waiting' end,
          1, slot, now(), next_at)
  on conflict (show_id) do update
    set status = case when p_found or l.status = 'found' then 'found'
                      when next_at is null then 'none_found' else 'waiting' end,
        attempts = l.attempts + 1,
        schedule_slot = greatest(l.schedule_slot, excluded.schedule_slot),
        last_attempt_at = excluded.last_attempt_at,
        next_attempt_at = excluded.next_attempt_at,
        last_error = null
  returning * into row_out;
  return to_jsonb(row_out);
end;
$function$;

CREATE OR REPLACE FUNCTION private.replace_user_artists(p_user_id uuid, top_artist_ids uuid[], followed_artist_ids uuid[])
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  removed integer;
  n_artist uuid[];
  n_relation text[];
  n_rank integer[];
  failed_constraint text;
  top_count integer;
  followed_count integer;
begin
  if p_user_id is null then
    raise exception 'user id is required' using errcode = '22004';
  end if;
  perform pg_catalog.pg_advisory_xact_lock(
    pg_catalog.hashtextextended('user_artists:' || p_user_id::text, 0));

  -- The new rows, one per (artist, relation).
  select coalesce(array_agg(n.artist_id order by n.relation, n.rank, n.artist_id), '{}'),
         coalesce(array_agg(n.relation order by n.relation, n.rank, n.artist_id), '{}'),
         coalesce(array_agg(n.rank order by n.relation, n.rank, n.artist_id), '{}')
    into n_artist, n_relation, n_rank
    from (select t.artist_id, 'top' as relation, min(t.ord)::integer as rank
            from unnest(coalesce(top_artist_ids, '{}')) with ordinality as t(artist_id, ord)
           where t.artist_id is not null
           group by t.artist_id
          union all
          select distinct f.artist_id, 'followed', null::integer
            from unnest(coalesce(followed_artist_ids, '{}')) as f(artist_id)
           where f.artist_id is not null) n;

  delete from public.user_artists ua
   where ua.user_id = p_user_id
     and not exists (select 1 from unnest(n_artist, n_relation) as n(artist_id, relation)
                      where n.artist_id = ua.artist_id and n.relation = ua.relation);
  get diagnostics removed = row_count;

  begin
    insert into public.user_artists as ua (user_id, artist_id, relation, rank, synced_at)
    select p_user_id, n.artist_id, n.relation, n.rank, now()
      from unnest(n_artist, n_relation, n_rank) as n(artist_id, relation, rank)
    on conflict (user_id, artist_id, relation) do update
      set rank = excluded.rank, synced_at = excluded.synced_at;
  exception when foreign_key_violation then
    get stacked diagnostics failed_constraint = constraint_name;
    if failed_constraint = 'user_artists_user_id_fkey' then
      -- The token was valid, but the account has been deleted since.
      raise exception 'this account no longer exists'
        using errcode = 'PT401', hint = 'unknown_user';
    end if;
    raise;
  end;

  top_count := cardinality(array_remove(n_relation, 'followed'));
  followed_count := cardinality(n_relation) - top_count;

  perform private.sync_record_success('user_artists', p_user_id);
  return jsonb_build_object('top', top_count, 'followed', followed_count, 'removed', removed);
end;
$function$;

CREATE OR REPLACE FUNCTION private.reserve_rate_slot(p_provider text, p_requests_per_second double precision, p_max_wait_seconds double precision DEFAULT NULL::double precision, p_share text DEFAULT 'sync'::text, p_daily_limit integer DEFAULT NULL::integer, p_sync_reserved integer DEFAULT 0, p_count_call boolean DEFAULT true)
 RETURNS TABLE(wait_seconds double precision, paused_until timestamp with time zone, reserved boolean, slot_at timestamp with time zone, quota_reset_at timestamp with time zone)
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_next_slot timestamptz;
  v_paused_until timestamptz;
  v_now timestamptz;
  v_slot timestamptz;
  v_wait double precision;
  v_today date;
  q private.source_daily_quotas%rowtype;
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
    from private.source_rate_limits as l
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
  update private.source_daily_quotas as d
     set day = v_today, request_calls = 0, sync_calls = 0
   where d.provider = p_provider and d.day <> v_today;
  update private.source_daily_quotas as d
     set daily_limit = p_daily_limit, sync_reserved = coalesce(p_sync_reserved, 0)
   where d.provider = p_provider
     and (d.daily_limit is distinct from p_daily_limit
          or d.sync_reserved <> coalesce(p_sync_reserved, 0))
  returning * into q;
  if not found then
    select * into q from private.source_daily_quotas d where d.provider = p_provider;
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

  update private.source_rate_limits as l
     set next_slot_at = v_slot + make_interval(secs => 1.0 / p_requests_per_second),
         paused_until = null
   where l.provider = p_provider;
  update private.source_daily_quotas as d
     set request_calls = d.request_calls + (p_share = 'request')::integer,
         sync_calls = d.sync_calls + (p_share = 'sync')::integer
   where d.provider = p_provider and p_count_call;

  return query select v_wait, null::timestamptz, true, v_slot, null::timestamptz;
end;
$function$;

CREATE OR REPLACE FUNCTION private.resolve_setlistfm_songs(p_artist_id uuid, items jsonb)
 RETURNS TABLE(title_key text, song_id uuid)
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  n_created integer;
begin
  if exists (select 1 from jsonb_array_elements(items) i
              where nullif(btrim(private.song_title_key(btrim(i ->> 'title'))), '') is null) then
    raise exception 'every setlist.fm song needs a title with a title key'
      using errcode = '22023';
  end if;
  perform private.sync_lock_keys(array['songs:' || p_artist_id::text]);
  insert into public.songs (artist_id, title, source)
  select distinct on (private.song_title_key(t.title)) p_artist_id, t.title, 'setlistfm'
    from jsonb_array_elements(items) with ordinality as i
   cross join lateral (select btrim(i.value ->> 'title') as title) as t
   order by private.song_title_key(t.title), i.ordinality
  on conflict on constraint songs_one_per_title do nothing;
  get diagnostics n_created = row_count;
  if n_created > 0 then
    perform private.queue_setlists_for_artist(p_artist_id);
  end if;
  return query
    select s.title_key, s.id
      from public.songs s
     where s.artist_id = p_artist_id
       and s.title_key in (select private.song_title_key(btrim(i ->> 'title'))
                             from jsonb_array_elements(items) i);
end;
$function$;

CREATE OR REPLACE FUNCTION private.retire_missing_shows(p_artist_id uuid, p_seen uuid[], p_from date)
 RETURNS SETOF uuid
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  update public.shows s
     set status = 'removed'
   where s.artist_id = p_artist_id
     and s.local_date >= p_from
     and s.status in ('scheduled', 'postponed', 'rescheduled')
     and not (s.id = any (coalesce(p_seen, '{}')))
  returning s.id
$function$;

CREATE OR REPLACE FUNCTION private.schedule_new_show_webhook(function_url text, secret_name text DEFAULT 'internal_secret'::text)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  perform private.check_webhook_target(function_url);
  if secret_name is null or secret_name !~ '^[a-z_][a-z0-9_]*$' then
    raise exception 'secret_name must be a plain identifier' using errcode = '22023';
  end if;
  execute format(
    'create or replace trigger shows_create_setlist_webhook after insert on public.shows'
    ' for each row execute function private.post_show_inserted_webhook(%L, %L)',
    function_url, secret_name);
end;
$function$;

CREATE OR REPLACE FUNCTION private.schedule_run_jobs_webhook(function_url text, secret_name text DEFAULT 'internal_secret'::text, schedule text DEFAULT '* * * * *'::text, budget_seconds integer DEFAULT 50)
 RETURNS bigint
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  perform private.check_webhook_target(function_url);
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
$function$;

CREATE OR REPLACE FUNCTION private.schedule_vote_broadcasts(every interval DEFAULT '00:00:01'::interval)
 RETURNS bigint
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  seconds numeric := extract(epoch from every);
  schedule text;
begin
  if seconds is null or seconds <> trunc(seconds) then
    raise exception 'every must be whole seconds' using errcode = '22023';
  elsif seconds between 1 and 59 then
    schedule := seconds::integer || ' seconds';
  elsif seconds = 60 then
    schedule := '* * * * *';
  elsif seconds between 120 and 3600 and seconds::integer % 60 = 0 then
    schedule := '*/' || (seconds::integer / 60) || ' * * * *';
  else
    raise exception 'every must be 1 to 59 seconds or whole minutes up to an hour'
      using errcode = '22023';
  end if;
  return cron.schedule('vote-broadcasts', schedule,
                       format('select private.flush_vote_broadcasts(%L::interval)', every));
end;
$function$;

CREATE OR REPLACE FUNCTION private.search_cache_lookup(q text, p_limit integer, ttl_seconds double precision)
 RETURNS TABLE(items jsonb, fetched_at timestamp with time zone)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select c.items, c.fetched_at
    from private.search_cache c
   where c.query_key = private.name_key(q)
     and c.fetched_at > now() - make_interval(secs => ttl_seconds)
     and (c.fetched_size >= p_limit or jsonb_array_length(c.items) < c.fetched_size)
$function$;

CREATE OR REPLACE FUNCTION private.search_cache_store(q text, p_fetched_size integer, p_items jsonb)
 RETURNS timestamp with time zone
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  insert into private.search_cache as c (query_key, fetched_size, items, fetched_at)
  values (private.name_key(q), p_fetched_size, p_items, now())
  on conflict (query_key) do update
    set fetched_size = excluded.fetched_size, items = excluded.items,
        fetched_at = excluded.fetched_at
  returning c.fetched_at
$function$;

CREATE OR REPLACE FUNCTION private.search_local_artists(q text, p_limit integer)
 RETURNS TABLE(artist_id uuid, name text, ticketmaster_id text, spotify_id text, musicbrainz_id text, image_url text, genres text[], upcoming_show_count integer, ticketmaster_url text)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  with wanted as (
    select k.key, regexp_replace(k.key, '([\\%_])', '\\\1', 'g') as pattern
      from (select private.name_key(q) as key) k)
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
$function$;

CREATE OR REPLACE FUNCTION private.show_lock_keys(id_sources text[], id_values text[], natural_keys text[])
 RETURNS text[]
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  select array(
    select 'show:' || x.source || ':' || x.external_id
      from unnest(id_sources, id_values) as x(source, external_id)
    union all
    select 'show:nk:' || k.natural_key from unnest(natural_keys) as k(natural_key)
     where k.natural_key is not null)
$function$;

CREATE OR REPLACE FUNCTION private.show_setlist_accuracy(p_show_id uuid)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  with played as (
    select distinct ss.song_id
      from public.setlists sl
      join public.setlist_songs ss on ss.setlist_id = sl.id
     where sl.show_id = p_show_id and sl.kind = 'actual'),
  ranked as (
    select ss.song_id,
           row_number() over (order by private.exact_vote_count(ss) desc, ss.position) as rank
      from public.setlists sl
      join public.setlist_songs ss on ss.setlist_id = sl.id
     where sl.show_id = p_show_id and sl.kind = 'predicted'),
  predicted as (
    select r.song_id, r.rank from ranked r where r.rank <= (select count(*) from played)),
  hits as (
    select p.song_id, p.rank from predicted p where p.song_id in (select song_id from played)),
  counts as (
    select (select count(*) from played)::integer as n_played,
           (select count(*) from predicted)::integer as n_predicted,
           (select count(*) from hits)::integer as n_hits)
  select case when c.n_played = 0 or c.n_predicted = 0 then null else jsonb_build_object(
           'hits', c.n_hits,
           'predicted', c.n_predicted,
           'played', c.n_played,
           'precision', round(c.n_hits::numeric / c.n_predicted, 4),
           'recall', round(c.n_hits::numeric / c.n_played, 4),
           'hit_song_ids', coalesce((select jsonb_agg(h.song_id order by h.rank) from hits h),
                                    '[]'::jsonb))
         end
    from counts c
$function$;

CREATE OR REPLACE FUNCTION private.show_started_at(p_show_id uuid)
 RETURNS timestamp with time zone
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select private.voting_closes_at(s.starts_at, s.local_date, s.local_time, v.timezone)
    from public.shows s
    join public.venues v on v.id = s.venue_id
   where s.id = p_show_id
$function$;

CREATE OR REPLACE FUNCTION private.show_summary(show_id uuid)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select jsonb_build_object(
    'show', jsonb_build_object(
      'id', s.id, 'name', s.name, 'local_date', s.local_date, 'local_time', s.local_time,
      'starts_at', s.starts_at, 'status', s.status, 'ticket_url', s.ticket_url,
      'image_url', s.image_url),
    'artist', jsonb_build_object('id', a.id, 'name', a.name, 'image_url', a.image_url),
    'venue', jsonb_build_object(
      'id', v.id, 'name', v.name, 'city', v.city, 'state_code', v.state_code,
      'country_code', v.country_code, 'country', v.country, 'timezone', v.timezone),
    'predicted_setlist', (
      select jsonb_build_object('id', sl.id,
                                'vote_total', coalesce(sum(ss.vote_count), 0))
        from public.setlists sl
        left join public.setlist_songs ss on ss.setlist_id = sl.id
       where sl.show_id = s.id and sl.kind = 'predicted'
       group by sl.id))
  from public.shows s
  join public.artists a on a.id = s.artist_id
  join public.venues v on v.id = s.venue_id
  where s.id = show_summary.show_id
$function$;

CREATE OR REPLACE FUNCTION private.song_title_key(title text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
  select private.name_key(pg_catalog.regexp_replace(title, U&'[''\2018\2019\02BC`\00B4]', '', 'g'))
$function$;

CREATE OR REPLACE FUNCTION private.songs_added_per_show_limit()
 RETURNS integer
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
 SET search_path TO ''
AS $function$ select 5 $function$;

CREATE OR REPLACE FUNCTION private.source_protection_cleanup()
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  n_cache bigint;
  n_budgets bigint;
  n_flights bigint;
  n_holds bigint;
begin
  delete from private.search_cache where fetched_at < now() - interval '1 day';
  get diagnostics n_cache = row_count;
  -- A tat in the past is a full budget: the row says nothing a new one would not.
  delete from private.client_budgets where tat < now() - interval '1 hour';
  get diagnostics n_budgets = row_count;
  delete from private.sync_flights
   where coalesce(finished_at, expires_at) < now() - interval '1 hour';
  get diagnostics n_flights = row_count;
  delete from private.sync_job_holds h
   where not exists (select 1 from pgmq.q_sync q where q.msg_id = h.msg_id);
  get diagnostics n_holds = row_count;
  return jsonb_build_object('search_cache', n_cache, 'client_budgets', n_budgets,
                            'flights', n_flights, 'job_holds', n_holds);
end;
$function$;

CREATE OR REPLACE FUNCTION private.source_quota_status()
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
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
    from private.source_daily_quotas d
    join private.source_rate_limits l using (provider)
   cross join lateral (select (now() at time zone 'utc')::date as today) as t
$function$;

CREATE OR REPLACE FUNCTION private.sync_cleanup(api_calls_older_than interval DEFAULT '30 days'::interval, job_runs_older_than interval DEFAULT '14 days'::interval, archive_older_than interval DEFAULT '30 days'::interval, dead_letters_older_than interval DEFAULT '90 days'::interval, cron_runs_older_than interval DEFAULT '7 days'::interval)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  n_calls bigint;
  n_runs bigint;
  n_archive bigint;
  n_dead bigint;
  n_cron bigint;
begin
  delete from private.api_calls where called_at < now() - api_calls_older_than;
  get diagnostics n_calls = row_count;
  delete from private.sync_job_runs where finished_at < now() - job_runs_older_than;
  get diagnostics n_runs = row_count;
  delete from pgmq.a_sync where archived_at < now() - archive_older_than;
  get diagnostics n_archive = row_count;
  delete from private.sync_dead_letters where failed_at < now() - dead_letters_older_than;
  get diagnostics n_dead = row_count;
  delete from cron.job_run_details where end_time < now() - cron_runs_older_than;
  get diagnostics n_cron = row_count;
  return jsonb_build_object('api_calls', n_calls, 'job_runs', n_runs, 'archived_messages',
                            n_archive, 'dead_letters', n_dead, 'cron_runs', n_cron);
end;
$function$;

CREATE OR REPLACE FUNCTION private.sync_complete_job(p_msg_id bigint, p_read_ct integer, p_duration_ms integer DEFAULT NULL::integer)
 RETURNS text
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  q record;
  v_attempts integer;
begin
  select m.read_ct, m.message into q from pgmq.q_sync m where m.msg_id = p_msg_id for update;
  if not found then
    return 'gone';
  end if;
  delete from private.sync_job_holds h where h.msg_id = p_msg_id
  returning q.read_ct - h.holds into v_attempts;
  v_attempts := coalesce(v_attempts, q.read_ct);
  perform pgmq.delete('sync', p_msg_id);
  -- Released, or sent again when it was asked for while running.
  perform private.sync_release_pending(p_msg_id);
  insert into private.sync_job_runs (msg_id, job_kind, entity_id, attempt, outcome, duration_ms)
  values (p_msg_id, coalesce(q.message ->> 'kind', '?'),
          case when (q.message ->> 'entity_id') ~* '^[0-9a-f-]{36}$'
               then (q.message ->> 'entity_id')::uuid end,
          greatest(p_read_ct, 1), 'done', greatest(p_duration_ms, 0));
  return case when v_attempts > p_read_ct then 'redelivered' else 'done' end;
end;
$function$;

CREATE OR REPLACE FUNCTION private.sync_extend_job(p_msg_id bigint, vt_seconds integer)
 RETURNS boolean
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  perform 1 from pgmq.set_vt('sync', p_msg_id, vt_seconds);
  return found;
end;
$function$;

CREATE OR REPLACE FUNCTION private.sync_fail_job(p_msg_id bigint, p_read_ct integer, p_error text, p_retry_in_seconds integer, p_dead boolean, p_duration_ms integer DEFAULT NULL::integer)
 RETURNS text
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
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
  perform private.sync_record_failure(v_kind, v_entity, coalesce(p_error, 'unknown error'));
  insert into private.sync_job_runs (msg_id, job_kind, entity_id, attempt, outcome, duration_ms,
                                    error)
  values (p_msg_id, v_kind, v_entity, greatest(p_read_ct, 1),
          case when p_dead then 'dead' else 'retry' end, greatest(p_duration_ms, 0),
          left(p_error, 2000));
  if p_dead then
    delete from private.sync_job_holds h where h.msg_id = p_msg_id returning h.holds into v_holds;
    perform pgmq.archive('sync', p_msg_id);
    perform private.sync_release_pending(p_msg_id);
    insert into private.sync_dead_letters (msg_id, job_kind, message, attempts, last_error)
    values (p_msg_id, v_kind, q.message, greatest(q.read_ct - coalesce(v_holds, 0), 1),
            left(coalesce(p_error, 'unknown error'), 2000));
    return 'dead';
  end if;
  perform 1 from pgmq.set_vt('sync', p_msg_id, greatest(p_retry_in_seconds, 0));
  -- The retried run comes after any request made during this one.
  update private.sync_pending_jobs p set rerun = false where p.msg_id = p_msg_id and p.rerun;
  return 'retry';
end;
$function$;

CREATE OR REPLACE FUNCTION private.sync_failure_backoff(job_kind text, failures integer)
 RETURNS interval
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select least(coalesce(private.sync_ttl(sync_failure_backoff.job_kind), interval '1 day'),
               interval '5 minutes' * power(2, least(greatest(failures, 1) - 1, 20)))
$function$;

CREATE OR REPLACE FUNCTION private.sync_flight_extend(p_key text, p_holder uuid, lease_seconds double precision)
 RETURNS boolean
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  update private.sync_flights f
     set expires_at = clock_timestamp() + make_interval(secs => lease_seconds)
   where f.key = p_key and f.holder = p_holder and f.finished_at is null
  returning true
$function$;

CREATE OR REPLACE FUNCTION private.sync_flight_finish(p_key text, p_holder uuid, p_outcome jsonb DEFAULT NULL::jsonb)
 RETURNS boolean
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  update private.sync_flights f
     set finished_at = clock_timestamp(), outcome = p_outcome
   where f.key = p_key and f.holder = p_holder and f.finished_at is null
  returning true
$function$;

CREATE OR REPLACE FUNCTION private.sync_flight_state(p_key text)
 RETURNS TABLE(holder uuid, live boolean, finished boolean, outcome jsonb, expires_in_seconds double precision)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select f.holder, f.finished_at is null and f.expires_at > clock_timestamp(),
         f.finished_at is not null, f.outcome,
         greatest(extract(epoch from f.expires_at - clock_timestamp()), 0)::double precision
    from private.sync_flights f
   where f.key = p_key
$function$;

CREATE OR REPLACE FUNCTION private.sync_flight_take(p_key text, p_holder uuid, lease_seconds double precision)
 RETURNS uuid
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  insert into private.sync_flights as f (key, holder, started_at, expires_at)
  values (p_key, p_holder, clock_timestamp(),
          clock_timestamp() + make_interval(secs => lease_seconds))
  on conflict (key) do update
    set holder = excluded.holder, started_at = excluded.started_at,
        expires_at = excluded.expires_at, finished_at = null, outcome = null
    where f.finished_at is not null or f.expires_at <= clock_timestamp()
  returning f.holder
$function$;

CREATE OR REPLACE FUNCTION private.sync_hold_job(p_msg_id bigint, p_delay_seconds integer, p_reason text)
 RETURNS text
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  perform 1 from pgmq.q_sync m where m.msg_id = p_msg_id for update;
  if not found then
    return 'gone';
  end if;
  insert into private.sync_job_holds as h (msg_id, holds, last_reason, held_at)
  values (p_msg_id, 1, left(p_reason, 500), now())
  on conflict (msg_id) do update
    set holds = h.holds + 1, last_reason = excluded.last_reason, held_at = excluded.held_at;
  perform 1 from pgmq.set_vt('sync', p_msg_id, greatest(p_delay_seconds, 1));
  -- The held run never happened: a request made during it is served by the next one.
  update private.sync_pending_jobs p set rerun = false where p.msg_id = p_msg_id and p.rerun;
  return 'held';
end;
$function$;

CREATE OR REPLACE FUNCTION private.sync_is_fresh(job_kind text, entity_id uuid)
 RETURNS boolean
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce((
    select s.last_success_at is not null and s.consecutive_failures = 0
           and (s.next_due_at is null or s.next_due_at > now())
      from private.sync_state s
     where s.job_kind = sync_is_fresh.job_kind and s.entity_id = sync_is_fresh.entity_id), false)
$function$;

CREATE OR REPLACE FUNCTION private.sync_lock_keys(keys text[])
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  perform pg_catalog.pg_advisory_xact_lock(k)
     from (select distinct pg_catalog.hashtextextended(key, 0) as k
             from unnest(keys) as key
            where key is not null) as s
    order by k;
end;
$function$;

CREATE OR REPLACE FUNCTION private.sync_monitoring()
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
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
      from private.sync_job_runs r
     where r.finished_at > now() - interval '1 hour'
     group by 1
  ),
  dead as (
    select d.job_kind as kind,
           count(*) as total,
           count(*) filter (where d.failed_at > now() - interval '1 hour') as last_hour
      from private.sync_dead_letters d
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
      from private.api_calls c
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
$function$;

CREATE OR REPLACE FUNCTION private.sync_profile_from_auth_user()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  meta jsonb := coalesce(new.raw_user_meta_data, '{}'::jsonb);
  is_spotify boolean := coalesce(new.raw_app_meta_data ->> 'provider', '') = 'spotify'
    or coalesce(new.raw_app_meta_data -> 'providers', '[]'::jsonb) ? 'spotify';
begin
  insert into public.profiles as p (id, display_name, avatar_url, spotify_id)
  values (
    new.id,
    coalesce(meta ->> 'full_name', meta ->> 'name', meta ->> 'user_name'),
    coalesce(meta ->> 'avatar_url', meta ->> 'picture'),
    case when is_spotify then coalesce(meta ->> 'provider_id', meta ->> 'sub') end
  )
  on conflict (id) do update
    set display_name = excluded.display_name,
        avatar_url = excluded.avatar_url,
        spotify_id = coalesce(excluded.spotify_id, p.spotify_id)
    where (p.display_name, p.avatar_url, p.spotify_id)
      is distinct from (excluded.display_name, excluded.avatar_url,
                        coalesce(excluded.spotify_id, p.spotify_id));
  return new;
end;
$function$;

CREATE OR REPLACE FUNCTION private.sync_read_jobs(vt_seconds integer, qty integer)
 RETURNS TABLE(msg_id bigint, read_ct integer, enqueued_at timestamp with time zone, message jsonb, options jsonb, attempt integer)
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  select r.msg_id, r.read_ct, r.enqueued_at, r.message,
         coalesce(r.message -> 'options', '{}'::jsonb) || coalesce(p.options, '{}'::jsonb),
         greatest(r.read_ct - coalesce(h.holds, 0), 1)
    from pgmq.read('sync', vt_seconds, qty) as r
    left join private.sync_pending_jobs p on p.msg_id = r.msg_id
    left join private.sync_job_holds h on h.msg_id = r.msg_id
$function$;

CREATE OR REPLACE FUNCTION private.sync_record_failure(job_kind text, entity_id uuid, error text)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  -- Kinds without freshness (create_setlist, tests) have no sync_state row.
  if entity_id is null or not exists (select 1 from private.sync_job_kinds k
                                       where k.kind = sync_record_failure.job_kind) then
    return;
  end if;
  insert into private.sync_state as s (job_kind, entity_id, last_attempt_at, last_error_at,
                                      last_error, consecutive_failures, next_due_at)
  values (sync_record_failure.job_kind, sync_record_failure.entity_id, now(), now(),
          left(error, 2000), 1,
          now() + private.sync_failure_backoff(sync_record_failure.job_kind, 1))
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
          else now() + private.sync_failure_backoff(sync_record_failure.job_kind,
                                                   s.consecutive_failures + 1) end;
end;
$function$;

CREATE OR REPLACE FUNCTION private.sync_record_success(job_kind text, entity_id uuid)
 RETURNS void
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  insert into private.sync_state as s (job_kind, entity_id, last_attempt_at, last_success_at,
                                      next_due_at)
  values (sync_record_success.job_kind, sync_record_success.entity_id, now(), now(),
          now() + private.sync_ttl(sync_record_success.job_kind))
  on conflict on constraint sync_state_pkey do update
    set last_attempt_at = excluded.last_attempt_at,
        last_success_at = excluded.last_success_at,
        next_due_at = excluded.next_due_at,
        consecutive_failures = 0,
        last_error = null,
        last_error_at = null
$function$;

CREATE OR REPLACE FUNCTION private.sync_release_pending(p_msg_id bigint)
 RETURNS bigint
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  p record;
  new_msg_id bigint;
begin
  -- Locked first: an enqueue marking it rerun either commits before (seen
  -- here) or waits and then finds no pending row (and sends its own message).
  select pj.job_kind, pj.entity_id, pj.options, pj.rerun into p
    from private.sync_pending_jobs pj
   where pj.msg_id = p_msg_id
     for update;
  if not found then
    return null;
  end if;
  if not p.rerun then
    delete from private.sync_pending_jobs pj where pj.msg_id = p_msg_id;
    return null;
  end if;
  select s into new_msg_id from pgmq.send(
    'sync',
    jsonb_build_object('kind', p.job_kind, 'entity_id', p.entity_id, 'options', p.options)) s;
  update private.sync_pending_jobs pj
     set msg_id = new_msg_id, rerun = false, enqueued_at = now()
   where pj.msg_id = p_msg_id;
  return new_msg_id;
end;
$function$;

CREATE OR REPLACE FUNCTION private.sync_ttl(job_kind text)
 RETURNS interval
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select k.ttl from private.sync_job_kinds k where k.kind = sync_ttl.job_kind
$function$;

CREATE OR REPLACE FUNCTION private.sync_visible_jobs(p_limit integer)
 RETURNS integer
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select count(*)::integer
    from (select 1 from pgmq.q_sync q where q.vt <= clock_timestamp() limit p_limit) as v
$function$;

CREATE OR REPLACE FUNCTION private.take_client_budget(p_client_key text, p_action text, p_per_minute double precision, p_burst integer)
 RETURNS double precision
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
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
  insert into private.client_budgets as b (client_key, action, tat)
  values (p_client_key, p_action, v_now)
  on conflict (client_key, action) do nothing;
  select greatest(b.tat, v_now) into v_tat
    from private.client_budgets b
   where b.client_key = p_client_key and b.action = p_action
     for update;
  if v_tat - v_now > v_tolerance then
    return extract(epoch from (v_tat - v_now) - v_tolerance)::double precision;
  end if;
  update private.client_budgets b set tat = v_tat + v_step
   where b.client_key = p_client_key and b.action = p_action;
  return 0;
end;
$function$;

CREATE OR REPLACE FUNCTION private.touch_updated_at()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  new.updated_at := now();
  return new;
end;
$function$;

CREATE OR REPLACE FUNCTION public.trending_shows("limit" integer DEFAULT 10)
 RETURNS SETOF jsonb
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  if coalesce(trending_shows."limit", 10) not between 1 and 50 then
    raise exception 'limit must be between 1 and 50' using errcode = '22023', hint = 'invalid_limit';
  end if;
  return query
    select private.show_summary(s.id) || jsonb_build_object('recent_votes', act.recent_votes)
      from public.shows s
      join public.setlists sl on sl.show_id = s.id and sl.kind = 'predicted'
      cross join lateral (
        select coalesce(sum(ss.vote_count), 0) as total_votes,
               coalesce(sum((select count(*) from public.votes vo
                               where vo.setlist_song_id = ss.id
                                 and vo.created_at >= now() - interval '7 days')), 0)
                 as recent_votes
          from public.setlist_songs ss
         where ss.setlist_id = sl.id) act
     where s.status in ('scheduled', 'postponed', 'rescheduled')
       and s.local_date >= current_date
       and act.total_votes > 0
     order by act.recent_votes desc, act.total_votes desc, s.local_date, s.id
     limit coalesce(trending_shows."limit", 10);
end;
$function$;

CREATE OR REPLACE FUNCTION private.unschedule_new_show_webhook()
 RETURNS void
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  drop trigger if exists shows_create_setlist_webhook on public.shows
$function$;

CREATE OR REPLACE FUNCTION private.unschedule_run_jobs_webhook()
 RETURNS boolean
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  select cron.unschedule(jobid) from cron.job where jobname = 'sync-run-jobs'
$function$;

CREATE OR REPLACE FUNCTION private.unschedule_vote_broadcasts()
 RETURNS boolean
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  select coalesce((select cron.unschedule(jobid) from cron.job where jobname = 'vote-broadcasts'),
                  false)
$function$;

CREATE OR REPLACE FUNCTION public.upcoming_shows(country_code text DEFAULT NULL::text, city text DEFAULT NULL::text, date_from date DEFAULT NULL::date, date_to date DEFAULT NULL::date, artist_id uuid DEFAULT NULL::uuid, q text DEFAULT NULL::text, page_size integer DEFAULT 20, per_artist integer DEFAULT 2, cursor text DEFAULT NULL::text)
 RETURNS jsonb
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
declare
  max_page_size constant integer := 50;
  max_per_artist constant integer := 10;
  scan_limit constant integer := 1000;
  v_page_size integer := coalesce(upcoming_shows.page_size, 20);
  v_per_artist integer := coalesce(upcoming_shows.per_artist, 2);
  v_country text := nullif(upper(btrim(upcoming_shows.country_code)), '');
  v_city_key text;
  v_query_key text;
  v_pattern text;
  v_from date := greatest(current_date, coalesce(upcoming_shows.date_from, current_date));
  v_fingerprint text;
  v_state jsonb;
  -- Frontier: the last show met by the walk so far.
  f_date date := '-infinity';
  f_id uuid := '00000000-0000-0000-0000-000000000000';
  -- Artists with deferred shows, and their last delivered show.
  b_artist uuid[] := '{}';
  b_date date[] := '{}';
  b_id uuid[] := '{}';
  -- This page: artists met, how many of their shows were taken, the last taken.
  p_artist uuid[] := '{}';
  p_count integer[] := '{}';
  p_date date[] := '{}';
  p_id uuid[] := '{}';
  deferred uuid[] := '{}';
  taken uuid[] := '{}';
  visited integer := 0;
  last_date date;
  last_id uuid;
  has_more boolean := false;
  n_artist uuid[] := '{}';
  n_date date[] := '{}';
  n_id uuid[] := '{}';
  next_cursor text;
  items jsonb;
  r record;
  pending refcursor;
  phase integer;
  i integer;
  j integer;
begin
  if v_page_size not between 1 and max_page_size then
    raise exception 'page_size must be between 1 and %', max_page_size
      using errcode = '22023', hint = 'invalid_page_size';
  end if;
  if v_per_artist not between 1 and max_per_artist then
    raise exception 'per_artist must be between 1 and %', max_per_artist
      using errcode = '22023', hint = 'invalid_per_artist';
  end if;
  if v_country is not null and v_country !~ '^[A-Z]{2}$' then
    raise exception 'country_code must be a two-letter ISO 3166-1 code'
      using errcode = '22023', hint = 'invalid_country_code';
  end if;
  if upcoming_shows.date_from is not null and upcoming_shows.date_to is not null
     and upcoming_shows.date_to < upcoming_shows.date_from then
    raise exception 'date_to must not be before date_from'
      using errcode = '22023', hint = 'invalid_date_range';
  end if;
  if length(upcoming_shows.q) > 100 then
    raise exception 'q must be at most 100 characters'
      using errcode = '22023', hint = 'invalid_query';
  end if;
  if nullif(btrim(upcoming_shows.city), '') is not null then
    v_city_key := private.name_key(btrim(upcoming_shows.city));
  end if;
  if nullif(btrim(upcoming_shows.q), '') is not null then
    v_query_key := private.name_key(btrim(upcoming_shows.q));
    v_pattern := '%' || replace(replace(replace(v_query_key, '\', '\\'), '%', '\%'), '_', '\_')
                 || '%';
  end if;

  -- What the cursor is bound to: the filters, not the page size or the cap.
  v_fingerprint := left(md5(concat_ws('|', v_country, v_city_key, upcoming_shows.date_from,
                                      upcoming_shows.date_to, upcoming_shows.artist_id,
                                      v_query_key)), 12);

  if upcoming_shows.cursor is not null then
    begin
      v_state := convert_from(decode(
        rpad(translate(upcoming_shows.cursor, '-_', '+/'),
             (length(upcoming_shows.cursor) + 3) / 4 * 4, '='), 'base64'), 'UTF8')::jsonb;
      if v_state ->> 'v' is distinct from '1' or jsonb_typeof(v_state -> 'b') <> 'array'
         or jsonb_array_length(v_state -> 'b') > max_page_size then
        raise exception 'bad cursor shape' using errcode = '22023';
      end if;
      f_date := (v_state -> 'f' ->> 0)::date;
      f_id := (v_state -> 'f' ->> 1)::uuid;
      select coalesce(array_agg((e ->> 0)::uuid order by o), '{}'),
             coalesce(array_agg((e ->> 1)::date order by o), '{}'),
             coalesce(array_agg((e ->> 2)::uuid order by o), '{}')
        into b_artist, b_date, b_id
        from jsonb_array_elements(v_state -> 'b') with ordinality as x(e, o);
      if f_date is null or f_id is null or array_position(b_artist, null) is not null
         or array_position(b_date, null) is not null or array_position(b_id, null) is not null then
        raise exception 'bad cursor values' using errcode = '22023';
      end if;
    exception when others then
      raise exception 'cursor is not valid' using errcode = '22023', hint = 'invalid_cursor';
    end;
    if v_state ->> 'k' is distinct from v_fingerprint then
      raise exception 'cursor was issued for other filters'
        using errcode = '22023', hint = 'cursor_mismatch';
    end if;
  end if;

  -- Pending shows in walk order: first each deferring artist's shows between
  -- its last delivered one and the frontier (all before the frontier), then
  -- the shows after the frontier (a range scan of the feed index, read
  -- lazily: the walk stops as soon as the page is full). Dynamic only so
  -- that each call is planned for its own filters (a cached generic plan
  -- would ignore that most of them are null).
  phase := 1;
  open pending for execute $backlog$
    select s.id, s.artist_id, s.local_date
      from unnest($6::uuid[], $7::date[], $8::uuid[]) as b(artist_id, local_date, id)
      join public.shows s on s.artist_id = b.artist_id
                         and (s.local_date, s.id) > (b.local_date, b.id)
                         and (s.local_date, s.id) <= ($4::date, $5::uuid)
      join public.venues v on v.id = s.venue_id
      join public.artists a on a.id = s.artist_id
     where s.status in ('scheduled', 'postponed', 'rescheduled')
       and s.local_date >= $1
       and ($2::date is null or s.local_date <= $2)
       and ($3::uuid is null or s.artist_id = $3)
       and ($9::text is null or v.country_code = $9)
       and ($10::text is null or v.city_key = $10)
       and ($11::text is null or a.name_key like $11)
     order by s.local_date, s.id
  $backlog$
  using v_from, upcoming_shows.date_to, upcoming_shows.artist_id, f_date, f_id,
        b_artist, b_date, b_id, v_country, v_city_key, v_pattern;
  loop
    fetch pending into r;
    if not found then
      close pending;
      exit when phase = 2;
      phase := 2;
      open pending for execute $stream$
        select s.id, s.artist_id, s.local_date
          from public.shows s
          join public.venues v on v.id = s.venue_id
          join public.artists a on a.id = s.artist_id
         where s.status in ('scheduled', 'postponed', 'rescheduled')
           and (s.local_date, s.id) > ($4::date, $5::uuid)
           and s.local_date >= $1
           and ($2::date is null or s.local_date <= $2)
           and ($3::uuid is null or s.artist_id = $3)
           and ($6::text is null or v.country_code = $6)
           and ($7::text is null or v.city_key = $7)
           and ($8::text is null or a.name_key like $8)
         order by s.local_date, s.id
         limit $9
      $stream$
      using v_from, upcoming_shows.date_to, upcoming_shows.artist_id, f_date, f_id,
            v_country, v_city_key, v_pattern, scan_limit + 1;
      continue;
    end if;
    -- Another pending show exists beyond what this page may take or read.
    if cardinality(taken) >= v_page_size or visited >= scan_limit then
      has_more := true;
      close pending;
      exit;
    end if;
    visited := visited + 1;
    last_date := r.local_date;
    last_id := r.id;
    i := array_position(p_artist, r.artist_id);
    if i is null then
      p_artist := p_artist || r.artist_id;
      p_count := p_count || 1;
      p_date := p_date || r.local_date;
      p_id := p_id || r.id;
      taken := taken || r.id;
    elsif p_count[i] < v_per_artist then
      p_count[i] := p_count[i] + 1;
      p_date[i] := r.local_date;
      p_id[i] := r.id;
      taken := taken || r.id;
    elsif array_position(deferred, r.artist_id) is null then
      deferred := deferred || r.artist_id;
    end if;
  end loop;

  -- The next cursor: what is still pending after this page.
  if visited > 0 and (last_date, last_id) > (f_date, f_id) or not has_more then
    -- The walk went past the old frontier (or to the end): every pending show
    -- up to the last one met was taken, except the deferred artists' shows
    -- after their last taken one.
    if visited > 0 and (last_date, last_id) > (f_date, f_id) then
      f_date := last_date;
      f_id := last_id;
    end if;
    foreach j in array coalesce(
      (select array_agg(array_position(p_artist, d)) from unnest(deferred) as d), '{}')
    loop
      n_artist := n_artist || p_artist[j];
      n_date := n_date || p_date[j];
      n_id := n_id || p_id[j];
    end loop;
  else
    -- The page filled up among deferred shows: the frontier stays, deferring
    -- artists move their last delivered show forward.
    n_artist := b_artist;
    n_date := b_date;
    n_id := b_id;
    for j in 1 .. coalesce(array_length(n_artist, 1), 0) loop
      i := array_position(p_artist, n_artist[j]);
      if i is not null then
        n_date[j] := p_date[i];
        n_id[j] := p_id[i];
      end if;
    end loop;
  end if;

  if has_more or cardinality(n_artist) > 0 then
    next_cursor := rtrim(translate(encode(convert_to(jsonb_build_object(
        'v', 1,
        'k', v_fingerprint,
        'f', jsonb_build_array(f_date, f_id),
        'b', coalesce((select jsonb_agg(jsonb_build_array(x.a, x.d, x.i) order by x.o)
                         from unnest(n_artist, n_date, n_id) with ordinality as x(a, d, i, o)),
                      '[]'::jsonb))::text, 'UTF8'), 'base64'), E'+/\n', '-_'), '=');
  end if;

  select coalesce(jsonb_agg(private.show_summary(t.id) order by t.o), '[]'::jsonb)
    into items
    from unnest(taken) with ordinality as t(id, o);

  return jsonb_build_object('items', items, 'next_cursor', next_cursor);
end;
$function$;

CREATE OR REPLACE FUNCTION private.venue_lock_keys(id_sources text[], id_values text[], name_keys text[], city_keys text[], countries text[])
 RETURNS text[]
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  select array(
    select 'venue:' || x.source || ':' || x.external_id
      from unnest(id_sources, id_values) as x(source, external_id)
    union all
    select 'venue:nk:' || k.name_key || '|' || k.city_key || '|' || coalesce(k.country_code, '')
      from unnest(name_keys, city_keys, countries) as k(name_key, city_key, country_code)
     where k.name_key is not null)
$function$;

CREATE OR REPLACE FUNCTION private.votes_maintain_count()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  if tg_op = 'UPDATE' and old.setlist_song_id = new.setlist_song_id and old.slot = new.slot then
    return null;
  end if;
  if tg_op in ('DELETE', 'UPDATE') then
    update private.vote_tallies t
       set votes = t.votes - 1, dirty = true
     where t.setlist_song_id = old.setlist_song_id and t.slot = old.slot;
  end if;
  if tg_op in ('INSERT', 'UPDATE') then
    update private.vote_tallies t
       set votes = t.votes + 1, dirty = true
     where t.setlist_song_id = new.setlist_song_id and t.slot = new.slot;
    if not found then
      -- The slot's first vote (two at once: one inserts, the other adds one).
      insert into private.vote_tallies as t (setlist_song_id, slot, votes)
      values (new.setlist_song_id, new.slot, 1)
      on conflict (setlist_song_id, slot) do update set votes = t.votes + 1, dirty = true;
    end if;
  end if;
  return null;
end;
$function$;

CREATE OR REPLACE FUNCTION private.votes_per_show_limit()
 RETURNS integer
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
 SET search_path TO ''
AS $function$ select 10 $function$;

CREATE OR REPLACE FUNCTION private.voting_closes_at(starts_at timestamp with time zone, local_date date, local_time time without time zone, timezone text)
 RETURNS timestamp with time zone
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
begin
  if voting_closes_at.starts_at is not null then
    return voting_closes_at.starts_at;
  end if;
  begin
    return (voting_closes_at.local_date + coalesce(voting_closes_at.local_time, time '00:00'))
      at time zone coalesce(voting_closes_at.timezone, 'UTC');
  exception when invalid_parameter_value then
    return (voting_closes_at.local_date + coalesce(voting_closes_at.local_time, time '00:00'))
      at time zone 'UTC';
  end;
end;
$function$;

-- Scheduled commands (this migration's own and those the deploy registered) name
-- functions by text too.
select cron.alter_job(jobid, command := regexp_replace(command, pattern, 'private.\1', 'g'))
from cron.job,
  lateral (select '\mpublic\.(' || array_to_string(array[
      'acting_fan', 'artist_ids_by_external_id', 'artist_lock_keys', 'artist_musicbrainz_id',
      'check_webhook_target', 'enqueue_played_setlist_lookups', 'enqueue_popularity_refresh', 'enqueue_stale_artist_jobs',
      'enqueue_sync_job', 'enqueue_sync_jobs', 'exact_vote_count', 'flush_vote_broadcasts',
      'import_played_setlist', 'ingest_artist_lock_keys', 'ingest_artist_rows', 'ingest_artists',
      'ingest_external_ids', 'ingest_live_history', 'ingest_round', 'ingest_show_lock_keys',
      'ingest_show_rows', 'ingest_shows', 'ingest_song_lock_keys', 'ingest_song_rows',
      'ingest_songs', 'ingest_venue_lock_keys', 'ingest_venue_rows', 'ingest_venues',
      'is_setlist_topic', 'live_draw_weight', 'name_key', 'pause_rate_limited_source',
      'played_setlist', 'played_setlist_retry_offsets', 'played_setlist_status', 'post_show_inserted_webhook',
      'predicted_setlist_songs', 'queue_setlists_for_artist', 'queue_setlists_for_new_shows', 'record_played_setlist_error',
      'record_played_setlist_lookup', 'replace_user_artists', 'reserve_rate_slot', 'resolve_setlistfm_songs',
      'retire_missing_shows', 'schedule_new_show_webhook', 'schedule_run_jobs_webhook', 'schedule_vote_broadcasts',
      'search_cache_lookup', 'search_cache_store', 'search_local_artists', 'show_lock_keys',
      'show_setlist_accuracy', 'show_started_at', 'show_summary', 'song_title_key',
      'songs_added_per_show_limit', 'source_protection_cleanup', 'source_quota_status', 'sync_cleanup',
      'sync_complete_job', 'sync_extend_job', 'sync_fail_job', 'sync_failure_backoff',
      'sync_flight_extend', 'sync_flight_finish', 'sync_flight_state', 'sync_flight_take',
      'sync_hold_job', 'sync_is_fresh', 'sync_lock_keys', 'sync_monitoring',
      'sync_profile_from_auth_user', 'sync_read_jobs', 'sync_record_failure', 'sync_record_success',
      'sync_release_pending', 'sync_ttl', 'sync_visible_jobs', 'take_client_budget',
      'touch_updated_at', 'unschedule_new_show_webhook', 'unschedule_run_jobs_webhook', 'unschedule_vote_broadcasts',
      'venue_lock_keys', 'votes_maintain_count', 'votes_per_show_limit', 'voting_closes_at'
    ], '|') || ')\M' as pattern) as moved
where command ~ pattern;
