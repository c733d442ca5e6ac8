-- Votes: cast_vote (the only way a user writes a vote), the count kept exact
-- by a trigger, and the Realtime broadcast of every count change.
--
-- setlist_songs.vote_count is maintained by a trigger on public.votes, never
-- by read-modify-write: every insert adds one, every delete (including the
-- cascade when a user deletes their account or a setlist song goes) takes one
-- away, atomically in the statement that changed the vote. Each change is
-- announced with realtime.send on topic 'setlist:<setlist_id>', event 'vote'.
--
-- The channel is private: Realtime only lets a client join it when the select
-- policy below on realtime.messages says so (everyone may read a setlist, so
-- everyone may listen), and there is no insert policy, so no client can
-- broadcast fake counts on it (which a public channel would allow).

-- Limits ------------------------------------------------------------------------

-- How many songs one user may vote for on one show's predicted setlist.
create or replace function public.votes_per_show_limit()
returns integer
language sql
immutable
parallel safe
set search_path = ''
as $$ select 10 $$;

comment on function public.votes_per_show_limit() is
  'How many songs of one show''s predicted setlist a user may vote for.';

-- When voting on a show closes: its start time; when the source gave none,
-- the local date and time (midnight when no time is known) in the venue's
-- timezone, UTC when the timezone is unknown or not one PostgreSQL knows.
create or replace function public.voting_closes_at(
  starts_at timestamptz,
  local_date date,
  local_time time,
  timezone text
)
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
begin
  if voting_closes_at.starts_at is not null then
    return voting_closes_at.starts_at;
  end if;
  begin
    return (voting_closes_at.local_date + coalesce(voting_closes_at.local_time, time '00:00'))
      at time zone coalesce(voting_closes_at.timezone, 'UTC');
  exception when invalid_parameter_value then
    return (voting_closes_at.local_date + coalesce(voting_closes_at.local_time, time '00:00'))
      at time zone 'UTC';
  end;
end;
$$;

-- The fan a write acts for: the token's user, who must be signed in with an
-- account (anonymous sign-ins may read, not vote or add songs). ``action``
-- names what was refused ("vote", "add songs").
create or replace function public.acting_fan(action text)
returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
  caller uuid := auth.uid();
begin
  if caller is null then
    raise exception 'sign in to %', action using errcode = '42501', hint = 'not_signed_in';
  end if;
  if coalesce((auth.jwt() ->> 'is_anonymous')::boolean, false) then
    raise exception 'anonymous users cannot %; sign in with an account', action
      using errcode = 'PT403', hint = 'anonymous_user';
  end if;
  return caller;
end;
$$;

-- Only the SECURITY DEFINER write RPCs (owned by the backend role) call it.
revoke execute on function public.acting_fan(text) from public, anon, authenticated;

revoke execute on function public.votes_per_show_limit() from public, anon, authenticated;
grant execute on function public.votes_per_show_limit() to anon, authenticated, service_role;
revoke execute on function public.voting_closes_at(timestamptz, date, time, text)
  from public, anon, authenticated;
grant execute on function public.voting_closes_at(timestamptz, date, time, text)
  to anon, authenticated, service_role;

-- The count and its broadcast -------------------------------------------------

create or replace function public.broadcast_vote_count(
  setlist_id uuid, setlist_song_id uuid, vote_count integer
)
returns void
language sql
set search_path = ''
as $$
  select realtime.send(
    jsonb_build_object('setlist_song_id', broadcast_vote_count.setlist_song_id,
                       'vote_count', broadcast_vote_count.vote_count),
    'vote',
    'setlist:' || broadcast_vote_count.setlist_id::text,
    true)
$$;

revoke execute on function public.broadcast_vote_count(uuid, uuid, integer)
  from public, anon, authenticated, service_role;

-- SECURITY DEFINER: vote rows also go by cascade (a user deleting their
-- account, run by Supabase Auth's role), and that role must still be able to
-- correct the count and broadcast.
create or replace function public.votes_maintain_count()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  changed_setlist uuid;
  new_count integer;
begin
  if tg_op = 'UPDATE' and old.setlist_song_id = new.setlist_song_id then
    return null;
  end if;
  if tg_op in ('DELETE', 'UPDATE') then
    -- greatest(): a count that drifted (hand-edited) must not block deleting a user.
    update public.setlist_songs ss
       set vote_count = greatest(ss.vote_count - 1, 0)
     where ss.id = old.setlist_song_id
    returning ss.setlist_id, ss.vote_count into changed_setlist, new_count;
    -- Not found: the setlist song itself is being deleted (cascade).
    if found then
      perform public.broadcast_vote_count(changed_setlist, old.setlist_song_id, new_count);
    end if;
  end if;
  if tg_op in ('INSERT', 'UPDATE') then
    update public.setlist_songs ss
       set vote_count = ss.vote_count + 1
     where ss.id = new.setlist_song_id
    returning ss.setlist_id, ss.vote_count into changed_setlist, new_count;
    if found then
      perform public.broadcast_vote_count(changed_setlist, new.setlist_song_id, new_count);
    end if;
  end if;
  return null;
end;
$$;

revoke execute on function public.votes_maintain_count() from public, anon, authenticated, service_role;

create trigger votes_maintain_count
  after insert or delete or update of setlist_song_id on public.votes
  for each row execute function public.votes_maintain_count();

-- Who may listen ----------------------------------------------------------------

-- True for 'setlist:<id>' topics of existing setlists. Invoker rights: it
-- answers exactly what the caller could read.
create or replace function public.is_setlist_topic(topic text)
returns boolean
language sql
stable
set search_path = ''
as $$
  select case
    when is_setlist_topic.topic ~ '^setlist:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
      then exists (select 1 from public.setlists s
                    where s.id = substr(is_setlist_topic.topic, 9)::uuid)
    else false
  end
$$;

revoke execute on function public.is_setlist_topic(text) from public, anon, authenticated;
grant execute on function public.is_setlist_topic(text) to anon, authenticated, service_role;

-- Setlists are public, so anyone may receive a setlist's vote broadcasts.
-- No insert policy: clients cannot send on these topics.
create policy "anyone may receive setlist vote broadcasts" on realtime.messages
  for select to anon, authenticated
  using (
    realtime.messages.extension = 'broadcast'
    and public.is_setlist_topic((select realtime.topic()))
  );

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
--          votes_used, votes_limit}.
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
  current_count integer;
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

  -- The caller's votes on this show before the change.
  select count(*), coalesce(bool_or(vo.setlist_song_id = cast_vote.setlist_song_id), false)
    into used, has_voted
    from public.votes vo
    join public.setlist_songs ss on ss.id = vo.setlist_song_id
   where vo.user_id = caller and ss.setlist_id = song_setlist;

  if cast_vote.vote and not has_voted then
    -- One voter's votes on one show are counted and added one at a time, so
    -- concurrent requests cannot overshoot the limit. Other voters never wait.
    perform pg_advisory_xact_lock(hashtextextended('cast_vote:' || caller::text || ':'
                                                   || song_show::text, 0));
    -- Count again under the lock: a concurrent request of this voter may have
    -- committed meanwhile.
    select count(*), coalesce(bool_or(vo.setlist_song_id = cast_vote.setlist_song_id), false)
      into used, has_voted
      from public.votes vo
      join public.setlist_songs ss on ss.id = vo.setlist_song_id
     where vo.user_id = caller and ss.setlist_id = song_setlist;
    if not has_voted then
      if used >= votes_limit then
        raise exception 'you have used all % of your votes on this show', votes_limit
          using errcode = 'PT409', hint = 'vote_limit_reached';
      end if;
      -- Take the song's row lock before inserting: the vote's foreign-key check
      -- would otherwise share-lock a row other voters are updating, and share
      -- locks held by many transactions at once (multixacts) are what makes a
      -- hot row slow. From here to commit is the only serialised part.
      perform 1 from public.setlist_songs ss where ss.id = cast_vote.setlist_song_id
        for no key update;
      insert into public.votes (user_id, setlist_song_id)
      values (caller, cast_vote.setlist_song_id)
      on conflict do nothing;
      if found then
        used := used + 1;
        has_voted := true;
      end if;
    end if;
  elsif not cast_vote.vote and has_voted then
    delete from public.votes vo
     where vo.user_id = caller and vo.setlist_song_id = cast_vote.setlist_song_id;
    if found then
      used := used - 1;
    end if;
    has_voted := false;
  end if;

  -- The count as of now: our own change included.
  select ss.vote_count into current_count
    from public.setlist_songs ss where ss.id = cast_vote.setlist_song_id;

  return jsonb_build_object(
    'setlist_song_id', cast_vote.setlist_song_id,
    'setlist_id', song_setlist,
    'show_id', song_show,
    'vote_count', current_count,
    'voted', has_voted,
    'votes_used', used,
    'votes_limit', votes_limit);
end;
$$;

revoke execute on function public.cast_vote(uuid, boolean) from public, anon, authenticated;
grant execute on function public.cast_vote(uuid, boolean) to authenticated, service_role;
