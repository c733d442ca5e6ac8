-- Votes at scale: a vote path with no hot row, and realtime broadcasts
-- coalesced per setlist per interval. Redefines what 20261122000500_votes.sql
-- (the count trigger, its broadcast, cast_vote), 0502_add_song (the count it
-- answers) and the vote counts of 0501/0503 (predicted_setlist_songs,
-- get_show_page) defined.
--
-- Why. Before, every vote incremented setlist_songs.vote_count in place and
-- sent one realtime message. On a popular song every voter queued for that one
-- row from its update to its commit (cast_vote ran at 0.37 of a bare hot-row
-- UPDATE), and a show page with 500 listeners and 10 votes a second needed
-- 5,000 Realtime messages a second, ten times Supabase Pro's limit.
--
-- Design.
--  * The vote is an insert into public.votes; its primary key (user, song) is
--    the one-vote rule. A trigger puts it in one of 16 tally slots of the song
--    (public.vote_tallies, slot = the backend's pid mod 16) and adds one to
--    it; taking the vote back takes one off the slot it is in. A backend runs one transaction at a
--    time, so concurrent voters on one song mostly write different rows and
--    commit in parallel; two voters share a slot only when their backends'
--    pids collide mod 16. A vote's foreign key points at its slot (which
--    points at the song), so no vote locks the song's row at all. The
--    per-(user, show) limit is a transaction-scoped advisory lock on (user,
--    show) (Supavisor-safe) under which the caller's votes are counted: only
--    one fan's own requests queue.
--  * The exact count of a song is the sum of its slots
--    (public.exact_vote_count): at most 16 rows, read in the statement's
--    snapshot, so it is exact in every read (get_show_page, cast_vote's answer,
--    create_setlist's and add_song's answers); each slot holds exactly the
--    number of the song's votes that name it.
--  * setlist_songs.vote_count is now the count as last broadcast, written by
--    the flush: what every listener shows, at most one interval behind. Rankings
--    that can lag (trending shows, popular artists) keep reading it and its index.
--  * A changed slot is marked dirty. public.flush_vote_broadcasts(every) runs
--    once per interval (production: Supabase Cron, '1 seconds', scheduled by
--    public.schedule_vote_broadcasts(); locally `./dev up` runs a loop that
--    calls it, since pg_cron 1.4 has minute schedules only).
--    For every setlist with dirty slots that got no message in the current
--    interval window, it clears the dirty slots it can lock (FOR UPDATE SKIP
--    LOCKED), then, in a new snapshot, sums the changed songs and sends ONE
--    message on 'setlist:<id>', event 'vote_counts':
--      {setlist_id, version, vote_counts: [{setlist_song_id, vote_count}, ...]}
--    with the absolute counts of every song changed since the previous message
--    and version = that setlist's previous version + 1.
--  * Nothing is missed, whatever the commit order: a slot written by a vote
--    that commits after the flush cleared it (the vote waited for the flush's
--    row lock) or that the flush skipped (the vote held it, uncommitted) is
--    dirty when that vote commits, so the next flush sends it. A slot cleared
--    by the flush was read at its newest committed version, and the sums are
--    read after that, so the message carries at least those changes.
--  * Flushes are serialised by a transaction-scoped advisory lock (a second one
--    at the same time returns at once), so versions grow in the order the sums
--    were read: a higher version is never older than a lower one.
--
-- Trade-offs.
--  * Listeners see a change up to one interval (plus the flush's run time)
--    after it commits, and a song voted for and unvoted in one interval may
--    send nothing; what they see last is exact.
--  * cast_vote's count is exact as of the vote (every vote committed before
--    it, plus its own); votes committing at the same moment come with the next
--    message. Two concurrent voters may therefore both be answered the same count.
--  * Each vote writes the vote and updates its slot (as before it wrote the
--    vote and updated the song's counter, but now 16 rows share the load); the
--    flush does the per-song work once per interval instead of per vote. An
--    unvote from another backend than the vote's waits for the voters of that slot. Messages per setlist are bounded by the
--    interval, not by the vote rate: 500 listeners cost at most 500 messages
--    per interval per busy setlist.
--  * A flush that finds a slot locked for longer than a vote takes (an account
--    deletion touching many songs) skips it and sends it next interval.

-- Tallies ------------------------------------------------------------------------

-- How many votes of a song went through each slot; the song's count is the sum.
create table public.vote_tallies (
  setlist_song_id uuid not null references public.setlist_songs (id) on delete cascade,
  slot smallint not null check (slot between 0 and 15),
  votes integer not null check (votes >= 0),
  -- Changed since the last flush read it.
  dirty boolean not null default true,
  primary key (setlist_song_id, slot)
) with (fillfactor = 50);  -- room for HOT updates: every vote rewrites its slot.

-- What the flush looks for; stays small (only slots changed since the last flush).
create index vote_tallies_dirty_idx on public.vote_tallies (setlist_song_id) where dirty;

alter table public.vote_tallies enable row level security;
revoke all on table public.vote_tallies from anon, authenticated;
-- Counts are public; clients never write them (the votes trigger does).
grant select on table public.vote_tallies to anon, authenticated;
grant select, insert, update, delete on table public.vote_tallies to service_role;
create policy "vote tallies are public" on public.vote_tallies
  for select to anon, authenticated using (true);

-- Every vote names its slot and references it instead of the song: the
-- foreign-key check of a vote then share-locks its slot (a row this
-- transaction has just updated anyway), not the popular song's row, whose
-- share locks held by many voters at once (multixacts) were a hot spot of
-- their own. The slot references the song, so a vote still cannot outlive it.
-- Existing votes start in slot 0, with counts equal to what was broadcast.
alter table public.votes add column slot smallint not null default 0;
alter table public.votes alter column slot drop default;
insert into public.vote_tallies (setlist_song_id, slot, votes, dirty)
select vo.setlist_song_id, 0, count(*), false
  from public.votes vo
 group by vo.setlist_song_id;
alter table public.votes drop constraint votes_setlist_song_id_fkey;
alter table public.votes add constraint votes_slot_fkey
  foreign key (setlist_song_id, slot)
  references public.vote_tallies (setlist_song_id, slot) on delete cascade;

-- The exact count of a setlist song: the sum of its slots.
create or replace function public.exact_vote_count(entry public.setlist_songs)
returns integer
language sql
stable
set search_path = ''
as $$
  select coalesce(sum(t.votes), 0)::integer
    from public.vote_tallies t
   where t.setlist_song_id = (exact_vote_count.entry).id
$$;

revoke execute on function public.exact_vote_count(public.setlist_songs)
  from public, anon, authenticated;
grant execute on function public.exact_vote_count(public.setlist_songs)
  to anon, authenticated, service_role;

-- A new vote (or one moved to another song) names this backend's slot of its
-- song, created here if it is the first (its foreign key needs the slot).
-- Counting happens after the row is written (votes_maintain_count), so an
-- insert that a conflict skips counts nothing.
create or replace function public.votes_take_slot()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' and old.setlist_song_id = new.setlist_song_id then
    new.slot := old.slot;
    return new;
  end if;
  new.slot := (pg_backend_pid() % 16)::smallint;
  insert into public.vote_tallies (setlist_song_id, slot, votes)
  values (new.setlist_song_id, new.slot, 0)
  on conflict (setlist_song_id, slot) do nothing;
  return new;
end;
$$;

-- Every vote written adds one to its slot, every vote gone (taken back, its
-- user's account deleted, moved to another song) takes one off. SECURITY
-- DEFINER: votes also go by cascade (a user deleting their account, run by
-- Supabase Auth's role), and the tally must follow. When the setlist song
-- itself goes, its tallies are gone already and there is nothing to update.
create or replace function public.votes_maintain_count()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' and old.setlist_song_id = new.setlist_song_id then
    return null;
  end if;
  if tg_op in ('DELETE', 'UPDATE') then
    update public.vote_tallies t
       set votes = t.votes - 1, dirty = true
     where t.setlist_song_id = old.setlist_song_id and t.slot = old.slot;
  end if;
  if tg_op in ('INSERT', 'UPDATE') then
    update public.vote_tallies t
       set votes = t.votes + 1, dirty = true
     where t.setlist_song_id = new.setlist_song_id and t.slot = new.slot;
  end if;
  return null;
end;
$$;

revoke execute on function public.votes_take_slot() from public, anon, authenticated, service_role;
revoke execute on function public.votes_maintain_count() from public, anon, authenticated, service_role;

create trigger votes_take_slot
  before insert or update of setlist_song_id on public.votes
  for each row execute function public.votes_take_slot();
-- votes_maintain_count (0500) stays: after insert, delete or update of setlist_song_id.

-- The per-vote broadcast is gone.
drop function public.broadcast_vote_count(uuid, uuid, integer);

-- The last message sent per setlist: its version and when.
create table public.vote_broadcasts (
  setlist_id uuid primary key references public.setlists (id) on delete cascade,
  version bigint not null check (version > 0),
  sent_at timestamptz not null
);

alter table public.vote_broadcasts enable row level security;
revoke all on table public.vote_broadcasts from anon, authenticated;
grant select on table public.vote_broadcasts to anon, authenticated;
grant select, insert, update, delete on table public.vote_broadcasts to service_role;
create policy "vote broadcast versions are public" on public.vote_broadcasts
  for select to anon, authenticated using (true);

-- The broadcast flush ------------------------------------------------------------

-- One message per setlist with changes, at most one per setlist per interval
-- window of length ``every`` (windows aligned on the epoch, so a schedule
-- firing once per interval sends each busy setlist once per run). Returns the
-- messages sent. Run by Supabase Cron in production, by the local stack's
-- runner locally; never by API roles.
create or replace function public.flush_vote_broadcasts(every interval default interval '1 second')
returns table (setlist_id uuid, version bigint, songs integer)
language plpgsql
set search_path = ''
as $$
declare
  window_start timestamptz;
  changed uuid[];
begin
  if every is null or every <= interval '0' then
    raise exception 'every must be a positive interval' using errcode = '22023';
  end if;
  -- One flush at a time: a second one now would only find nothing to do.
  if not pg_try_advisory_xact_lock(hashtextextended('flush_vote_broadcasts', 0)) then
    return;
  end if;
  window_start := date_bin(every, now(), timestamptz '2000-01-01 00:00:00+00');

  -- Clear the dirty slots of setlists due for a message. A slot a vote holds
  -- right now is skipped: it is dirty when that vote commits.
  with due as (
    select t.setlist_song_id, t.slot
      from public.vote_tallies t
      join public.setlist_songs ss on ss.id = t.setlist_song_id
      left join public.vote_broadcasts b on b.setlist_id = ss.setlist_id
     where t.dirty and (b.sent_at is null or b.sent_at < window_start)
       for update of t skip locked
  ), cleared as (
    update public.vote_tallies t
       set dirty = false
      from due
     where t.setlist_song_id = due.setlist_song_id and t.slot = due.slot
    returning t.setlist_song_id
  )
  select array_agg(distinct cleared.setlist_song_id) into changed from cleared;
  if changed is null then
    return;
  end if;

  -- A new snapshot: the sums include every slot cleared above.
  return query
  with counted as (
    update public.setlist_songs ss
       set vote_count = public.exact_vote_count(ss)
     where ss.id = any(changed)
    returning ss.setlist_id, ss.id, ss.vote_count
  ), per_setlist as (
    select c.setlist_id,
           jsonb_agg(jsonb_build_object('setlist_song_id', c.id, 'vote_count', c.vote_count)
                     order by c.id) as vote_counts,
           count(*)::integer as songs
      from counted c
     group by c.setlist_id
  ), versioned as (
    insert into public.vote_broadcasts as b (setlist_id, version, sent_at)
    select p.setlist_id, 1, now() from per_setlist p
    on conflict on constraint vote_broadcasts_pkey
      do update set version = b.version + 1, sent_at = excluded.sent_at
    returning b.setlist_id, b.version
  )
  select v.setlist_id, v.version, p.songs
    from versioned v
    join per_setlist p on p.setlist_id = v.setlist_id
    cross join lateral (
      select realtime.send(
        jsonb_build_object('setlist_id', v.setlist_id, 'version', v.version,
                           'vote_counts', p.vote_counts),
        'vote_counts', 'setlist:' || v.setlist_id::text, true)) sent;
end;
$$;

revoke execute on function public.flush_vote_broadcasts(interval)
  from public, anon, authenticated, service_role;

-- Production (deploy step; Supabase Cron runs second schedules): run the
-- flush every ``every``: whole seconds 1-59 ('<n> seconds'), or whole minutes
-- up to an hour. Re-running replaces the schedule. Returns the cron job id.
--   select public.schedule_vote_broadcasts();   -- every second
create or replace function public.schedule_vote_broadcasts(every interval default interval '1 second')
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  seconds numeric := extract(epoch from every);
  schedule text;
begin
  if seconds is null or seconds <> trunc(seconds) then
    raise exception 'every must be whole seconds' using errcode = '22023';
  elsif seconds between 1 and 59 then
    schedule := seconds::integer || ' seconds';
  elsif seconds = 60 then
    schedule := '* * * * *';
  elsif seconds between 120 and 3600 and seconds::integer % 60 = 0 then
    schedule := '*/' || (seconds::integer / 60) || ' * * * *';
  else
    raise exception 'every must be 1 to 59 seconds or whole minutes up to an hour'
      using errcode = '22023';
  end if;
  return cron.schedule('vote-broadcasts', schedule,
                       format('select public.flush_vote_broadcasts(%L::interval)', every));
end;
$$;

create or replace function public.unschedule_vote_broadcasts()
returns boolean
language sql
set search_path = ''
as $$
  select coalesce((select cron.unschedule(jobid) from cron.job where jobname = 'vote-broadcasts'),
                  false)
$$;

revoke execute on function public.schedule_vote_broadcasts(interval)
  from public, anon, authenticated, service_role;
revoke execute on function public.unschedule_vote_broadcasts()
  from public, anon, authenticated, service_role;

-- cast_vote -------------------------------------------------------------------

-- Vote (vote = true) or take back a vote (vote = false) on a song of a show's
-- predicted setlist, as the signed-in caller (auth.uid(), never an argument).
-- Idempotent: voting twice or unvoting a song not voted for changes nothing
-- and answers the current state. Rules:
--   * signed in with a real account (anonymous sign-ins may not vote);
--   * only predicted setlists take votes;
--   * voting closes when the show starts (public.voting_closes_at) and on
--     cancelled or removed shows; taking a vote back closes with it;
--   * at most public.votes_per_show_limit() votes per user per show.
-- Errors (SQLSTATE → PostgREST status; the hint is a stable machine code):
--   42501 not signed in (401/403) · PT403 anonymous_user · PT401 unknown_user
--   P0002 setlist_song_not_found (404) · PT409 setlist_not_votable,
--   voting_closed, vote_limit_reached · 22004 missing argument (400).
-- Answers {setlist_song_id, setlist_id, show_id, vote_count, voted,
--          votes_used, votes_limit}; vote_count is exact as of the vote.
create or replace function public.cast_vote(setlist_song_id uuid, vote boolean default true)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller uuid := public.acting_fan('vote');
  song_setlist uuid;
  setlist_kind text;
  song_show uuid;
  show_status text;
  closes_at timestamptz;
  used integer;
  votes_limit constant integer := public.votes_per_show_limit();
  has_voted boolean;
begin
  if cast_vote.setlist_song_id is null or cast_vote.vote is null then
    raise exception 'setlist_song_id and vote are required'
      using errcode = '22004', hint = 'missing_argument';
  end if;

  select ss.setlist_id, sl.kind, sl.show_id, s.status,
         public.voting_closes_at(s.starts_at, s.local_date, s.local_time, v.timezone)
    into song_setlist, setlist_kind, song_show, show_status, closes_at
    from public.setlist_songs ss
    join public.setlists sl on sl.id = ss.setlist_id
    join public.shows s on s.id = sl.show_id
    join public.venues v on v.id = s.venue_id
   where ss.id = cast_vote.setlist_song_id;
  if not found then
    raise exception 'no such setlist song' using errcode = 'P0002', hint = 'setlist_song_not_found';
  end if;
  if setlist_kind <> 'predicted' then
    raise exception 'only the predicted setlist takes votes'
      using errcode = 'PT409', hint = 'setlist_not_votable';
  end if;
  if show_status in ('cancelled', 'removed') or closes_at <= now() then
    raise exception 'voting on this show is closed' using errcode = 'PT409', hint = 'voting_closed';
  end if;
  if not exists (select 1 from auth.users u where u.id = caller) then
    raise exception 'this account no longer exists' using errcode = 'PT401', hint = 'unknown_user';
  end if;

  -- One voter's requests on one show go one at a time, so the limit holds
  -- under concurrency; other voters never wait for it. The count below runs
  -- after the lock, so it sees what this voter's previous request committed.
  perform pg_advisory_xact_lock(hashtextextended('cast_vote:' || caller::text || ':'
                                                 || song_show::text, 0));
  select count(*)::integer, coalesce(bool_or(vo.setlist_song_id = cast_vote.setlist_song_id), false)
    into used, has_voted
    from public.votes vo
    join public.setlist_songs ss on ss.id = vo.setlist_song_id
   where vo.user_id = caller and ss.setlist_id = song_setlist;

  if cast_vote.vote and not has_voted then
    if used >= votes_limit then
      raise exception 'you have used all % of your votes on this show', votes_limit
        using errcode = 'PT409', hint = 'vote_limit_reached';
    end if;
    insert into public.votes (user_id, setlist_song_id)
    values (caller, cast_vote.setlist_song_id)
    on conflict do nothing;
    used := used + 1;
    has_voted := true;
  elsif not cast_vote.vote and has_voted then
    delete from public.votes vo
     where vo.user_id = caller and vo.setlist_song_id = cast_vote.setlist_song_id;
    used := used - 1;
    has_voted := false;
  end if;

  return jsonb_build_object(
    'setlist_song_id', cast_vote.setlist_song_id,
    'setlist_id', song_setlist,
    'show_id', song_show,
    'vote_count', (select public.exact_vote_count(ss) from public.setlist_songs ss
                    where ss.id = cast_vote.setlist_song_id),
    'voted', has_voted,
    'votes_used', used,
    'votes_limit', votes_limit);
end;
$$;

revoke execute on function public.cast_vote(uuid, boolean) from public, anon, authenticated;
grant execute on function public.cast_vote(uuid, boolean) to authenticated, service_role;

-- Exact counts in the other reads ------------------------------------------------

-- create_setlist's and add_song's view of a predicted setlist.
create or replace function public.predicted_setlist_songs(setlist_id uuid)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'setlist_song_id', c.id,
           'song_id', so.id,
           'title', so.title,
           'album', so.album,
           'duration_ms', so.duration_ms,
           'spotify_url', so.spotify_url,
           'position', c.position,
           'vote_count', c.vote_count)
         order by c.vote_count desc, c.position), '[]'::jsonb)
    from (select ss.id, ss.song_id, ss.position, public.exact_vote_count(ss) as vote_count
            from public.setlist_songs ss
           where ss.setlist_id = predicted_setlist_songs.setlist_id) c
    join public.songs so on so.id = c.song_id
$$;

-- add_song as in 0502; a song already on the setlist answers its exact count.
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
  select ss.id, ss.position, public.exact_vote_count(ss)
    into entry, entry_position, existing_votes
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

  -- Immediate: a new song is rare and every listener needs its row.
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
