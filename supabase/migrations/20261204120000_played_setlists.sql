-- Played setlists from setlist.fm, and what they teach the predictions.
--
-- * After a show, a scheduled 'played_setlist' job looks its setlist up on
--   setlist.fm (artist MusicBrainz id + the show's date) at fixed times after
--   the show starts (public.played_setlist_retry_offsets: +6 h, +1 d, +3 d,
--   +7 d), since setlists are filled in and corrected over the following
--   days. A setlist found early is looked up again at the remaining times, so
--   later edits on setlist.fm reach us; after the last time the lookup stops
--   and, when nothing was found, records 'none_found'.
-- * public.import_played_setlist stores it as the show's 'actual' setlist:
--   order, sets and encores kept, covers marked with the original artist,
--   every song matched to the artist's catalogue by normalised title or added
--   to it with source 'setlistfm'. Idempotent (unchanged input writes
--   nothing), one writer per show at a time.
-- * An artist's live history ('artist_live_history' job, 7 days): how often
--   each song was played in its most recent setlist.fm setlists. It weights
--   create_setlist's draw, and for an artist without a usable Spotify
--   catalogue its songs are the catalogue.
-- * public.show_setlist_accuracy: how the fans' prediction did (defined below),
--   in get_show_page and, averaged, in get_artist_page.
--
-- Quota: a standard setlist.fm key allows 2 requests a second (the shared
-- rate limiter) and 1,440 a day. Each played-setlist lookup costs one call
-- (one page of the date search) and each live-history refresh at most two
-- (two pages of the artist's setlists). The schedules below queue at most 3
-- lookups every 10 minutes (432 calls a day, most recent shows first) and 1
-- live-history refresh every 20 minutes (at most 144 calls a day): 576 of the
-- 1,440, leaving the rest for MusicBrainz id lookups of artist imports and for
-- refreshes users trigger.

-- ---------------------------------------------------------------------------------------------
-- Schema
-- ---------------------------------------------------------------------------------------------

-- Where a song first came from: Spotify's catalogue, or a setlist.fm setlist
-- (a song the artist plays that its Spotify albums do not have, or an artist
-- without a Spotify catalogue). A Spotify import of the same title later
-- merges into the row (one song per normalised title).
alter table public.songs
  add column source text not null default 'spotify' check (source in ('spotify', 'setlistfm'));

-- The played setlist's structure: which set (1-based, in setlist.fm's order)
-- and its name, and the original artist of a cover.
alter table public.setlist_songs
  add column set_number smallint check (set_number > 0),
  add column set_name text,
  add column cover_artist_name text,
  add column cover_artist_mbid text;

-- setlist.fm's version of the stored played setlist: a new versionId or
-- lastUpdated is an edit.
alter table public.setlists
  add column source_version_id text,
  add column source_updated_at timestamptz;

-- One row per past show whose played setlist has been looked up.
create table public.played_setlist_lookups (
  show_id uuid primary key references public.shows (id) on delete cascade,
  status text not null check (status in ('waiting', 'found', 'none_found')),
  -- Lookups made so far, and the slot of the retry schedule the last one filled.
  attempts integer not null default 0 check (attempts >= 0),
  schedule_slot integer not null default 0 check (schedule_slot >= 0),
  last_attempt_at timestamptz,
  -- Null: no more lookups.
  next_attempt_at timestamptz,
  last_error text,
  updated_at timestamptz not null default now()
);

create index played_setlist_lookups_due_idx on public.played_setlist_lookups (next_attempt_at)
  where next_attempt_at is not null;

-- An artist's recent live history from setlist.fm: per song, in how many of
-- the counted setlists (those with songs) it was played.
create table public.artist_live_history (
  artist_id uuid primary key references public.artists (id) on delete cascade,
  setlists_counted integer not null check (setlists_counted >= 0),
  newest_event_date date,
  oldest_event_date date,
  updated_at timestamptz not null default now()
);

create table public.artist_live_songs (
  artist_id uuid not null references public.artist_live_history (artist_id) on delete cascade,
  song_id uuid not null references public.songs (id) on delete cascade,
  plays integer not null check (plays > 0),
  last_played_on date not null,
  primary key (artist_id, song_id)
);

create index artist_live_songs_song_idx on public.artist_live_songs (song_id);

create trigger played_setlist_lookups_touch_updated_at before update
  on public.played_setlist_lookups for each row execute function public.touch_updated_at();
create trigger artist_live_history_touch_updated_at before update
  on public.artist_live_history for each row execute function public.touch_updated_at();

-- Sync bookkeeping: backend only.
alter table public.played_setlist_lookups enable row level security;
alter table public.artist_live_history enable row level security;
alter table public.artist_live_songs enable row level security;
revoke all on table public.played_setlist_lookups, public.artist_live_history,
  public.artist_live_songs from anon, authenticated;
grant select, insert, update, delete on table public.played_setlist_lookups,
  public.artist_live_history, public.artist_live_songs to service_role;

-- The live history keeps per-artist freshness (7 days) like the other kinds.
-- 'played_setlist' has its own schedule (played_setlist_lookups), like
-- create_setlist it is not listed.
insert into public.sync_job_kinds (kind, ttl) values ('artist_live_history', interval '7 days');

-- ---------------------------------------------------------------------------------------------
-- Songs from setlist.fm
-- ---------------------------------------------------------------------------------------------

-- Resolve setlist.fm songs ({title, title_key} items) to the artist's
-- catalogue by normalised title, adding the missing ones with source
-- 'setlistfm'. Serialised with the Spotify catalogue import of the artist
-- (the same 'songs:<artist>' lock as public.ingest_songs); a call that added
-- songs queues the predicted setlists of the artist's upcoming shows still
-- without one (public.queue_setlists_for_artist), as a catalogue import does.
create or replace function public.resolve_setlistfm_songs(p_artist_id uuid, items jsonb)
returns table (title_key text, song_id uuid)
language plpgsql
set search_path = ''
as $$
declare
  n_created integer;
begin
  if exists (select 1 from jsonb_array_elements(items) i
              where nullif(btrim(i ->> 'title'), '') is null
                 or nullif(btrim(i ->> 'title_key'), '') is null) then
    raise exception 'every setlist.fm song needs a title and a title key' using errcode = '22023';
  end if;
  perform public.sync_lock_keys(array['songs:' || p_artist_id::text]);
  insert into public.songs (artist_id, title, title_key, source)
  select distinct on (btrim(i.value ->> 'title_key'))
         p_artist_id, btrim(i.value ->> 'title'), btrim(i.value ->> 'title_key'), 'setlistfm'
    from jsonb_array_elements(items) with ordinality as i
   order by btrim(i.value ->> 'title_key'), i.ordinality
  on conflict on constraint songs_one_per_title do nothing;
  get diagnostics n_created = row_count;
  if n_created > 0 then
    perform public.queue_setlists_for_artist(p_artist_id);
  end if;
  return query
    select s.title_key, s.id
      from public.songs s
     where s.artist_id = p_artist_id
       and s.title_key in (select btrim(i ->> 'title_key') from jsonb_array_elements(items) i);
end;
$$;

-- The artist's MusicBrainz id (setlist.fm's artist key); the oldest mapping
-- when Ticketmaster listed several.
create or replace function public.artist_musicbrainz_id(p_artist_id uuid)
returns text
language sql
stable
set search_path = ''
as $$
  select x.external_id from public.artist_external_ids x
   where x.artist_id = p_artist_id and x.source = 'musicbrainz'
   order by x.created_at, x.external_id
   limit 1
$$;

-- ---------------------------------------------------------------------------------------------
-- Played setlists
-- ---------------------------------------------------------------------------------------------

-- When the played setlist is looked up, counted from the show's start
-- (public.voting_closes_at: its start time, or its local date's midnight).
create or replace function public.played_setlist_retry_offsets()
returns interval[]
language sql
immutable
set search_path = ''
as $$
  select array[interval '6 hours', interval '1 day', interval '3 days', interval '7 days']
$$;

create or replace function public.show_started_at(p_show_id uuid)
returns timestamptz
language sql
stable
set search_path = ''
as $$
  select public.voting_closes_at(s.starts_at, s.local_date, s.local_time, v.timezone)
    from public.shows s
    join public.venues v on v.id = s.venue_id
   where s.id = p_show_id
$$;

-- Store the show's played setlist. p_setlist: {setlistfm_id, version_id, url,
-- last_updated, songs: [{title, title_key, set_number, set_name, encore,
-- is_cover, cover_artist_name, cover_artist_mbid, info}]} in playing order,
-- tape entries already left out. A song played twice keeps its first place
-- (one row per song and setlist). Answers {setlist_id, action: created |
-- updated | unchanged, songs}. Concurrent imports of one show serialise on
-- its setlist row; unchanged input writes no row.
create or replace function public.import_played_setlist(p_show_id uuid, p_setlist jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
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
    select r.title_key, r.song_id from public.resolve_setlistfm_songs(v_artist, items) r),
  played as (
    select distinct on (r.song_id) r.song_id, i.ordinality as ord, i.value as item
      from jsonb_array_elements(items) with ordinality as i
      join resolved r on r.title_key = btrim(i.value ->> 'title_key')
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
$$;

-- A lookup of the show's played setlist happened (p_found: a setlist with
-- songs was found and imported). Fills the schedule slot(s) whose time has
-- come and sets the next lookup time; past the last slot it stops, recording
-- 'none_found' when nothing was ever found. Answers the lookup row as jsonb.
create or replace function public.record_played_setlist_lookup(p_show_id uuid, p_found boolean)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  started timestamptz := public.show_started_at(p_show_id);
  offsets interval[] := public.played_setlist_retry_offsets();
  slot integer;
  next_at timestamptz;
  row_out public.played_setlist_lookups%rowtype;
begin
  if started is null then
    raise exception 'no such show' using errcode = 'P0002', hint = 'show_not_found';
  end if;
  select count(*)::integer into slot from unnest(offsets) o where started + o <= now();
  next_at := case when slot < cardinality(offsets) then started + offsets[slot + 1] end;
  insert into public.played_setlist_lookups as l (show_id, status, attempts, schedule_slot,
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
$$;

-- A lookup that failed at the source: tried again in an hour (the scheduler
-- skips it until then), so a setlist.fm outage cannot eat the day's quota.
create or replace function public.record_played_setlist_error(p_show_id uuid, p_error text)
returns void
language sql
set search_path = ''
as $$
  insert into public.played_setlist_lookups as l (show_id, status, last_attempt_at,
                                                  next_attempt_at, last_error)
  values (p_show_id, 'waiting', now(), now() + interval '1 hour', left(p_error, 2000))
  on conflict (show_id) do update
    set last_attempt_at = excluded.last_attempt_at,
        next_attempt_at = excluded.next_attempt_at,
        last_error = excluded.last_error
$$;

-- Queue the played-setlist lookups that are due, most recent shows first, at
-- most max_jobs (see the quota note at the top). Shows of the last 30 days
-- (the retry schedule ends after 7) that took place (not cancelled, removed
-- or postponed) and whose artist has a MusicBrainz id.
create or replace function public.enqueue_played_setlist_lookups(max_jobs integer)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  r record;
  queued integer := 0;
  first_offset interval := (public.played_setlist_retry_offsets())[1];
begin
  for r in
    select s.id
      from public.shows s
      join public.venues v on v.id = s.venue_id
      left join public.played_setlist_lookups l on l.show_id = s.id
     where s.local_date between current_date - 30 and current_date
       and s.status in ('scheduled', 'rescheduled')
       and case when l.show_id is null
                then public.voting_closes_at(s.starts_at, s.local_date, s.local_time, v.timezone)
                     + first_offset <= now()
                else l.next_attempt_at <= now() end
       and exists (select 1 from public.artist_external_ids x
                    where x.artist_id = s.artist_id and x.source = 'musicbrainz')
       and not exists (select 1 from public.sync_pending_jobs p
                        where p.job_kind = 'played_setlist' and p.entity_id = s.id)
     order by s.local_date desc, s.starts_at desc nulls last, s.id
     limit greatest(max_jobs, 0)
  loop
    if public.enqueue_sync_job('played_setlist', r.id) is not null then
      queued := queued + 1;
    end if;
  end loop;
  return queued;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Live history
-- ---------------------------------------------------------------------------------------------

-- Replace the artist's live history. p_setlists: [{setlistfm_id, event_date,
-- songs: [{title, title_key}]}], the counted setlists (with songs) only.
-- Writes only what changed. Answers {setlists, songs}.
create or replace function public.ingest_live_history(p_artist_id uuid, p_setlists jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
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

  insert into public.artist_live_history as h (artist_id, setlists_counted, newest_event_date,
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

  perform public.resolve_setlistfm_songs(p_artist_id, all_songs);

  with plays as (
    select so.id as song_id, count(distinct sl ->> 'setlistfm_id')::integer as plays,
           max((sl ->> 'event_date')::date) as last_played_on
      from jsonb_array_elements(p_setlists) sl
     cross join jsonb_array_elements(sl -> 'songs') song
      join public.songs so
        on so.artist_id = p_artist_id and so.title_key = btrim(song ->> 'title_key')
     group by so.id),
  gone as (
    delete from public.artist_live_songs ls
     where ls.artist_id = p_artist_id
       and not exists (select 1 from plays p where p.song_id = ls.song_id)),
  upserted as (
    insert into public.artist_live_songs as ls (artist_id, song_id, plays, last_played_on)
    select p_artist_id, p.song_id, p.plays, p.last_played_on from plays p
    on conflict (artist_id, song_id) do update
      set plays = excluded.plays, last_played_on = excluded.last_played_on
    where (ls.plays, ls.last_played_on)
          is distinct from (excluded.plays, excluded.last_played_on))
  select count(*)::integer into n_songs from plays;

  return jsonb_build_object('setlists', n_setlists, 'songs', n_songs);
end;
$$;

-- The weight of one catalogue song in create_setlist's draw. With live
-- history (a counted setlist.fm setlist or more): the number of the artist's
-- recent setlists (the counted ones of its 40 newest) that had the song, plus 0.1, so
-- a song played at every show is about 200 times likelier than one never
-- played live, and never-played songs still fill the draw when the artist
-- plays fewer than five. Without live history: 1 for every song (uniform).
create or replace function public.live_draw_weight(plays integer, has_history boolean)
returns double precision
language sql
immutable
set search_path = ''
as $$
  select case when has_history then coalesce(plays, 0) + 0.1 else 1.0 end
$$;

-- The stale-artist scheduler learns the live history: artists with a
-- MusicBrainz id and an upcoming show, the soonest show first.
create or replace function public.enqueue_stale_artist_jobs(job_kind text, max_jobs integer)
returns integer
language plpgsql
set search_path = ''
as $$
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
       and (enqueue_stale_artist_jobs.job_kind <> 'artist_live_history'
            or (ns.next_show is not null
                and exists (select 1 from public.artist_external_ids x
                             where x.artist_id = a.id and x.source = 'musicbrainz')))
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

-- ---------------------------------------------------------------------------------------------
-- create_setlist: the live-weighted draw
-- ---------------------------------------------------------------------------------------------

-- As before (20261122000501_create_setlist.sql), except the draw: five
-- distinct songs by weighted sampling without replacement (Efraimidis and
-- Spirakis: each song's key is -ln(u)/weight, u uniform in (0, 1]; the five
-- smallest keys win), weights from public.live_draw_weight.
create or replace function public.create_setlist(
  show_id uuid,
  enqueue_when_pending boolean default true
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
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
         public.voting_closes_at(s.starts_at, s.local_date, s.local_time, v.timezone)
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
        perform public.enqueue_sync_job('create_setlist', create_setlist.show_id);
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
        left join public.artist_live_history h on h.artist_id = show_artist;
      insert into public.setlist_songs (setlist_id, song_id, position)
      select predicted, pick.id, row_number() over (order by pick.draw)
        from (select so.id,
                     -ln(1.0 - random()) / public.live_draw_weight(ls.plays, has_history)
                       as draw
                from public.songs so
                left join public.artist_live_songs ls
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
    'songs', public.predicted_setlist_songs(predicted),
    'pending_reason', null, 'job_queued', false);
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Grants and schedules
-- ---------------------------------------------------------------------------------------------

revoke execute on function public.resolve_setlistfm_songs(uuid, jsonb)
  from public, anon, authenticated;
revoke execute on function public.import_played_setlist(uuid, jsonb)
  from public, anon, authenticated;
revoke execute on function public.record_played_setlist_lookup(uuid, boolean)
  from public, anon, authenticated;
revoke execute on function public.record_played_setlist_error(uuid, text)
  from public, anon, authenticated;
revoke execute on function public.ingest_live_history(uuid, jsonb)
  from public, anon, authenticated;
grant execute on function public.resolve_setlistfm_songs(uuid, jsonb) to service_role;
revoke execute on function public.artist_musicbrainz_id(uuid) from public, anon, authenticated;
grant execute on function public.artist_musicbrainz_id(uuid) to service_role;
grant execute on function public.import_played_setlist(uuid, jsonb) to service_role;
grant execute on function public.record_played_setlist_lookup(uuid, boolean) to service_role;
grant execute on function public.record_played_setlist_error(uuid, text) to service_role;
grant execute on function public.ingest_live_history(uuid, jsonb) to service_role;
-- Helpers of the public reads and of create_setlist.
revoke execute on function public.played_setlist_retry_offsets() from public;
revoke execute on function public.show_started_at(uuid) from public;
revoke execute on function public.live_draw_weight(integer, boolean) from public;
grant execute on function public.played_setlist_retry_offsets()
  to anon, authenticated, service_role;
grant execute on function public.show_started_at(uuid) to anon, authenticated, service_role;
grant execute on function public.live_draw_weight(integer, boolean)
  to anon, authenticated, service_role;
-- Queues jobs (pgmq): run by the backend's own role, not service_role (see
-- 20261122000420_sync_schedules.sql).
revoke execute on function public.enqueue_played_setlist_lookups(integer)
  from public, anon, authenticated, service_role;
revoke execute on function public.enqueue_stale_artist_jobs(text, integer)
  from public, anon, authenticated, service_role;

select cron.schedule('sync-enqueue-played-setlists', '*/10 * * * *',
                     $$select public.enqueue_played_setlist_lookups(3)$$);
select cron.schedule('sync-enqueue-live-history', '*/20 * * * *',
                     $$select public.enqueue_stale_artist_jobs('artist_live_history', 1)$$);
