-- get_show_page with exact vote counts: as in 20261122000503_page_reads.sql,
-- except that a predicted song's vote_count is public.exact_vote_count (the
-- sum of its tallies, see 20261204110000_votes_coalesced.sql) and the
-- predicted setlist carries broadcast_version, the version of the last
-- 'vote_counts' message already sent on its topic.

-- The show page: show, venue, artist, voting state, the predicted setlist by
-- exact votes then position (with the caller's own votes when signed in), and the
-- played setlist when setlist.fm has it. P0002 show_not_found when unknown.
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
  actual uuid;
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
  select sl.id into actual from public.setlists sl
   where sl.show_id = get_show_page.show_id and sl.kind = 'actual';

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

  if actual is null then
    page := page || jsonb_build_object('actual_setlist', null);
  else
    select jsonb_build_object(
             'id', sl.id, 'source_url', sl.source_url,
             'songs', coalesce((
               select jsonb_agg(jsonb_build_object(
                        'position', ss.position, 'song_id', so.id, 'title', so.title,
                        'encore', ss.encore, 'is_cover', ss.is_cover, 'info', ss.info)
                      order by ss.position)
                 from public.setlist_songs ss
                 join public.songs so on so.id = ss.song_id
                where ss.setlist_id = sl.id), '[]'::jsonb))
      into songs
      from public.setlists sl
     where sl.id = actual;
    page := page || jsonb_build_object('actual_setlist', songs);
  end if;
  return page;
end;
$$;

revoke execute on function public.get_show_page(uuid) from public, anon, authenticated;
grant execute on function public.get_show_page(uuid) to anon, authenticated, service_role;
