-- The database owns every key (issue 14). A song's title key was computed
-- in Python (shared/sources/records.py) and trusted here, while artists' and
-- venues' name keys were generated columns; Python reproduced public.name_key
-- from tables generated from one machine's unaccent rules, so a database with
-- other rules would have keyed the same name two ways. Now Python parses
-- (which part of a Spotify track name or a setlist.fm song name is the title)
-- and the database folds: songs.title_key is generated from the stored title
-- by public.song_title_key, and whatever Python needs a key for (de-duplicating
-- a batch, a single-flight key, matching a setlist.fm venue) it asks for.
--
-- A Spotify song stores its parsed title, so its key does not change. Two
-- kinds of rows get a new key, that of the title they store: a setlist.fm
-- song, stored under setlist.fm's name but keyed by its parsed title (from
-- now on the parsed title is stored), and a song whose track Spotify renamed
-- to another song's title (it took the title and kept its key; now it keeps
-- its title). Rows a person must look at first stop the migration, named:
-- see the check before the column is made again.

-- One song across its spellings: public.name_key of the title without
-- typographic apostrophes ("No One’s" and "No One's" are one title; a plain
-- name key would read the apostrophe as a word break). No SET clause, every
-- name schema-qualified, for the reason in 20261206110200_name_key_unpinned.sql:
-- every song insert and every setlist.fm title goes through it. Supabase's
-- linter (function_search_path_mutable) warns about it as about name_key.
create function public.song_title_key(title text)
returns text
language sql
immutable
parallel safe
as $$
  select public.name_key(pg_catalog.regexp_replace(title, U&'[''\2018\2019\02BC`\00B4]', '', 'g'))
$$;

revoke all on function public.song_title_key(text) from public;
grant execute on function public.song_title_key(text) to anon, authenticated, service_role;

-- Refuse, naming the songs, rather than upgrade them wrong: a setlist.fm song
-- whose stored name keys differently from its parsed title would be made again
-- under that title at its next import, and two songs of one artist sharing a
-- key (or a title with no key) would stop the column on a bare constraint
-- error. Each needs a person: rename it to its parsed title
-- (shared.sources.records.split_song_title), or merge it into the song that
-- holds the key. No database has such rows yet (nothing is deployed); this
-- keeps one that does from being upgraded silently wrong.
do $$
declare
  to_fix text;
begin
  with keyed as (
    select s.id, s.artist_id, s.source, s.title_key, public.song_title_key(s.title) as new_key
      from public.songs as s
  )
  select string_agg(k.id::text, ', ' order by k.id) into to_fix
    from keyed as k
   where (k.source = 'setlistfm' and k.new_key is distinct from k.title_key)
      or pg_catalog.btrim(coalesce(k.new_key, '')) = ''
      or (k.artist_id, k.new_key) in (select d.artist_id, d.new_key from keyed as d
                                        group by d.artist_id, d.new_key having count(*) > 1);
  if to_fix is not null then
    raise exception 'songs whose stored title would not keep their key: %', to_fix
      using errcode = '55000',
            hint = 'Rename each to its parsed title or merge it into the song holding that'
                   ' key, then migrate again.';
  end if;
end
$$;

-- A stored generated column cannot replace a plain one in place: the column
-- and its constraints are made again, each row's key computed from its title.
alter table public.songs drop column title_key;
alter table public.songs
  add column title_key text not null generated always as (public.song_title_key(title)) stored
    check (btrim(title_key) <> ''),
  add constraint songs_one_per_title unique (artist_id, title_key);

-- title_key is the song's title key, as the generated column will have it.
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
         nullif(pg_catalog.btrim(public.song_title_key(
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
$$;

-- Items: {title, spotify_id, spotify_url, album, album_spotify_id,
-- release_date, duration_ms, isrc, popularity}; all of one artist. An item
-- and a song are one when their titles share public.song_title_key.
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
        insert into public.songs (id, artist_id, title, album, album_spotify_id,
                                  release_date, duration_ms, isrc, spotify_id, spotify_url,
                                  popularity)
        select r.id, p_artist_id, i.title, i.album, i.album_spotify_id,
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
                join public.ingest_song_rows(batch) as i on i.ord = r.ord
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
    perform public.queue_setlists_for_artist(p_artist_id);
  end if;

  return query
    select o.ord, o.id, o.action from unnest(out_ords, out_ids, out_actions) as o(ord, id, action)
     order by o.ord;
end;
$$;

-- setlist.fm songs are {title, ...} items: the title as Python parsed it
-- (version and featuring markers removed), keyed here like a catalogue song.
-- Resolve them to the artist's catalogue by title key, adding the missing
-- ones with source 'setlistfm'; otherwise as in 20261204120000_played_setlists.sql.
create or replace function public.resolve_setlistfm_songs(p_artist_id uuid, items jsonb)
returns table (title_key text, song_id uuid)
language plpgsql
set search_path = ''
as $$
declare
  n_created integer;
begin
  if exists (select 1 from jsonb_array_elements(items) i
              where nullif(btrim(public.song_title_key(btrim(i ->> 'title'))), '') is null) then
    raise exception 'every setlist.fm song needs a title with a title key'
      using errcode = '22023';
  end if;
  perform public.sync_lock_keys(array['songs:' || p_artist_id::text]);
  insert into public.songs (artist_id, title, source)
  select distinct on (public.song_title_key(t.title)) p_artist_id, t.title, 'setlistfm'
    from jsonb_array_elements(items) with ordinality as i
   cross join lateral (select btrim(i.value ->> 'title') as title) as t
   order by public.song_title_key(t.title), i.ordinality
  on conflict on constraint songs_one_per_title do nothing;
  get diagnostics n_created = row_count;
  if n_created > 0 then
    perform public.queue_setlists_for_artist(p_artist_id);
  end if;
  return query
    select s.title_key, s.id
      from public.songs s
     where s.artist_id = p_artist_id
       and s.title_key in (select public.song_title_key(btrim(i ->> 'title'))
                             from jsonb_array_elements(items) i);
end;
$$;

-- songs: [{title, set_number, set_name, encore, is_cover, cover_artist_name,
-- cover_artist_mbid, info}]; otherwise as in 20261204120000_played_setlists.sql.
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
      join resolved r on r.title_key = public.song_title_key(btrim(i.value ->> 'title'))
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

-- p_setlists: [{setlistfm_id, event_date, songs: [{title}]}]; otherwise as in
-- 20261204120000_played_setlists.sql.
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
        on so.artist_id = p_artist_id
       and so.title_key = public.song_title_key(btrim(song ->> 'title'))
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
