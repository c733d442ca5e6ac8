-- Discovery: the read RPCs behind the client's browse screens.
--
--   public.upcoming_shows(...)   the upcoming-shows feed: filters, keyset pages,
--                                at most N shows per artist per page
--   public.trending_shows(limit) upcoming shows by voting activity of the last 7 days
--   public.popular_artists(limit) artists with upcoming shows, most popular first
--   public.my_artists()          the caller's Spotify top and followed artists
--   public.show_summary(show_id) the show card every list above is made of
--
-- All are stable, callable by anon and authenticated through PostgREST, and
-- run with the caller's rights (RLS applies) except trending_shows, which
-- must count votes nobody but their author may read: it is SECURITY DEFINER
-- and answers aggregates only, never a user id.
--
-- Errors: SQLSTATE 22023 (PostgREST: 400) with a stable machine code in the
-- hint: invalid_page_size, invalid_per_artist, invalid_limit,
-- invalid_country_code, invalid_date_range, invalid_query, invalid_cursor,
-- cursor_mismatch; my_artists without a signed-in user: 42501, not_signed_in.

-- The show card ----------------------------------------------------------------------------

-- {show: {...}, artist: {id, name, image_url}, venue: {...},
--  predicted_setlist: {id, vote_total} | null}; null for an unknown show.
create or replace function public.show_summary(show_id uuid)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
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
$$;

revoke all on function public.show_summary(uuid) from public;
grant execute on function public.show_summary(uuid) to anon, authenticated, service_role;

-- The upcoming-shows feed ------------------------------------------------------------------
--
-- Which shows: status scheduled, postponed or rescheduled; local_date from
-- today (or date_from when later) to date_to; optionally one country
-- (ISO 3166-1 alpha-2), one city (compared by name key: case, accents and
-- punctuation ignored), one artist, and artists whose name contains q (also
-- by name key).
--
-- The per-artist rule ("one artist must not flood the list"). Shows are
-- walked in (local_date, id) order. A page takes each show it meets unless
-- that show's artist already has per_artist shows on the page; such a show
-- is not dropped but *deferred*: it stays pending and is met again first
-- thing on the next page (deferred shows are the earliest pending ones), where
-- the same rule applies. So:
--   * no page holds more than per_artist shows of one artist;
--   * a full walk returns every matching show exactly once (none skipped, none
--     repeated), because the cursor records exactly what is delivered;
--   * pages stay full while other artists have shows to offer; an artist
--     with many shows in a row (a residency) is spread over the following
--     pages at per_artist a page, and once only that artist is left pages
--     get shorter than page_size — never longer than the rule allows;
--   * within a page shows are in (local_date, id) order; across pages dates
--     increase except for deferred shows, which appear at most a few pages
--     after their place in date order.
-- The cursor (opaque, base64url JSON) holds the frontier F — the last show
-- met in the walk — and, for each artist with deferred shows, the last show
-- of that artist delivered R: pending = shows after F, plus each such
-- artist's shows after R and up to F. A page defers at most page_size /
-- per_artist artists, so a cursor names at most 50. It stays correct when
-- shows are added meanwhile: a new show after F (or in a deferring artist's
-- pending range) appears, one before F does not (that walk has passed it);
-- nothing is repeated or skipped. A show whose date changes while a walk is
-- under way may move across the frontier, as in any keyset pagination.
--
-- Answers {"items": [show_summary...], "next_cursor": text | null}; null
-- when nothing is pending. A page never comes back empty while something is
-- pending. Each page reads at most 1,000 matching rows (a long single-artist
-- run can make a page short, never wrong). A cursor only fits the filters it
-- was issued for (else cursor_mismatch); page_size and per_artist may change
-- between pages.
create or replace function public.upcoming_shows(
  country_code text default null,
  city text default null,
  date_from date default null,
  date_to date default null,
  artist_id uuid default null,
  q text default null,
  page_size integer default 20,
  per_artist integer default 2,
  cursor text default null
)
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
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
    v_city_key := public.name_key(btrim(upcoming_shows.city));
  end if;
  if nullif(btrim(upcoming_shows.q), '') is not null then
    v_query_key := public.name_key(btrim(upcoming_shows.q));
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

  select coalesce(jsonb_agg(public.show_summary(t.id) order by t.o), '[]'::jsonb)
    into items
    from unnest(taken) with ordinality as t(id, o);

  return jsonb_build_object('items', items, 'next_cursor', next_cursor);
end;
$$;

revoke all on function public.upcoming_shows(text, text, date, date, uuid, text, integer, integer, text)
  from public;
grant execute on function public.upcoming_shows(text, text, date, date, uuid, text, integer, integer, text)
  to anon, authenticated, service_role;

-- Trending ---------------------------------------------------------------------------------

-- Upcoming shows whose predicted setlist has votes, ranked by votes cast in
-- the last 7 days, then by all votes, then by date. SECURITY DEFINER because
-- votes are readable only by their author; it answers counts, never who
-- voted. Each item: show_summary plus "recent_votes".
create or replace function public.trending_shows("limit" integer default 10)
returns setof jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if coalesce(trending_shows."limit", 10) not between 1 and 50 then
    raise exception 'limit must be between 1 and 50' using errcode = '22023', hint = 'invalid_limit';
  end if;
  return query
    select public.show_summary(s.id) || jsonb_build_object('recent_votes', act.recent_votes)
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
$$;

revoke all on function public.trending_shows(integer) from public;
grant execute on function public.trending_shows(integer) to anon, authenticated, service_role;

-- Popular artists --------------------------------------------------------------------------

-- Artists with at least one upcoming show, by Spotify popularity (unknown
-- last: development-mode Spotify apps get none), then by number of upcoming
-- shows, then by votes on those shows' predicted setlists, then by name.
create or replace function public.popular_artists("limit" integer default 20)
returns table (
  id uuid,
  name text,
  image_url text,
  genres text[],
  popularity smallint,
  upcoming_show_count bigint,
  next_show_date date,
  vote_total bigint
)
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  if coalesce(popular_artists."limit", 20) not between 1 and 50 then
    raise exception 'limit must be between 1 and 50' using errcode = '22023', hint = 'invalid_limit';
  end if;
  return query
    select a.id, a.name, a.image_url, a.genres, a.popularity,
           u.show_count, u.next_date, coalesce(vt.total, 0)::bigint
      from (select s.artist_id, count(*) as show_count, min(s.local_date) as next_date
              from public.shows s
             where s.status in ('scheduled', 'postponed', 'rescheduled')
               and s.local_date >= current_date
             group by s.artist_id) u
      join public.artists a on a.id = u.artist_id
      left join lateral (
        select sum(ss.vote_count) as total
          from public.shows s
          join public.setlists sl on sl.show_id = s.id and sl.kind = 'predicted'
          join public.setlist_songs ss on ss.setlist_id = sl.id
         where s.artist_id = a.id
           and s.status in ('scheduled', 'postponed', 'rescheduled')
           and s.local_date >= current_date) vt on true
     order by a.popularity desc nulls last, u.show_count desc, coalesce(vt.total, 0) desc,
              a.name, a.id
     limit coalesce(popular_artists."limit", 20);
end;
$$;

revoke all on function public.popular_artists(integer) from public;
grant execute on function public.popular_artists(integer) to anon, authenticated, service_role;

-- My artists -------------------------------------------------------------------------------

-- The signed-in caller's Spotify artists (public.user_artists, kept by the
-- sync_my_artists function): top artists by Spotify rank first, then
-- followed ones by name, each with its next upcoming show (show_summary, or
-- null). Without a signed-in user: 42501 / not_signed_in (an error rather
-- than an empty list, so a client with a lost session can tell).
create or replace function public.my_artists()
returns table (
  artist_id uuid,
  name text,
  image_url text,
  genres text[],
  is_top boolean,
  top_rank integer,
  is_followed boolean,
  synced_at timestamptz,
  upcoming_show_count bigint,
  next_show jsonb
)
language plpgsql
stable
security invoker
set search_path = ''
as $$
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
           (select public.show_summary(s.id) from public.shows s
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
$$;

revoke all on function public.my_artists() from public;
grant execute on function public.my_artists() to anon, authenticated, service_role;
