-- create_setlist: every show gets its predicted setlist, five distinct songs
-- picked at random from its artist's catalogue (fewer only when the catalogue
-- is smaller), no votes, positions 1..n. Never an invented song: with an empty
-- catalogue nothing is created, the answer says 'pending' and a
-- 'create_setlist' job is queued (the job queues the artist's catalogue, whose
-- arrival queues the setlist again).
--
-- Safe under concurrency: the first caller inserts the setlist row and fills
-- it in the same transaction; every other caller's insert waits for that
-- transaction and then finds the filled setlist. A setlist row left without
-- songs (made by other means) is filled under its row lock, once.

-- The predicted setlist's songs as the answers show them.
create or replace function public.predicted_setlist_songs(setlist_id uuid)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'setlist_song_id', ss.id,
           'song_id', so.id,
           'title', so.title,
           'album', so.album,
           'duration_ms', so.duration_ms,
           'spotify_url', so.spotify_url,
           'position', ss.position,
           'vote_count', ss.vote_count)
         order by ss.vote_count desc, ss.position), '[]'::jsonb)
    from public.setlist_songs ss
    join public.songs so on so.id = ss.song_id
   where ss.setlist_id = predicted_setlist_songs.setlist_id
$$;

revoke execute on function public.predicted_setlist_songs(uuid) from public, anon, authenticated;
grant execute on function public.predicted_setlist_songs(uuid) to anon, authenticated, service_role;

-- Answers {show_id, artist_id, status: 'ready' | 'pending', created,
-- setlist_id, songs, pending_reason, job_queued}. Errors: P0002 show_not_found
-- (404), PT409 show_closed (409), 22004 missing argument (400).
-- A closed show (cancelled, removed, or started: public.voting_closes_at) gets
-- nothing new, neither a setlist nor a job: show_closed. Its existing setlist,
-- if it has one, is still answered (that writes nothing).
-- SECURITY DEFINER: anyone who may open a show page may make sure its setlist
-- exists (the only write is the one the show is owed), and queue the job.
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
      insert into public.setlist_songs (setlist_id, song_id, position)
      select predicted, pick.id, row_number() over (order by pick.draw)
        from (select so.id, random() as draw
                from public.songs so
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

revoke execute on function public.create_setlist(uuid, boolean) from public, anon, authenticated;
grant execute on function public.create_setlist(uuid, boolean) to anon, authenticated, service_role;

-- Every new show gets its setlist even if nobody opens its page: queue the
-- job (which queues the artist's catalogue instead when it is empty).
-- SECURITY DEFINER: shows are written by backend roles that need not be
-- allowed to queue jobs themselves.
create or replace function public.queue_setlist_for_new_show()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.status not in ('cancelled', 'removed') then
    perform public.enqueue_sync_job('create_setlist', new.id);
  end if;
  return null;
end;
$$;

revoke execute on function public.queue_setlist_for_new_show()
  from public, anon, authenticated, service_role;

create trigger shows_queue_setlist
  after insert on public.shows
  for each row execute function public.queue_setlist_for_new_show();

-- A show whose artist had no catalogue yet gets its setlist once songs
-- arrive: public.ingest_songs queues the job for the artist's upcoming shows
-- still without one, once per import that created songs
-- (public.queue_setlists_for_artist, 20261122000400_sync_ingest.sql). No
-- trigger on songs: row-by-row inserts would queue per song.
