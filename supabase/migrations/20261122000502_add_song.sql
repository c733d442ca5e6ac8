-- add_song: a signed-in fan adds a song of the show's artist to its predicted
-- setlist, at the end, with no votes. Once per setlist; songs of other
-- artists are refused; adding a song already there changes nothing and
-- answers where it is (added: false). Other viewers learn of it through a 'song_added'
-- broadcast on the setlist's topic.

-- How many songs one user may add to one show's predicted setlist.
create or replace function public.songs_added_per_show_limit()
returns integer
language sql
immutable
parallel safe
set search_path = ''
as $$ select 5 $$;

revoke execute on function public.songs_added_per_show_limit() from public, anon, authenticated;
grant execute on function public.songs_added_per_show_limit() to anon, authenticated, service_role;

-- Rules: signed in with a real account; the song belongs to the show's
-- artist; the show has not started and is not cancelled or removed (same
-- moment as voting, public.voting_closes_at); a song appears once per
-- setlist; at most public.songs_added_per_show_limit() additions per user per
-- show. The predicted setlist is drawn first if the show has none yet.
-- Errors (SQLSTATE, hint): 42501 not_signed_in · PT403 anonymous_user ·
-- PT401 unknown_user · P0002 show_not_found, song_not_found ·
-- PT422 song_of_another_artist · PT409 voting_closed, add_limit_reached ·
-- 22004 missing_argument.
-- Answers {setlist_song_id, setlist_id, show_id, song_id, title, position,
--          vote_count, added, songs_added, songs_added_limit}.
create or replace function public.add_song(show_id uuid, song_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller uuid := public.acting_fan('add songs');
  show_artist uuid;
  show_status text;
  closes_at timestamptz;
  song_artist uuid;
  song_title text;
  predicted uuid;
  existing_votes integer;
  added integer;
  added_limit constant integer := public.songs_added_per_show_limit();
  entry uuid;
  entry_position integer;
begin
  if add_song.show_id is null or add_song.song_id is null then
    raise exception 'show_id and song_id are required'
      using errcode = '22004', hint = 'missing_argument';
  end if;

  select s.artist_id, s.status,
         public.voting_closes_at(s.starts_at, s.local_date, s.local_time, v.timezone)
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
  select ss.id, ss.position, ss.vote_count into entry, entry_position, existing_votes
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

  perform realtime.send(
    jsonb_build_object('setlist_song_id', entry, 'song_id', add_song.song_id,
                       'title', song_title, 'position', entry_position, 'vote_count', 0),
    'song_added', 'setlist:' || predicted::text, true);

  return jsonb_build_object(
    'setlist_song_id', entry, 'setlist_id', predicted, 'show_id', add_song.show_id,
    'song_id', add_song.song_id, 'title', song_title, 'position', entry_position,
    'vote_count', 0, 'added', true, 'songs_added', added + 1, 'songs_added_limit', added_limit);
end;
$$;

revoke execute on function public.add_song(uuid, uuid) from public, anon, authenticated;
grant execute on function public.add_song(uuid, uuid) to authenticated, service_role;
