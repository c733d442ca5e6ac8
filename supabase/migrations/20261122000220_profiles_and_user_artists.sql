-- Profiles mirror auth.users (one each), filled from the Spotify profile that
-- a Spotify sign-in stores in raw_user_meta_data; user_artists holds a
-- user's top and followed artists from Spotify.

create table public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  display_name text,
  avatar_url text,
  spotify_id text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.user_artists (
  user_id uuid not null references auth.users (id) on delete cascade,
  artist_id uuid not null references public.artists (id) on delete cascade,
  relation text not null check (relation in ('top', 'followed')),
  -- Spotify's order for top artists (1 = most listened); null for followed.
  rank integer check (rank > 0),
  synced_at timestamptz not null default now(),
  primary key (user_id, artist_id, relation)
);

create index user_artists_artist_idx on public.user_artists (artist_id);

create trigger profiles_touch_updated_at before update on public.profiles
  for each row execute function public.touch_updated_at();

-- Runs as its owner because the signing-up user cannot write profiles.
create or replace function public.sync_profile_from_auth_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  meta jsonb := coalesce(new.raw_user_meta_data, '{}'::jsonb);
  is_spotify boolean := coalesce(new.raw_app_meta_data ->> 'provider', '') = 'spotify'
    or coalesce(new.raw_app_meta_data -> 'providers', '[]'::jsonb) ? 'spotify';
begin
  insert into public.profiles as p (id, display_name, avatar_url, spotify_id)
  values (
    new.id,
    coalesce(meta ->> 'full_name', meta ->> 'name', meta ->> 'user_name'),
    coalesce(meta ->> 'avatar_url', meta ->> 'picture'),
    case when is_spotify then coalesce(meta ->> 'provider_id', meta ->> 'sub') end
  )
  on conflict (id) do update
    set display_name = excluded.display_name,
        avatar_url = excluded.avatar_url,
        spotify_id = coalesce(excluded.spotify_id, p.spotify_id)
    where (p.display_name, p.avatar_url, p.spotify_id)
      is distinct from (excluded.display_name, excluded.avatar_url,
                        coalesce(excluded.spotify_id, p.spotify_id));
  return new;
end;
$$;

revoke all on function public.sync_profile_from_auth_user() from public, anon, authenticated, service_role;

create trigger on_auth_user_saved
  after insert or update of raw_user_meta_data, raw_app_meta_data on auth.users
  for each row execute function public.sync_profile_from_auth_user();

alter table public.profiles enable row level security;
alter table public.user_artists enable row level security;

revoke all on table public.profiles, public.user_artists from anon, authenticated;
grant select on table public.profiles, public.user_artists to authenticated;
grant select, insert, update, delete on table public.profiles, public.user_artists to service_role;

create policy "users read their own profile" on public.profiles
  for select to authenticated using ((select auth.uid()) = id);
create policy "users read their own artists" on public.user_artists
  for select to authenticated using ((select auth.uid()) = user_id);
