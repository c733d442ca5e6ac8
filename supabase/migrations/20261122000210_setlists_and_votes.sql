-- Setlists: the fans' predicted setlist and the played one from setlist.fm,
-- at most one of each per show; their songs with vote counts; the votes.

create table public.setlists (
  id uuid primary key default gen_random_uuid(),
  -- A show with a setlist is never deleted (its votes would go with it); a
  -- show the sources drop is retired with status 'removed' instead.
  show_id uuid not null references public.shows (id) on delete restrict,
  kind text not null check (kind in ('predicted', 'actual')),
  -- For 'actual' setlists: setlist.fm's id and the page the data must link to.
  source_id text,
  source_url text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint setlists_one_per_kind unique (show_id, kind)
);

create table public.setlist_songs (
  id uuid primary key default gen_random_uuid(),
  setlist_id uuid not null references public.setlists (id) on delete cascade,
  -- A song that was ever on a setlist stays in the catalogue.
  song_id uuid not null references public.songs (id) on delete restrict,
  position integer not null check (position > 0),
  vote_count integer not null default 0 check (vote_count >= 0),
  -- Played setlists: the encore number (null in the main set), covers and
  -- setlist.fm's free-text note.
  encore smallint check (encore > 0),
  is_cover boolean not null default false,
  info text,
  -- Who added it to a predicted setlist; the song stays if they leave.
  added_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint setlist_songs_song_once unique (setlist_id, song_id),
  constraint setlist_songs_position_once unique (setlist_id, position)
);

create index setlist_songs_song_idx on public.setlist_songs (song_id);
create index setlist_songs_ranking_idx on public.setlist_songs (setlist_id, vote_count desc, position);

create table public.votes (
  -- A user who deletes their account takes their votes along.
  user_id uuid not null references auth.users (id) on delete cascade,
  setlist_song_id uuid not null references public.setlist_songs (id) on delete cascade,
  created_at timestamptz not null default now(),
  primary key (user_id, setlist_song_id)
);

create index votes_setlist_song_idx on public.votes (setlist_song_id);

create trigger setlists_touch_updated_at before update on public.setlists
  for each row execute function public.touch_updated_at();
create trigger setlist_songs_touch_updated_at before update on public.setlist_songs
  for each row execute function public.touch_updated_at();

alter table public.setlists enable row level security;
alter table public.setlist_songs enable row level security;
alter table public.votes enable row level security;

revoke all on table public.setlists, public.setlist_songs, public.votes from anon, authenticated;
grant select on table public.setlists, public.setlist_songs to anon, authenticated;
-- Votes are private: a user sees their own; counts are public on setlist_songs.
grant select on table public.votes to authenticated;
grant select, insert, update, delete on table public.setlists, public.setlist_songs, public.votes
  to service_role;

create policy "setlists are public" on public.setlists
  for select to anon, authenticated using (true);
create policy "setlist songs are public" on public.setlist_songs
  for select to anon, authenticated using (true);
create policy "users read their own votes" on public.votes
  for select to authenticated using ((select auth.uid()) = user_id);
