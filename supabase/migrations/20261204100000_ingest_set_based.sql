-- The ingest RPCs, set-based: ingest_artists, ingest_venues, ingest_shows and
-- ingest_songs resolve a whole batch in a few statements instead of a loop
-- of statements per item (bench_ingest: row by row ran at 1/450 of COPY).
-- Their contract is the one of 20261122000400_sync_ingest.sql: identity by
-- any known external id, then by natural key; the homonym rule; ids from a
-- new source merged; an id owned by another entity left there (show event ids
-- follow their event); one real-world thing one row; unchanged input writes
-- no row; every key of the batch locked in one sorted pass
-- (public.sync_lock_keys; shared/sync/ingest.py locks a large input's keys
-- up front, so inputs split into several calls still lock in one global
-- order).
--
-- Rounds, so that a batch means what its items mean one by one. Items of one
-- batch can depend on each other: two listings of one venue, an artist
-- created by one item and found by name by the next, an id merged into an
-- artist that decides the homonym rule for a later item. Each round takes
-- every pending item that shares no key with an earlier pending item, where
-- an item's keys are its natural key, its external ids, every row those
-- match now (by id, and by natural key whether or not the homonym rule lets
-- it match), and the natural key it would write. Items of one round touch
-- disjoint rows and read nothing another of them writes, so writing them
-- together equals writing them in order; the others wait for a later round,
-- which sees the writes. A batch without such collisions is one round; the
-- worst case (every item the same thing) is one round per item.
--
-- An insert that finds its natural key taken after all (a row written
-- without the locks) leaves its item pending: the next round resolves it to
-- that row, as the one-by-one version re-selected it.

-- ---------------------------------------------------------------------------------------------
-- Parsing: each batch is read into rows once per statement, its keys once per call.
-- ---------------------------------------------------------------------------------------------

-- Every item's external ids, trimmed, without blanks or repeats.
create or replace function public.ingest_external_ids(batch jsonb)
returns table (ord integer, source text, external_id text)
language sql
stable
set search_path = ''
as $$
  select distinct i.ordinality::integer, e ->> 'source', pg_catalog.btrim(e ->> 'id')
    from pg_catalog.jsonb_array_elements(batch) with ordinality as i,
         pg_catalog.jsonb_array_elements(coalesce(i.value -> 'external_ids', '[]'::jsonb)) as e
   where nullif(pg_catalog.btrim(e ->> 'id'), '') is not null
$$;

create or replace function public.ingest_artist_rows(batch jsonb)
returns table (ord integer, name text, image_url text, genres text[], popularity smallint,
               followers integer, ticketmaster_url text, spotify_url text)
language sql
stable
set search_path = ''
as $$
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
$$;

create or replace function public.ingest_venue_rows(batch jsonb)
returns table (ord integer, name text, city_given text, city text, country_code text,
               state text, state_code text, country text, address text, postal_code text,
               timezone text, latitude numeric(9, 6), longitude numeric(9, 6))
language sql
stable
set search_path = ''
as $$
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
$$;

create or replace function public.ingest_show_rows(batch jsonb)
returns table (ord integer, artist_id uuid, venue_id uuid, local_date date, local_time time,
               starts_at timestamptz, name text, status text, ticket_url text, image_url text,
               on_sale_at timestamptz, price_min numeric(10, 2), price_max numeric(10, 2),
               price_currency text)
language sql
stable
set search_path = ''
as $$
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
$$;

-- title_key is the caller's (shared/sources/records.py), or the name key of the title.
create or replace function public.ingest_song_rows(batch jsonb)
returns table (ord integer, title text, title_key text, spotify_id text, spotify_url text,
               album text, album_spotify_id text, release_date date, duration_ms integer,
               isrc text, popularity smallint)
language sql
stable
set search_path = ''
as $$
  select t.ordinality::integer,
         nullif(pg_catalog.btrim(t.value ->> 'title'), ''),
         nullif(pg_catalog.btrim(coalesce(
           t.value ->> 'title_key',
           public.name_key(nullif(pg_catalog.btrim(t.value ->> 'title'), '')))), ''),
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
$$;

-- ---------------------------------------------------------------------------------------------
-- Lock keys: built from the parsed batch, so an ingest parses its batch once.
-- shared/sync/ingest.py locks a large input's keys up front through the
-- jsonb versions (ingest_*_lock_keys), which build the same keys.
-- ---------------------------------------------------------------------------------------------

create or replace function public.artist_lock_keys(
  id_sources text[], id_values text[], name_keys text[]
) returns text[]
language sql
immutable
set search_path = ''
as $$
  select array(
    select 'artist:' || x.source || ':' || x.external_id
      from unnest(id_sources, id_values) as x(source, external_id)
    union all
    select 'artist:name:' || k.name_key from unnest(name_keys) as k(name_key)
     where k.name_key is not null)
$$;

create or replace function public.ingest_artist_lock_keys(batch jsonb)
returns text[]
language sql
stable
set search_path = ''
as $$
  select public.artist_lock_keys(
           array_agg(x.source), array_agg(x.external_id),
           array(select public.name_key(i.name) from public.ingest_artist_rows(batch) as i))
    from public.ingest_external_ids(batch) as x
$$;

create or replace function public.venue_lock_keys(
  id_sources text[], id_values text[], name_keys text[], city_keys text[], countries text[]
) returns text[]
language sql
immutable
set search_path = ''
as $$
  select array(
    select 'venue:' || x.source || ':' || x.external_id
      from unnest(id_sources, id_values) as x(source, external_id)
    union all
    select 'venue:nk:' || k.name_key || '|' || k.city_key || '|' || coalesce(k.country_code, '')
      from unnest(name_keys, city_keys, countries) as k(name_key, city_key, country_code)
     where k.name_key is not null)
$$;

create or replace function public.ingest_venue_lock_keys(batch jsonb)
returns text[]
language sql
stable
set search_path = ''
as $$
  select public.venue_lock_keys(x.sources, x.external_ids, v.name_keys, v.city_keys, v.countries)
    from (select array_agg(x.source) as sources, array_agg(x.external_id) as external_ids
            from public.ingest_external_ids(batch) as x) as x,
         (select array_agg(public.name_key(i.name)) as name_keys,
                 array_agg(public.name_key(i.city)) as city_keys,
                 array_agg(i.country_code) as countries
            from public.ingest_venue_rows(batch) as i) as v
$$;

create or replace function public.show_lock_keys(
  id_sources text[], id_values text[], natural_keys text[]
) returns text[]
language sql
immutable
set search_path = ''
as $$
  select array(
    select 'show:' || x.source || ':' || x.external_id
      from unnest(id_sources, id_values) as x(source, external_id)
    union all
    select 'show:nk:' || k.natural_key from unnest(natural_keys) as k(natural_key)
     where k.natural_key is not null)
$$;

create or replace function public.ingest_show_lock_keys(batch jsonb)
returns text[]
language sql
stable
set search_path = ''
as $$
  select public.show_lock_keys(
           array_agg(x.source), array_agg(x.external_id),
           array(select i.artist_id || '|' || i.venue_id || '|' || i.local_date
                   from public.ingest_show_rows(batch) as i))
    from public.ingest_external_ids(batch) as x
$$;

-- The items of a round: every pending item none of whose keys an earlier
-- pending item has.
create or replace function public.ingest_round(item_ords integer[], item_keys text[])
returns integer[]
language sql
immutable
set search_path = ''
as $$
  select coalesce(array_agg(k.ord order by k.ord), '{}')
    from (select k.ord, bool_and(k.first = k.ord) as first_for_all
            from (select k.ord, min(k.ord) over (partition by k.key collate "C") as first
                    from unnest(item_ords, item_keys) as k(ord, key)
                   where k.key is not null) as k
           group by k.ord) as k
   where k.first_for_all
$$;

-- ---------------------------------------------------------------------------------------------
-- Artists
-- ---------------------------------------------------------------------------------------------

create or replace function public.ingest_artists(batch jsonb, mode text default 'replace')
returns table (ord integer, artist_id uuid, action text)
language plpgsql
set search_path = ''
as $$
#variable_conflict use_column
declare
  bad record;
  name_keys text[];
  id_ords integer[];
  id_sources text[];
  id_values text[];
  pending integer[];
  round_ords integer[];
  round_ids uuid[];
  round_new boolean[];
  touched uuid[];
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
    from public.ingest_external_ids(batch) as x;
  select array_agg(i.ord order by i.ord), array_agg(public.name_key(i.name) order by i.ord)
    into pending, name_keys
    from public.ingest_artist_rows(batch) as i;

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

  perform public.sync_lock_keys(public.artist_lock_keys(id_sources, id_values, name_keys));

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
      select unnest(public.ingest_round(array_agg(k.ord), array_agg(k.key))) as ord from keyed as k
    )
    select array_agg(r.ord order by r.ord),
           array_agg(coalesce(v.artist_id, gen_random_uuid()) order by r.ord),
           array_agg(v.artist_id is null order by r.ord)
      into round_ords, round_ids, round_new
      from round as r
      left join resolved as v on v.ord = r.ord;

    if true = any (round_new) then
      insert into public.artists (id, name, image_url, genres, popularity, followers,
                                  ticketmaster_url, spotify_url)
      select r.id, i.name, i.image_url, coalesce(i.genres, '{}'), i.popularity, i.followers,
             i.ticketmaster_url, i.spotify_url
        from unnest(round_ords, round_ids, round_new) as r(ord, id, is_new)
        join public.ingest_artist_rows(batch) as i on i.ord = r.ord
       where r.is_new;
    end if;

    -- 'replace' (authoritative details: the artist import) sets every column
    -- the input knows; 'fill' (artists embedded in events) only fills
    -- columns that are still empty.
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
                join public.ingest_artist_rows(batch) as i on i.ord = r.ord
                join public.artists as c on c.id = r.id
               where not r.is_new) as n
       where a.id = n.id
         and (a.name, a.image_url, a.genres, a.popularity, a.followers, a.ticketmaster_url,
              a.spotify_url)
             is distinct from
             (n.name, n.image_url, n.genres, n.popularity, n.followers, n.ticketmaster_url,
              n.spotify_url)
      returning a.id
    ), merged as (
      -- Ids from a new source join the entity; an id owned by another artist stays there.
      insert into public.artist_external_ids (source, external_id, artist_id)
      select x.source, x.external_id, r.id
        from unnest(id_ords, id_sources, id_values) as x(ord, source, external_id)
        join unnest(round_ords, round_ids) as r(ord, id) on r.ord = x.ord
       order by x.source, x.external_id
      on conflict on constraint artist_external_ids_pkey do nothing
      returning artist_id
    )
    select array(select changed.id from changed union select merged.artist_id from merged)
      into touched;

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

  return query
    select o.ord, o.id, o.action from unnest(out_ords, out_ids, out_actions) as o(ord, id, action)
     order by o.ord;
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
#variable_conflict use_column
declare
  bad record;
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
    from public.ingest_external_ids(batch) as x;
  select array_agg(i.ord order by i.ord), array_agg(public.name_key(i.name) order by i.ord),
         array_agg(public.name_key(i.city) order by i.ord),
         array_agg(i.country_code order by i.ord), array_agg(i.city_given is not null order by i.ord)
    into pending, name_keys, city_keys, countries, cities_given
    from public.ingest_venue_rows(batch) as i;

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

  perform public.sync_lock_keys(
    public.venue_lock_keys(id_sources, id_values, name_keys, city_keys, countries));

  while cardinality(pending) > 0 loop
    rounds := rounds + 1;
    if rounds > 2 * cardinality(name_keys) + 1 then
      raise exception 'ingest_venues made no progress' using errcode = 'XX000';
    end if;

    with item as (
      select p.ord, name_keys[p.ord] as name_key, city_keys[p.ord] as city_key,
             countries[p.ord] as country_code, cities_given[p.ord] as city_given
        from unnest(pending) as p(ord)
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
      select unnest(public.ingest_round(array_agg(k.ord), array_agg(k.key))) as ord from keyed as k
    )
    select array_agg(r.ord order by r.ord),
           array_agg(coalesce(v.venue_id, gen_random_uuid()) order by r.ord),
           array_agg(v.venue_id is null order by r.ord)
      into round_ords, round_ids, round_new
      from round as r
      join resolved as v on v.ord = r.ord;

    if true = any (round_new) then
      with created as (
        insert into public.venues (id, name, city, state, state_code, country_code, country,
                                   address, postal_code, timezone, latitude, longitude)
        select r.id, i.name, i.city, i.state, i.state_code, i.country_code, i.country, i.address,
               i.postal_code, i.timezone, i.latitude, i.longitude
          from unnest(round_ords, round_ids, round_new) as r(ord, id, is_new)
          join public.ingest_venue_rows(batch) as i on i.ord = r.ord
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
                join public.ingest_venue_rows(batch) as i on i.ord = r.ord
                join public.venues as c on c.id = r.id
                -- Renames move the natural key: only when no other venue holds the new one.
                cross join lateral (
                  select not exists (
                           select 1 from public.venues as o
                            where o.name_key = name_keys[r.ord]
                              and o.city_key = city_keys[r.ord]
                              and o.country_code is not distinct from
                                  coalesce(i.country_code, c.country_code)
                              and o.id <> r.id) as renames) as m
               where not r.is_new) as n
       where v.id = n.id
         and (v.name, v.city, v.state, v.state_code, v.country_code, v.country, v.address,
              v.postal_code, v.timezone, v.latitude, v.longitude)
             is distinct from
             (n.name, n.city, n.state, n.state_code, n.country_code, n.country, n.address,
              n.postal_code, n.timezone, n.latitude, n.longitude)
      returning v.id
    ), merged as (
      insert into public.venue_external_ids (source, external_id, venue_id)
      select x.source, x.external_id, r.id
        from unnest(id_ords, id_sources, id_values) as x(ord, source, external_id)
        join unnest(round_ords, round_ids) as r(ord, id) on r.ord = x.ord
       order by x.source, x.external_id
      on conflict on constraint venue_external_ids_pkey do nothing
      returning venue_id
    )
    select array(select changed.id from changed union select merged.venue_id from merged)
      into touched;

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

  return query
    select o.ord, o.id, o.action from unnest(out_ords, out_ids, out_actions) as o(ord, id, action)
     order by o.ord;
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
#variable_conflict use_column
declare
  bad integer;
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
    from public.ingest_external_ids(batch) as x;
  select array_agg(i.ord order by i.ord),
         array_agg(i.artist_id || '|' || i.venue_id || '|' || i.local_date order by i.ord)
    into pending, natural_keys
    from public.ingest_show_rows(batch) as i;
  select min(k.ord) into bad from unnest(pending, natural_keys) as k(ord, key) where k.key is null;
  if bad is not null then
    raise exception 'show % needs artist_id, venue_id and local_date', bad using errcode = '22023';
  end if;

  perform public.sync_lock_keys(public.show_lock_keys(id_sources, id_values, natural_keys));

  while cardinality(pending) > 0 loop
    rounds := rounds + 1;
    if rounds > 2 * cardinality(natural_keys) + 1 then
      raise exception 'ingest_shows made no progress' using errcode = 'XX000';
    end if;

    with item as (
      select i.ord, i.artist_id, i.venue_id, i.local_date
        from public.ingest_show_rows(batch) as i
       where i.ord in (select unnest(pending))
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
      select item.ord, 'key:' || natural_keys[item.ord] as key from item
      union all select ids.ord, ids.source || ':' || ids.external_id from ids
      union all select b.ord, 'row:' || b.show_id from by_id as b
      union all select k.ord, 'row:' || k.show_id from by_key as k
    ), round as (
      select unnest(public.ingest_round(array_agg(k.ord), array_agg(k.key))) as ord from keyed as k
    )
    select array_agg(r.ord order by r.ord),
           array_agg(coalesce(v.show_id, gen_random_uuid()) order by r.ord),
           array_agg(v.show_id is null order by r.ord)
      into round_ords, round_ids, round_new
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
          join public.ingest_show_rows(batch) as i on i.ord = r.ord
         where r.is_new
        on conflict on constraint shows_natural_key do nothing
        returning id
      )
      select array(select created.id from created) into inserted;

      -- A new show whose natural key was taken after all waits for the next round.
      select coalesce(array_agg(r.ord order by r.ord), '{}'),
             coalesce(array_agg(r.id order by r.ord), '{}'),
             coalesce(array_agg(r.is_new order by r.ord), '{}')
        into round_ords, round_ids, round_new
        from unnest(round_ords, round_ids, round_new) as r(ord, id, is_new)
       where not r.is_new or r.id in (select unnest(inserted));
    end if;

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
                join public.ingest_show_rows(batch) as i on i.ord = r.ord
                join public.shows as c on c.id = r.id
               where not r.is_new) as n
       where s.id = n.id
         and (s.artist_id, s.venue_id, s.local_date, s.local_time, s.starts_at, s.name, s.status,
              s.ticket_url, s.image_url, s.on_sale_at, s.price_min, s.price_max, s.price_currency)
             is distinct from
             (n.artist_id, n.venue_id, n.local_date, n.local_time, n.starts_at, n.name, n.status,
              n.ticket_url, n.image_url, n.on_sale_at, n.price_min, n.price_max, n.price_currency)
      returning s.id
    ), merged as (
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
    select array(select changed.id from changed union select merged.show_id from merged)
      into touched;

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

  return query
    select o.ord, o.id, o.action from unnest(out_ords, out_ids, out_actions) as o(ord, id, action)
     order by o.ord;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Songs
-- ---------------------------------------------------------------------------------------------

-- Items: {title, title_key, spotify_id, spotify_url, album, album_spotify_id,
-- release_date, duration_ms, isrc, popularity}; all of one artist.
--
-- A Spotify track id already credited to another artist's song stays there:
-- the song is stored without it. Concurrent imports of one track id by two
-- artists serialise on the id's lock, so the second always sees the first's
-- song and never returns a null id. An import that created songs queues
-- create_setlist for the artist's shows still without a setlist, once
-- (public.queue_setlists_for_artist).
create or replace function public.ingest_songs(p_artist_id uuid, batch jsonb)
returns table (ord integer, song_id uuid, action text)
language plpgsql
set search_path = ''
as $$
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
    from public.ingest_song_rows(batch) as i;
  select min(k.ord) into bad from unnest(pending, title_keys) as k(ord, key) where k.key is null;
  if bad is not null then
    raise exception 'song % needs a title', bad using errcode = '22023';
  end if;

  -- One catalogue import per artist at a time; one writer per track id.
  perform public.sync_lock_keys(public.ingest_song_lock_keys(p_artist_id, batch));

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
        from public.ingest_song_rows(batch) as i
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
      select unnest(public.ingest_round(array_agg(k.ord), array_agg(k.key))) as ord from keyed as k
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
        insert into public.songs (id, artist_id, title, title_key, album, album_spotify_id,
                                  release_date, duration_ms, isrc, spotify_id, spotify_url,
                                  popularity)
        select r.id, p_artist_id, i.title, i.title_key, i.album, i.album_spotify_id,
               i.release_date, i.duration_ms, i.isrc, r.spotify_id, i.spotify_url, i.popularity
          from unnest(round_ords, round_ids, round_new, round_spotify)
                 as r(ord, id, is_new, spotify_id)
          join public.ingest_song_rows(batch) as i on i.ord = r.ord
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
         set title = n.title, title_key = n.title_key, album = n.album,
             album_spotify_id = n.album_spotify_id, release_date = n.release_date,
             duration_ms = n.duration_ms, isrc = n.isrc, spotify_id = n.spotify_id,
             spotify_url = n.spotify_url, popularity = n.popularity
        from (select r.id, i.title,
                     case when exists (select 1 from public.songs as o
                                        where o.artist_id = p_artist_id
                                          and o.title_key = i.title_key and o.id <> r.id)
                          then c.title_key else i.title_key end as title_key,
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
                join public.ingest_song_rows(batch) as i on i.ord = r.ord
                join public.songs as c on c.id = r.id
                cross join lateral (
                  select r.spotify_id is not null
                         and not exists (select 1 from public.songs as o
                                          where o.spotify_id = r.spotify_id and o.id <> r.id)
                           as takes_spotify) as m
               where not r.is_new) as n
       where s.id = n.id
         and (s.title, s.title_key, s.album, s.album_spotify_id, s.release_date, s.duration_ms,
              s.isrc, s.spotify_id, s.spotify_url, s.popularity)
             is distinct from
             (n.title, n.title_key, n.album, n.album_spotify_id, n.release_date, n.duration_ms,
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
    perform public.queue_setlists_for_artist(p_artist_id);
  end if;

  return query
    select o.ord, o.id, o.action from unnest(out_ords, out_ids, out_actions) as o(ord, id, action)
     order by o.ord;
end;
$$;

revoke execute on function public.ingest_external_ids(jsonb) from public, anon, authenticated;
revoke execute on function public.ingest_artist_rows(jsonb) from public, anon, authenticated;
revoke execute on function public.ingest_venue_rows(jsonb) from public, anon, authenticated;
revoke execute on function public.ingest_show_rows(jsonb) from public, anon, authenticated;
revoke execute on function public.ingest_song_rows(jsonb) from public, anon, authenticated;
revoke execute on function public.ingest_round(integer[], text[]) from public, anon, authenticated;
grant execute on function public.ingest_external_ids(jsonb) to service_role;
grant execute on function public.ingest_artist_rows(jsonb) to service_role;
grant execute on function public.ingest_venue_rows(jsonb) to service_role;
grant execute on function public.ingest_show_rows(jsonb) to service_role;
grant execute on function public.ingest_song_rows(jsonb) to service_role;
grant execute on function public.ingest_round(integer[], text[]) to service_role;
revoke execute on function public.artist_lock_keys(text[], text[], text[]) from public, anon, authenticated;
revoke execute on function public.venue_lock_keys(text[], text[], text[], text[], text[]) from public, anon, authenticated;
revoke execute on function public.show_lock_keys(text[], text[], text[]) from public, anon, authenticated;
grant execute on function public.artist_lock_keys(text[], text[], text[]) to service_role;
grant execute on function public.venue_lock_keys(text[], text[], text[], text[], text[]) to service_role;
grant execute on function public.show_lock_keys(text[], text[], text[]) to service_role;
