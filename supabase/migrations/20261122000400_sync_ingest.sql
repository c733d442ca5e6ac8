-- Idempotent ingest RPCs: artists, venues, shows and songs, each taking a
-- batch as a jsonb array and returning, per input item (ord = 1-based
-- position), the id it resolved and what happened: 'created', 'updated' or
-- 'unchanged'.
--
-- Every function
--   * resolves identity by any known external id, then by natural key;
--   * merges ids from a new source into the entity it resolved (an id that
--     already belongs to another entity is left where it is, except for show
--     event ids, which follow their event);
--   * never creates a second row for one thing: callers serialise on
--     transaction-scoped advisory locks keyed by every external id and
--     natural key of the batch, taken in one sorted pass (no deadlock), and
--     the unique constraints back that up (insert ... on conflict do nothing,
--     then re-select);
--   * writes only what changed: an update runs only when a column differs,
--     so unchanged input leaves every row (xmin, updated_at) untouched.
--
-- Batches should stay in the hundreds or low thousands of items: each key
-- holds one advisory lock until the transaction ends.
--
-- Merge modes for artists: 'replace' (authoritative details: the artist
-- import) sets every column the input knows; 'fill' (artists embedded in
-- events) only fills columns that are still empty.

create or replace function public.sync_lock_keys(keys text[])
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform pg_catalog.pg_advisory_xact_lock(k)
     from (select distinct pg_catalog.hashtextextended(key, 0) as k
             from unnest(keys) as key
            where key is not null) as s
    order by k;
end;
$$;

-- The advisory lock keys of a batch, one function per entity: the ingest
-- functions lock them, and a caller splitting a large input into several
-- calls locks the whole input's keys first (shared/sync/ingest.py), so two
-- overlapping large ingests take their locks in one global order.
create or replace function public.ingest_artist_lock_keys(batch jsonb)
returns text[]
language sql
stable
set search_path = ''
as $$
  select array(
    select 'artist:' || (e ->> 'source') || ':' || (e ->> 'id')
      from jsonb_array_elements(batch) as i,
           jsonb_array_elements(coalesce(i -> 'external_ids', '[]'::jsonb)) as e
    union all
    select 'artist:name:' || public.name_key(i ->> 'name')
      from jsonb_array_elements(batch) as i
     where nullif(btrim(i ->> 'name'), '') is not null)
$$;

create or replace function public.ingest_venue_lock_keys(batch jsonb)
returns text[]
language sql
stable
set search_path = ''
as $$
  select array(
    select 'venue:' || (e ->> 'source') || ':' || (e ->> 'id')
      from jsonb_array_elements(batch) as i,
           jsonb_array_elements(coalesce(i -> 'external_ids', '[]'::jsonb)) as e
    union all
    select 'venue:nk:' || public.name_key(i ->> 'name') || '|'
           || public.name_key(coalesce(nullif(btrim(i ->> 'city'), ''), 'Unknown')) || '|'
           || coalesce(upper(btrim(i ->> 'country_code')), '')
      from jsonb_array_elements(batch) as i
     where nullif(btrim(i ->> 'name'), '') is not null)
$$;

create or replace function public.ingest_show_lock_keys(batch jsonb)
returns text[]
language sql
stable
set search_path = ''
as $$
  select array(
    select 'show:' || (e ->> 'source') || ':' || (e ->> 'id')
      from jsonb_array_elements(batch) as i,
           jsonb_array_elements(coalesce(i -> 'external_ids', '[]'::jsonb)) as e
    union all
    select 'show:nk:' || (i ->> 'artist_id') || '|' || (i ->> 'venue_id') || '|' || (i ->> 'local_date')
      from jsonb_array_elements(batch) as i)
$$;

-- One catalogue import per artist at a time, and one writer per Spotify
-- track id (two artists importing the same track serialise on it).
create or replace function public.ingest_song_lock_keys(p_artist_id uuid, batch jsonb)
returns text[]
language sql
stable
set search_path = ''
as $$
  select array(
    select 'songs:' || p_artist_id::text
    union all
    select 'song:spotify:' || btrim(i ->> 'spotify_id')
      from jsonb_array_elements(batch) as i
     where nullif(btrim(i ->> 'spotify_id'), '') is not null)
$$;

-- ---------------------------------------------------------------------------------------------
-- Artists
-- ---------------------------------------------------------------------------------------------

create or replace function public.ingest_artists(batch jsonb, mode text default 'replace')
returns table (ord integer, artist_id uuid, action text)
language plpgsql
set search_path = ''
as $$
declare
  item jsonb;
  item_ord bigint;
  ids jsonb;
  v_id uuid;
  v_action text;
  v_name text;
  v_key text;
  v_genres text[];
  cur public.artists%rowtype;
  n_name text; n_image text; n_genres text[]; n_popularity smallint; n_followers integer;
  n_tm_url text; n_sp_url text;
  inserted integer;
begin
  if mode not in ('replace', 'fill') then
    raise exception 'mode must be replace or fill, got %', mode using errcode = '22023';
  end if;
  if batch is null or jsonb_typeof(batch) <> 'array' then
    raise exception 'batch must be a json array' using errcode = '22023';
  end if;

  perform public.sync_lock_keys(public.ingest_artist_lock_keys(batch));

  for item, item_ord in select t.value, t.ordinality from jsonb_array_elements(batch) with ordinality as t loop
    v_name := nullif(btrim(item ->> 'name'), '');
    if v_name is null then
      raise exception 'artist % has no name', item_ord using errcode = '22023';
    end if;
    v_key := public.name_key(v_name);
    ids := coalesce((
      select jsonb_agg(distinct jsonb_build_object('source', e ->> 'source', 'id', btrim(e ->> 'id')))
        from jsonb_array_elements(coalesce(item -> 'external_ids', '[]'::jsonb)) as e
       where nullif(btrim(e ->> 'id'), '') is not null), '[]'::jsonb);
    if exists (select 1 from jsonb_array_elements(ids) e
                where e ->> 'source' not in ('ticketmaster', 'spotify', 'musicbrainz')) then
      raise exception 'artist % has an unknown id source', item_ord using errcode = '22023';
    end if;
    v_genres := array(select jsonb_array_elements_text(coalesce(item -> 'genres', '[]'::jsonb)));
    if cardinality(v_genres) = 0 then
      v_genres := null;  -- "no genres" from a source means "unknown"
    end if;
    v_action := 'unchanged';

    -- 1. Any known external id (one-to-one sources first).
    select x.artist_id into v_id
      from public.artist_external_ids x
      join jsonb_to_recordset(ids) as e(source text, id text)
        on x.source = e.source and x.external_id = e.id
     order by array_position(array['spotify', 'musicbrainz', 'ticketmaster'], x.source)
     limit 1;

    -- 2. The natural key: same name, and no source in which both the input
    --    and the artist have ids without sharing one (two bands of one name
    --    on Ticketmaster, with different attraction ids, stay two artists).
    --    Step 1 found no shared id, so: no source in which both have ids.
    if v_id is null then
      select a.id into v_id
        from public.artists a
       where a.name_key = v_key
         and not exists (
           select 1
             from public.artist_external_ids x
            where x.artist_id = a.id
              and x.source in (select e.source
                                 from jsonb_to_recordset(ids) as e(source text, id text)))
       order by a.created_at, a.id
       limit 1;
    end if;

    if v_id is null then
      insert into public.artists (name, image_url, genres, popularity, followers,
                                  ticketmaster_url, spotify_url)
      values (v_name, item ->> 'image_url', coalesce(v_genres, '{}'),
              (item ->> 'popularity')::smallint, (item ->> 'followers')::integer,
              item ->> 'ticketmaster_url', item ->> 'spotify_url')
      returning id into v_id;
      v_action := 'created';
    else
      select * into cur from public.artists a where a.id = v_id;
      if mode = 'replace' then
        n_name := v_name;
        n_image := coalesce(item ->> 'image_url', cur.image_url);
        n_genres := coalesce(v_genres, cur.genres);
        n_popularity := coalesce((item ->> 'popularity')::smallint, cur.popularity);
        n_followers := coalesce((item ->> 'followers')::integer, cur.followers);
        n_tm_url := coalesce(item ->> 'ticketmaster_url', cur.ticketmaster_url);
        n_sp_url := coalesce(item ->> 'spotify_url', cur.spotify_url);
      else
        n_name := cur.name;
        n_image := coalesce(cur.image_url, item ->> 'image_url');
        n_genres := case when cardinality(cur.genres) = 0 then coalesce(v_genres, cur.genres)
                         else cur.genres end;
        n_popularity := coalesce(cur.popularity, (item ->> 'popularity')::smallint);
        n_followers := coalesce(cur.followers, (item ->> 'followers')::integer);
        n_tm_url := coalesce(cur.ticketmaster_url, item ->> 'ticketmaster_url');
        n_sp_url := coalesce(cur.spotify_url, item ->> 'spotify_url');
      end if;
      update public.artists a
         set name = n_name, image_url = n_image, genres = n_genres, popularity = n_popularity,
             followers = n_followers, ticketmaster_url = n_tm_url, spotify_url = n_sp_url
       where a.id = v_id
         and (a.name, a.image_url, a.genres, a.popularity, a.followers, a.ticketmaster_url,
              a.spotify_url)
             is distinct from
             (n_name, n_image, n_genres, n_popularity, n_followers, n_tm_url, n_sp_url);
      if found then
        v_action := 'updated';
      end if;
    end if;

    -- Ids from a new source join the entity; an id owned by another artist stays there.
    insert into public.artist_external_ids (source, external_id, artist_id)
    select e.source, e.id, v_id
      from jsonb_to_recordset(ids) as e(source text, id text)
     order by e.source, e.id
    on conflict on constraint artist_external_ids_pkey do nothing;
    get diagnostics inserted = row_count;
    if inserted > 0 and v_action = 'unchanged' then
      v_action := 'updated';
    end if;

    ord := item_ord;
    artist_id := v_id;
    action := v_action;
    return next;
  end loop;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Venues
-- ---------------------------------------------------------------------------------------------

create or replace function public.ingest_venues(batch jsonb)
returns table (ord integer, venue_id uuid, action text)
language plpgsql
set search_path = ''
as $$
declare
  item jsonb;
  item_ord bigint;
  ids jsonb;
  v_id uuid;
  v_action text;
  v_name text;
  v_city text;
  v_cc text;
  cur public.venues%rowtype;
  n public.venues%rowtype;
  inserted integer;
begin
  if batch is null or jsonb_typeof(batch) <> 'array' then
    raise exception 'batch must be a json array' using errcode = '22023';
  end if;

  perform public.sync_lock_keys(public.ingest_venue_lock_keys(batch));

  for item, item_ord in select t.value, t.ordinality from jsonb_array_elements(batch) with ordinality as t loop
    v_name := nullif(btrim(item ->> 'name'), '');
    if v_name is null then
      raise exception 'venue % has no name', item_ord using errcode = '22023';
    end if;
    -- A venue without a city still needs one for its natural key.
    v_city := coalesce(nullif(btrim(item ->> 'city'), ''), 'Unknown');
    v_cc := upper(btrim(item ->> 'country_code'));
    if v_cc !~ '^[A-Z]{2}$' then
      v_cc := null;
    end if;
    ids := coalesce((
      select jsonb_agg(distinct jsonb_build_object('source', e ->> 'source', 'id', btrim(e ->> 'id')))
        from jsonb_array_elements(coalesce(item -> 'external_ids', '[]'::jsonb)) as e
       where nullif(btrim(e ->> 'id'), '') is not null), '[]'::jsonb);
    if exists (select 1 from jsonb_array_elements(ids) e
                where e ->> 'source' not in ('ticketmaster', 'setlistfm')) then
      raise exception 'venue % has an unknown id source', item_ord using errcode = '22023';
    end if;
    v_action := 'unchanged';
    v_id := null;

    select x.venue_id into v_id
      from public.venue_external_ids x
      join jsonb_to_recordset(ids) as e(source text, id text)
        on x.source = e.source and x.external_id = e.id
     order by x.source, x.external_id
     limit 1;

    if v_id is null then
      select v.id into v_id
        from public.venues v
       where v.name_key = public.name_key(v_name)
         and v.city_key = public.name_key(v_city)
         and v.country_code is not distinct from v_cc;
    end if;

    if v_id is null then
      insert into public.venues (name, city, state, state_code, country_code, country, address,
                                 postal_code, timezone, latitude, longitude)
      values (v_name, v_city, item ->> 'state', item ->> 'state_code', v_cc, item ->> 'country',
              item ->> 'address', item ->> 'postal_code', item ->> 'timezone',
              (item ->> 'latitude')::numeric, (item ->> 'longitude')::numeric)
      on conflict on constraint venues_natural_key do nothing
      returning id into v_id;
      if v_id is null then
        select v.id into v_id
          from public.venues v
         where v.name_key = public.name_key(v_name)
           and v.city_key = public.name_key(v_city)
           and v.country_code is not distinct from v_cc;
      else
        v_action := 'created';
      end if;
    end if;

    if v_action <> 'created' then
      select * into cur from public.venues v where v.id = v_id;
      n := cur;
      -- Renames move the natural key: only when no other venue holds the new one.
      if not exists (select 1 from public.venues v
                      where v.name_key = public.name_key(v_name)
                        and v.city_key = public.name_key(v_city)
                        and v.country_code is not distinct from coalesce(v_cc, cur.country_code)
                        and v.id <> v_id) then
        n.name := v_name;
        n.city := case when nullif(btrim(item ->> 'city'), '') is null then cur.city else v_city end;
        n.country_code := coalesce(v_cc, cur.country_code);
      end if;
      n.state := coalesce(item ->> 'state', cur.state);
      n.state_code := coalesce(item ->> 'state_code', cur.state_code);
      n.country := coalesce(item ->> 'country', cur.country);
      n.address := coalesce(item ->> 'address', cur.address);
      n.postal_code := coalesce(item ->> 'postal_code', cur.postal_code);
      n.timezone := coalesce(item ->> 'timezone', cur.timezone);
      n.latitude := coalesce((item ->> 'latitude')::numeric(9, 6), cur.latitude);
      n.longitude := coalesce((item ->> 'longitude')::numeric(9, 6), cur.longitude);
      update public.venues v
         set name = n.name, city = n.city, state = n.state, state_code = n.state_code,
             country_code = n.country_code, country = n.country, address = n.address,
             postal_code = n.postal_code, timezone = n.timezone, latitude = n.latitude,
             longitude = n.longitude
       where v.id = v_id
         and (v.name, v.city, v.state, v.state_code, v.country_code, v.country, v.address,
              v.postal_code, v.timezone, v.latitude, v.longitude)
             is distinct from
             (n.name, n.city, n.state, n.state_code, n.country_code, n.country, n.address,
              n.postal_code, n.timezone, n.latitude, n.longitude);
      if found then
        v_action := 'updated';
      end if;
    end if;

    insert into public.venue_external_ids (source, external_id, venue_id)
    select e.source, e.id, v_id
      from jsonb_to_recordset(ids) as e(source text, id text)
     order by e.source, e.id
    on conflict on constraint venue_external_ids_pkey do nothing;
    get diagnostics inserted = row_count;
    if inserted > 0 and v_action = 'unchanged' then
      v_action := 'updated';
    end if;

    ord := item_ord;
    venue_id := v_id;
    action := v_action;
    return next;
  end loop;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Shows
-- ---------------------------------------------------------------------------------------------

-- Items: {artist_id, venue_id, local_date, local_time, starts_at, name, status,
-- ticket_url, image_url, on_sale_at, price_min, price_max, price_currency,
-- external_ids: [{source, id}]}. An event id follows its event: if it pointed
-- at another show (the event moved to another date), it is re-pointed.
create or replace function public.ingest_shows(batch jsonb)
returns table (ord integer, show_id uuid, action text)
language plpgsql
set search_path = ''
as $$
declare
  item jsonb;
  item_ord bigint;
  ids jsonb;
  v_id uuid;
  v_nk_id uuid;
  v_action text;
  v_artist uuid;
  v_venue uuid;
  v_date date;
  v_min numeric(10, 2);
  v_max numeric(10, 2);
  v_currency text;
  v_status text;
  cur public.shows%rowtype;
  n public.shows%rowtype;
  changed integer;
begin
  if batch is null or jsonb_typeof(batch) <> 'array' then
    raise exception 'batch must be a json array' using errcode = '22023';
  end if;

  perform public.sync_lock_keys(public.ingest_show_lock_keys(batch));

  for item, item_ord in select t.value, t.ordinality from jsonb_array_elements(batch) with ordinality as t loop
    v_artist := (item ->> 'artist_id')::uuid;
    v_venue := (item ->> 'venue_id')::uuid;
    v_date := (item ->> 'local_date')::date;
    if v_artist is null or v_venue is null or v_date is null then
      raise exception 'show % needs artist_id, venue_id and local_date', item_ord
        using errcode = '22023';
    end if;
    v_status := coalesce(item ->> 'status', 'scheduled');
    v_min := (item ->> 'price_min')::numeric(10, 2);
    v_max := (item ->> 'price_max')::numeric(10, 2);
    if v_min < 0 or v_max < 0 or v_min > v_max then
      v_min := null;
      v_max := null;
    end if;
    v_currency := upper(item ->> 'price_currency');
    if v_currency !~ '^[A-Z]{3}$' then
      v_currency := null;
    end if;
    ids := coalesce((
      select jsonb_agg(distinct jsonb_build_object('source', e ->> 'source', 'id', btrim(e ->> 'id')))
        from jsonb_array_elements(coalesce(item -> 'external_ids', '[]'::jsonb)) as e
       where nullif(btrim(e ->> 'id'), '') is not null), '[]'::jsonb);
    v_action := 'unchanged';
    v_id := null;

    select s.id into v_nk_id
      from public.shows s
     where s.artist_id = v_artist and s.venue_id = v_venue and s.local_date = v_date;

    -- 1. An event id we know (preferring one already on this natural key).
    select x.show_id into v_id
      from public.show_external_ids x
      join jsonb_to_recordset(ids) as e(source text, id text)
        on x.source = e.source and x.external_id = e.id
     order by (x.show_id is not distinct from v_nk_id) desc, x.source, x.external_id
     limit 1;
    -- The event moved onto a concert we already hold: that concert it is.
    if v_id is not null and v_nk_id is not null and v_id <> v_nk_id then
      v_id := v_nk_id;
    end if;
    -- 2. The natural key.
    if v_id is null then
      v_id := v_nk_id;
    end if;

    if v_id is null then
      insert into public.shows (artist_id, venue_id, local_date, local_time, starts_at, name,
                                status, ticket_url, image_url, on_sale_at, price_min, price_max,
                                price_currency)
      values (v_artist, v_venue, v_date, (item ->> 'local_time')::time,
              (item ->> 'starts_at')::timestamptz, item ->> 'name', v_status,
              item ->> 'ticket_url', item ->> 'image_url', (item ->> 'on_sale_at')::timestamptz,
              v_min, v_max, v_currency)
      on conflict on constraint shows_natural_key do nothing
      returning id into v_id;
      if v_id is null then
        select s.id into v_id
          from public.shows s
         where s.artist_id = v_artist and s.venue_id = v_venue and s.local_date = v_date;
      else
        v_action := 'created';
      end if;
    end if;

    if v_action <> 'created' then
      select * into cur from public.shows s where s.id = v_id;
      n := cur;
      n.artist_id := v_artist;
      n.venue_id := v_venue;
      n.local_date := v_date;
      n.local_time := (item ->> 'local_time')::time;
      n.starts_at := (item ->> 'starts_at')::timestamptz;
      n.name := coalesce(item ->> 'name', cur.name);
      n.status := v_status;
      n.ticket_url := coalesce(item ->> 'ticket_url', cur.ticket_url);
      n.image_url := coalesce(item ->> 'image_url', cur.image_url);
      n.on_sale_at := coalesce((item ->> 'on_sale_at')::timestamptz, cur.on_sale_at);
      if v_min is not null then
        n.price_min := v_min;
        n.price_max := v_max;
        n.price_currency := coalesce(v_currency, cur.price_currency);
      end if;
      update public.shows s
         set artist_id = n.artist_id, venue_id = n.venue_id, local_date = n.local_date,
             local_time = n.local_time, starts_at = n.starts_at, name = n.name,
             status = n.status, ticket_url = n.ticket_url, image_url = n.image_url,
             on_sale_at = n.on_sale_at, price_min = n.price_min, price_max = n.price_max,
             price_currency = n.price_currency
       where s.id = v_id
         and (s.artist_id, s.venue_id, s.local_date, s.local_time, s.starts_at, s.name, s.status,
              s.ticket_url, s.image_url, s.on_sale_at, s.price_min, s.price_max, s.price_currency)
             is distinct from
             (n.artist_id, n.venue_id, n.local_date, n.local_time, n.starts_at, n.name, n.status,
              n.ticket_url, n.image_url, n.on_sale_at, n.price_min, n.price_max, n.price_currency);
      if found then
        v_action := 'updated';
      end if;
    end if;

    insert into public.show_external_ids as x (source, external_id, show_id)
    select e.source, e.id, v_id
      from jsonb_to_recordset(ids) as e(source text, id text)
     order by e.source, e.id
    on conflict on constraint show_external_ids_pkey do update
      set show_id = excluded.show_id
      where x.show_id <> excluded.show_id;
    get diagnostics changed = row_count;
    if changed > 0 and v_action = 'unchanged' then
      v_action := 'updated';
    end if;

    ord := item_ord;
    show_id := v_id;
    action := v_action;
    return next;
  end loop;
end;
$$;

-- Upcoming shows of an artist that the source no longer lists become
-- 'removed' (never deleted: they may carry votes). Shows from p_from on only,
-- so a show that already started today is not mistaken for a vanished one.
-- Returns the ids it retired.
create or replace function public.retire_missing_shows(
  p_artist_id uuid,
  p_seen uuid[],
  p_from date
) returns setof uuid
language sql
set search_path = ''
as $$
  update public.shows s
     set status = 'removed'
   where s.artist_id = p_artist_id
     and s.local_date >= p_from
     and s.status in ('scheduled', 'postponed', 'rescheduled')
     and not (s.id = any (coalesce(p_seen, '{}')))
  returning s.id
$$;

-- ---------------------------------------------------------------------------------------------
-- Songs
-- ---------------------------------------------------------------------------------------------

-- Shows of an artist still without a predicted setlist get their
-- create_setlist job once the artist's songs arrive: ingest_songs calls this
-- once per call that created songs (not per song: a 300-song import for an
-- artist with 20 shows queues 20 jobs, not 6,000). The one mechanism; there
-- is no trigger on songs.
-- SECURITY DEFINER: the backend role that ingests songs need not be allowed
-- to queue jobs itself (pgmq).
create or replace function public.queue_setlists_for_artist(p_artist_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  queued integer;
begin
  select count(public.enqueue_sync_job('create_setlist', s.id)) into queued
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
$$;

-- Items: {title, title_key, spotify_id, spotify_url, album, album_spotify_id,
-- release_date, duration_ms, isrc, popularity}; all of one artist.
--
-- A Spotify track id already credited to another artist's song stays there:
-- the song is stored without it. Concurrent imports of one track id by two
-- artists serialise on the id's lock, so the second always sees the first's
-- song and never returns a null id.
create or replace function public.ingest_songs(p_artist_id uuid, batch jsonb)
returns table (ord integer, song_id uuid, action text)
language plpgsql
set search_path = ''
as $$
declare
  item jsonb;
  item_ord bigint;
  v_id uuid;
  v_action text;
  v_title text;
  v_key text;
  v_spotify text;
  v_isrc text;
  cur public.songs%rowtype;
  n public.songs%rowtype;
  n_created integer := 0;
begin
  if p_artist_id is null then
    raise exception 'an artist is required' using errcode = '22023';
  end if;
  if batch is null or jsonb_typeof(batch) <> 'array' then
    raise exception 'batch must be a json array' using errcode = '22023';
  end if;
  -- One catalogue import per artist at a time; one writer per track id.
  perform public.sync_lock_keys(public.ingest_song_lock_keys(p_artist_id, batch));

  for item, item_ord in select t.value, t.ordinality from jsonb_array_elements(batch) with ordinality as t loop
    v_title := nullif(btrim(item ->> 'title'), '');
    v_key := nullif(btrim(coalesce(item ->> 'title_key', public.name_key(v_title))), '');
    if v_title is null or v_key is null then
      raise exception 'song % needs a title', item_ord using errcode = '22023';
    end if;
    v_spotify := nullif(btrim(item ->> 'spotify_id'), '');
    v_isrc := upper(item ->> 'isrc');
    if v_isrc !~ '^[A-Z0-9]{12}$' then
      v_isrc := null;
    end if;
    -- A track id credited to another artist's song stays with that song.
    if v_spotify is not null and exists (
         select 1 from public.songs s where s.spotify_id = v_spotify and s.artist_id <> p_artist_id) then
      v_spotify := null;
    end if;
    v_action := 'unchanged';
    v_id := null;

    if v_spotify is not null then
      select s.id into v_id from public.songs s where s.spotify_id = v_spotify;
    end if;
    if v_id is null then
      select s.id into v_id from public.songs s
       where s.artist_id = p_artist_id and s.title_key = v_key;
    end if;

    if v_id is null then
      insert into public.songs (artist_id, title, title_key, album, album_spotify_id, release_date,
                                duration_ms, isrc, spotify_id, spotify_url, popularity)
      values (p_artist_id, v_title, v_key, item ->> 'album', item ->> 'album_spotify_id',
              (item ->> 'release_date')::date, nullif((item ->> 'duration_ms')::integer, 0),
              v_isrc, v_spotify, item ->> 'spotify_url', (item ->> 'popularity')::smallint)
      on conflict do nothing
      returning id into v_id;
      if v_id is null then
        select s.id into v_id from public.songs s
         where s.artist_id = p_artist_id and s.title_key = v_key;
      else
        v_action := 'created';
        n_created := n_created + 1;
      end if;
      if v_id is null then
        -- Not this artist's title: the track id belongs to a song written
        -- without the lock (by hand). Store the song without it.
        v_spotify := null;
        insert into public.songs (artist_id, title, title_key, album, album_spotify_id,
                                  release_date, duration_ms, isrc, spotify_url, popularity)
        values (p_artist_id, v_title, v_key, item ->> 'album', item ->> 'album_spotify_id',
                (item ->> 'release_date')::date, nullif((item ->> 'duration_ms')::integer, 0),
                v_isrc, item ->> 'spotify_url', (item ->> 'popularity')::smallint)
        returning id into v_id;
        v_action := 'created';
        n_created := n_created + 1;
      end if;
    end if;

    if v_action <> 'created' then
      select * into cur from public.songs s where s.id = v_id;
      n := cur;
      n.title := v_title;
      if not exists (select 1 from public.songs s
                      where s.artist_id = p_artist_id and s.title_key = v_key and s.id <> v_id) then
        n.title_key := v_key;
      end if;
      if v_spotify is not null and not exists (
           select 1 from public.songs s where s.spotify_id = v_spotify and s.id <> v_id) then
        n.spotify_id := v_spotify;
        n.spotify_url := coalesce(item ->> 'spotify_url', cur.spotify_url);
      end if;
      n.album := coalesce(item ->> 'album', cur.album);
      n.album_spotify_id := coalesce(item ->> 'album_spotify_id', cur.album_spotify_id);
      n.release_date := coalesce((item ->> 'release_date')::date, cur.release_date);
      n.duration_ms := coalesce(nullif((item ->> 'duration_ms')::integer, 0), cur.duration_ms);
      n.isrc := coalesce(v_isrc, cur.isrc);
      n.popularity := coalesce((item ->> 'popularity')::smallint, cur.popularity);
      update public.songs s
         set title = n.title, title_key = n.title_key, album = n.album,
             album_spotify_id = n.album_spotify_id, release_date = n.release_date,
             duration_ms = n.duration_ms, isrc = n.isrc, spotify_id = n.spotify_id,
             spotify_url = n.spotify_url, popularity = n.popularity
       where s.id = v_id
         and (s.title, s.title_key, s.album, s.album_spotify_id, s.release_date, s.duration_ms,
              s.isrc, s.spotify_id, s.spotify_url, s.popularity)
             is distinct from
             (n.title, n.title_key, n.album, n.album_spotify_id, n.release_date, n.duration_ms,
              n.isrc, n.spotify_id, n.spotify_url, n.popularity);
      if found then
        v_action := 'updated';
      end if;
    end if;

    ord := item_ord;
    song_id := v_id;
    action := v_action;
    return next;
  end loop;

  if n_created > 0 then
    perform public.queue_setlists_for_artist(p_artist_id);
  end if;
end;
$$;

revoke execute on function public.sync_lock_keys(text[]) from public, anon, authenticated;
revoke execute on function public.ingest_artist_lock_keys(jsonb) from public, anon, authenticated;
revoke execute on function public.ingest_venue_lock_keys(jsonb) from public, anon, authenticated;
revoke execute on function public.ingest_show_lock_keys(jsonb) from public, anon, authenticated;
revoke execute on function public.ingest_song_lock_keys(uuid, jsonb) from public, anon, authenticated;
revoke execute on function public.queue_setlists_for_artist(uuid) from public, anon, authenticated;
revoke execute on function public.ingest_artists(jsonb, text) from public, anon, authenticated;
revoke execute on function public.ingest_venues(jsonb) from public, anon, authenticated;
revoke execute on function public.ingest_shows(jsonb) from public, anon, authenticated;
revoke execute on function public.retire_missing_shows(uuid, uuid[], date) from public, anon, authenticated;
revoke execute on function public.ingest_songs(uuid, jsonb) from public, anon, authenticated;
grant execute on function public.sync_lock_keys(text[]) to service_role;
grant execute on function public.ingest_artist_lock_keys(jsonb) to service_role;
grant execute on function public.ingest_venue_lock_keys(jsonb) to service_role;
grant execute on function public.ingest_show_lock_keys(jsonb) to service_role;
grant execute on function public.ingest_song_lock_keys(uuid, jsonb) to service_role;
-- ingest_songs (service_role) calls it; as a definer it queues the jobs.
grant execute on function public.queue_setlists_for_artist(uuid) to service_role;
grant execute on function public.ingest_artists(jsonb, text) to service_role;
grant execute on function public.ingest_venues(jsonb) to service_role;
grant execute on function public.ingest_shows(jsonb) to service_role;
grant execute on function public.retire_missing_shows(uuid, uuid[], date) to service_role;
grant execute on function public.ingest_songs(uuid, jsonb) to service_role;
