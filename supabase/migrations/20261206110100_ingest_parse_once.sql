-- The ingest RPCs, cheaper per round (issue 12; bench_ingest, before: COPY
-- 81-110x the ingest rate). Same contract and same rounds as
-- 20261204100000_ingest_set_based.sql; what changed is how much each round
-- costs:
--
-- * A batch is parsed once. Every statement of a round re-read the jsonb
--   (ingest_*_rows: four parses of a show batch per call); now the parsed
--   items are held in one array of a row type (public.ingest_*_item) and
--   every statement unnests that.
-- * public.ingest_round groups keys by hashing instead of sorting them in a
--   window: same rounds.
-- * The update statement runs only when the round matched existing rows, and
--   a venue checks whether another venue holds its natural key only when the
--   input would move the key.
-- * The external-id merge runs only when the round has an id that is unknown
--   or known for another row (an unchanged batch writes and probes nothing).
--
-- The floor these cannot go below is the same rows written by plain INSERT
-- ... SELECT (bench_ingest prints it: 15-18x COPY here), so the issue's 10x
-- of COPY is out of reach for any ingest into these tables as they are.

-- The items of a round: every pending item none of whose keys an earlier
-- pending item has (each key's first item, by hash aggregation).
create or replace function public.ingest_round(item_ords integer[], item_keys text[])
returns integer[]
language sql
immutable
set search_path = ''
as $$
  with k as (
    select k.ord, k.key from unnest(item_ords, item_keys) as k(ord, key) where k.key is not null
  ), first as (
    select k.key, min(k.ord) as ord from k group by k.key
  )
  select coalesce(array_agg(k.ord order by k.ord), '{}')
    from (select k.ord from k join first as f on f.key = k.key
           group by k.ord having bool_and(f.ord = k.ord)) as k
$$;

-- ---------------------------------------------------------------------------------------------
-- Shows
-- ---------------------------------------------------------------------------------------------

-- One parsed show item (public.ingest_show_rows without its ord: an item's
-- ord is its position in the array).
create type public.ingest_show_item as (
  artist_id uuid, venue_id uuid, local_date date, local_time time, starts_at timestamptz,
  name text, status text, ticket_url text, image_url text, on_sale_at timestamptz,
  price_min numeric(10, 2), price_max numeric(10, 2), price_currency text, natural_key text
);

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
  items public.ingest_show_item[];
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
    from public.ingest_external_ids(batch) as x;
  select array_agg(i.ord order by i.ord),
         array_agg(i.artist_id || '|' || i.venue_id || '|' || i.local_date order by i.ord),
         array_agg(row(i.artist_id, i.venue_id, i.local_date, i.local_time, i.starts_at, i.name,
                       i.status, i.ticket_url, i.image_url, i.on_sale_at, i.price_min,
                       i.price_max, i.price_currency,
                       i.artist_id || '|' || i.venue_id || '|' || i.local_date
                   )::public.ingest_show_item order by i.ord)
    into pending, natural_keys, items
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
      select unnest(public.ingest_round(array_agg(k.ord), array_agg(k.key))) as ord from keyed as k
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
$$;

revoke execute on function public.ingest_shows(jsonb) from public, anon, authenticated;
grant execute on function public.ingest_shows(jsonb) to service_role;
-- ---------------------------------------------------------------------------------------------
-- Venues
-- ---------------------------------------------------------------------------------------------

-- One parsed venue item (public.ingest_venue_rows without its ord, with its keys).
create type public.ingest_venue_item as (
  name text, city_given text, city text, country_code text, state text, state_code text,
  country text, address text, postal_code text, timezone text, latitude numeric(9, 6),
  longitude numeric(9, 6), name_key text, city_key text
);

create or replace function public.ingest_venues(batch jsonb)
returns table (ord integer, venue_id uuid, action text)
language plpgsql
set search_path = ''
as $$
#variable_conflict use_column
declare
  bad record;
  items public.ingest_venue_item[];
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
    from public.ingest_external_ids(batch) as x;
  select array_agg(i.ord order by i.ord), array_agg(i.name_key order by i.ord),
         array_agg(i.city_key order by i.ord),
         array_agg(i.country_code order by i.ord), array_agg(i.city_given is not null order by i.ord),
         array_agg(row(i.name, i.city_given, i.city, i.country_code, i.state, i.state_code,
                       i.country, i.address, i.postal_code, i.timezone, i.latitude, i.longitude,
                       i.name_key, i.city_key)::public.ingest_venue_item order by i.ord)
    into pending, name_keys, city_keys, countries, cities_given, items
    from (select i.*, public.name_key(i.name) as name_key, public.name_key(i.city) as city_key
            from public.ingest_venue_rows(batch) as i
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

  perform public.sync_lock_keys(
    public.venue_lock_keys(id_sources, id_values, name_keys, city_keys, countries));

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
      select unnest(public.ingest_round(array_agg(k.ord), array_agg(k.key))) as ord from keyed as k
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
$$;


revoke execute on function public.ingest_venues(jsonb) from public, anon, authenticated;
grant execute on function public.ingest_venues(jsonb) to service_role;
-- ---------------------------------------------------------------------------------------------
-- Artists
-- ---------------------------------------------------------------------------------------------

-- One parsed artist item (public.ingest_artist_rows without its ord).
create type public.ingest_artist_item as (
  name text, image_url text, genres text[], popularity smallint, followers integer,
  ticketmaster_url text, spotify_url text
);

create or replace function public.ingest_artists(batch jsonb, mode text default 'replace')
returns table (ord integer, artist_id uuid, action text)
language plpgsql
set search_path = ''
as $$
#variable_conflict use_column
declare
  bad record;
  items public.ingest_artist_item[];
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
    from public.ingest_external_ids(batch) as x;
  select array_agg(i.ord order by i.ord), array_agg(public.name_key(i.name) order by i.ord),
         array_agg(row(i.name, i.image_url, i.genres, i.popularity, i.followers,
                       i.ticketmaster_url, i.spotify_url)::public.ingest_artist_item order by i.ord)
    into pending, name_keys, items
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
$$;


revoke execute on function public.ingest_artists(jsonb, text) from public, anon, authenticated;
grant execute on function public.ingest_artists(jsonb, text) to service_role;
