-- The pages learn what was played (the setlist.fm import of
-- 20261204120000_played_setlists.sql) and how the fans' prediction did.
--
-- get_show_page is the one of 20261204110100_show_page_exact_counts.sql
-- (exact vote counts from the tallies, broadcast_version), answering `played`
-- (the played setlist and its lookup status) and `accuracy` instead of the
-- former `actual_setlist`; get_artist_page (20261122000503_page_reads.sql)
-- adds the recent past shows and the artist's average accuracy.

-- ---------------------------------------------------------------------------------------------
-- Accuracy
-- ---------------------------------------------------------------------------------------------

-- How the fans' prediction for a show did against what was played:
--   played    n = the distinct songs of the show's played setlist;
--   predicted the predicted setlist's songs ranked by votes (most votes
--             first, exact counts from public.exact_vote_count, then
--             position), cut to the top n: the prediction is as
--             long as the show was, so adding songs cannot buy recall;
--   hits      predicted songs that were played (songs match by catalogue
--             song: both setlists resolve titles to the artist's catalogue);
--   precision hits / predicted;  recall hits / n (4 decimals).
-- Null when the show lacks either setlist or either is empty.
-- Invoker rights: both setlists are public.
create or replace function public.show_setlist_accuracy(p_show_id uuid)
returns jsonb
language sql
stable
set search_path = ''
as $$
  with played as (
    select distinct ss.song_id
      from public.setlists sl
      join public.setlist_songs ss on ss.setlist_id = sl.id
     where sl.show_id = p_show_id and sl.kind = 'actual'),
  ranked as (
    select ss.song_id,
           row_number() over (order by public.exact_vote_count(ss) desc, ss.position) as rank
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
$$;

-- ---------------------------------------------------------------------------------------------
-- The played setlist
-- ---------------------------------------------------------------------------------------------

-- Where a show's played setlist stands: 'found' when one is stored, else
-- its lookup's status ('waiting', 'none_found'), null before the first
-- lookup. SECURITY DEFINER: the lookup bookkeeping is backend-only, its
-- status is public.
create or replace function public.played_setlist_status(p_show_id uuid)
returns text
language sql
stable
security definer
set search_path = ''
as $$
  select case
           when exists (select 1 from public.setlists sl
                         where sl.show_id = p_show_id and sl.kind = 'actual') then 'found'
           else (select l.status from public.played_setlist_lookups l
                  where l.show_id = p_show_id)
         end
$$;

-- The show's played setlist as the pages show it: null when it was never
-- looked up and none is stored; else {status, id, source_url (setlist.fm
-- asks for the link wherever its data is shown), songs in playing order}.
create or replace function public.played_setlist(p_show_id uuid)
returns jsonb
language sql
stable
set search_path = ''
as $$
  with lookup as (select public.played_setlist_status(p_show_id) as status),
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
$$;

-- ---------------------------------------------------------------------------------------------
-- The pages
-- ---------------------------------------------------------------------------------------------

-- The show page: show, venue, artist, voting state, the predicted setlist by
-- exact votes then position (with the caller's own votes when signed in and
-- the broadcast_version of its counts), what was
-- played (public.played_setlist) and how the prediction did
-- (public.show_setlist_accuracy). P0002 show_not_found when unknown.
create or replace function public.get_show_page(show_id uuid)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
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
                     and public.voting_closes_at(s.starts_at, s.local_date, s.local_time,
                                                 v.timezone) > now(),
             'closes_at', public.voting_closes_at(s.starts_at, s.local_date, s.local_time,
                                                  v.timezone),
             'votes_limit', public.votes_per_show_limit(),
             'songs_added_limit', public.songs_added_per_show_limit()))
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
    left join public.vote_broadcasts b on b.setlist_id = sl.id
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
    -- Exact counts (public.exact_vote_count), read in this statement's snapshot.
    select coalesce(jsonb_agg(jsonb_build_object(
             'setlist_song_id', c.id, 'song_id', so.id, 'title', so.title, 'album', so.album,
             'duration_ms', so.duration_ms, 'spotify_url', so.spotify_url,
             'position', c.position, 'vote_count', c.vote_count,
             'added_by_me', caller is not null and c.added_by is not distinct from caller,
             'voted', my_votes @> to_jsonb(c.id))
           order by c.vote_count desc, c.position), '[]'::jsonb)
      into songs
      from (select ss.id, ss.song_id, ss.position, ss.added_by,
                   public.exact_vote_count(ss) as vote_count
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
    'played', public.played_setlist(get_show_page.show_id),
    'accuracy', public.show_setlist_accuracy(get_show_page.show_id));
  return page;
end;
$$;


-- The artist page: the artist; their upcoming shows (today on, not removed
-- from the sources) by date, with their venues, at most 200; their 20 most
-- recent past shows with what was played and how the prediction did; and the
-- prediction's accuracy averaged over every past show that has one (macro
-- averages of precision and recall, total hits; null without any).
-- P0002 artist_not_found when unknown.
create or replace function public.get_artist_page(artist_id uuid)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
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
                      'played', public.played_setlist_status(p.id),
                      'accuracy', public.show_setlist_accuracy(p.id))
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
               from (select public.show_setlist_accuracy(s.id) as acc
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
$$;

revoke execute on function public.show_setlist_accuracy(uuid) from public, anon, authenticated;
revoke execute on function public.played_setlist_status(uuid) from public, anon, authenticated;
revoke execute on function public.played_setlist(uuid) from public, anon, authenticated;
revoke execute on function public.get_show_page(uuid) from public, anon, authenticated;
revoke execute on function public.get_artist_page(uuid) from public, anon, authenticated;
grant execute on function public.show_setlist_accuracy(uuid) to anon, authenticated, service_role;
grant execute on function public.played_setlist_status(uuid) to anon, authenticated, service_role;
grant execute on function public.played_setlist(uuid) to anon, authenticated, service_role;
grant execute on function public.get_show_page(uuid) to anon, authenticated, service_role;
grant execute on function public.get_artist_page(uuid) to anon, authenticated, service_role;
