-- The catalogue: artists, venues, shows and songs imported from the sources.
-- One real-world thing is one row. External ids live in mapping tables keyed
-- by (source, external_id): an entity may hold several ids of one source
-- (Ticketmaster lists duplicate attractions), and one id maps to one entity.
-- Natural keys back them up where no id matches.

create table public.artists (
  id uuid primary key default gen_random_uuid(),
  name text not null check (btrim(name) <> ''),
  name_key text not null generated always as (public.name_key(name)) stored,
  image_url text,
  genres text[] not null default '{}',
  popularity smallint check (popularity between 0 and 100),
  followers integer check (followers >= 0),
  ticketmaster_url text,
  spotify_url text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.artists is
  'Performing artists. Identity lives in artist_external_ids; two artists may share a name.';

create index artists_name_key_idx on public.artists (name_key);
create index artists_name_trgm_idx on public.artists using gin (name extensions.gin_trgm_ops);
create index artists_popularity_idx on public.artists (popularity desc nulls last);

create table public.artist_external_ids (
  source text not null check (source in ('ticketmaster', 'spotify', 'musicbrainz')),
  external_id text not null check (btrim(external_id) <> ''),
  -- The mapping is part of the artist: it goes when the artist goes.
  artist_id uuid not null references public.artists (id) on delete cascade,
  created_at timestamptz not null default now(),
  primary key (source, external_id)
);

create index artist_external_ids_artist_idx on public.artist_external_ids (artist_id);

create table public.venues (
  id uuid primary key default gen_random_uuid(),
  name text not null check (btrim(name) <> ''),
  name_key text not null generated always as (public.name_key(name)) stored,
  city text not null check (btrim(city) <> ''),
  city_key text not null generated always as (public.name_key(city)) stored,
  state text,
  state_code text,
  country_code text check (country_code ~ '^[A-Z]{2}$'),
  country text,
  address text,
  postal_code text,
  timezone text,
  latitude numeric(9, 6) check (latitude between -90 and 90),
  longitude numeric(9, 6) check (longitude between -180 and 180),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- A venue that no source id matches is the same venue when its normalised
  -- name, city and country are.
  constraint venues_natural_key unique nulls not distinct (name_key, city_key, country_code)
);

create index venues_location_idx on public.venues (country_code, city_key);

create table public.venue_external_ids (
  source text not null check (source in ('ticketmaster', 'setlistfm')),
  external_id text not null check (btrim(external_id) <> ''),
  venue_id uuid not null references public.venues (id) on delete cascade,
  created_at timestamptz not null default now(),
  primary key (source, external_id)
);

create index venue_external_ids_venue_idx on public.venue_external_ids (venue_id);

create table public.shows (
  id uuid primary key default gen_random_uuid(),
  -- Shows are never deleted with their artist or venue: a show carries the
  -- fans' votes, so removing an artist or venue that has shows must fail.
  artist_id uuid not null references public.artists (id) on delete restrict,
  venue_id uuid not null references public.venues (id) on delete restrict,
  local_date date not null,
  local_time time,
  starts_at timestamptz,
  name text,
  -- 'removed': the sources no longer list it; the row stays for its votes.
  status text not null default 'scheduled'
    check (status in ('scheduled', 'postponed', 'rescheduled', 'cancelled', 'removed')),
  ticket_url text,
  image_url text,
  on_sale_at timestamptz,
  price_min numeric(10, 2) check (price_min >= 0),
  price_max numeric(10, 2) check (price_max >= 0),
  price_currency text check (price_currency ~ '^[A-Z]{3}$'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint shows_price_range check (price_min <= price_max),
  -- One concert is one show however many events a source lists for it.
  constraint shows_natural_key unique (artist_id, venue_id, local_date)
);

create index shows_artist_date_idx on public.shows (artist_id, local_date);
create index shows_venue_idx on public.shows (venue_id);
create index shows_upcoming_feed_idx on public.shows (local_date, id)
  where status in ('scheduled', 'postponed', 'rescheduled');

create table public.show_external_ids (
  source text not null check (source in ('ticketmaster', 'setlistfm')),
  external_id text not null check (btrim(external_id) <> ''),
  show_id uuid not null references public.shows (id) on delete cascade,
  created_at timestamptz not null default now(),
  primary key (source, external_id)
);

create index show_external_ids_show_idx on public.show_external_ids (show_id);

create table public.songs (
  id uuid primary key default gen_random_uuid(),
  -- A catalogue belongs to its artist; setlist_songs restricts deleting a
  -- song that was ever on a setlist.
  artist_id uuid not null references public.artists (id) on delete cascade,
  title text not null check (btrim(title) <> ''),
  -- Normalised title (version suffixes such as "- Remastered 2011" removed):
  -- one song per normalised title per artist, computed by the import.
  title_key text not null check (btrim(title_key) <> ''),
  album text,
  album_spotify_id text,
  release_date date,
  duration_ms integer check (duration_ms > 0),
  isrc text check (isrc ~ '^[A-Z0-9]{12}$'),
  spotify_id text unique,
  spotify_url text,
  popularity smallint check (popularity between 0 and 100),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint songs_one_per_title unique (artist_id, title_key)
);

create index songs_title_trgm_idx on public.songs using gin (title extensions.gin_trgm_ops);

create trigger artists_touch_updated_at before update on public.artists
  for each row execute function public.touch_updated_at();
create trigger venues_touch_updated_at before update on public.venues
  for each row execute function public.touch_updated_at();
create trigger shows_touch_updated_at before update on public.shows
  for each row execute function public.touch_updated_at();
create trigger songs_touch_updated_at before update on public.songs
  for each row execute function public.touch_updated_at();

-- The catalogue is world-readable; it is written only by the backend.
alter table public.artists enable row level security;
alter table public.artist_external_ids enable row level security;
alter table public.venues enable row level security;
alter table public.venue_external_ids enable row level security;
alter table public.shows enable row level security;
alter table public.show_external_ids enable row level security;
alter table public.songs enable row level security;

revoke all on table public.artists, public.artist_external_ids, public.venues,
  public.venue_external_ids, public.shows, public.show_external_ids, public.songs
  from anon, authenticated;
grant select on table public.artists, public.artist_external_ids, public.venues,
  public.venue_external_ids, public.shows, public.show_external_ids, public.songs
  to anon, authenticated;
grant select, insert, update, delete on table public.artists, public.artist_external_ids,
  public.venues, public.venue_external_ids, public.shows, public.show_external_ids, public.songs
  to service_role;

create policy "artists are public" on public.artists
  for select to anon, authenticated using (true);
create policy "artist ids are public" on public.artist_external_ids
  for select to anon, authenticated using (true);
create policy "venues are public" on public.venues
  for select to anon, authenticated using (true);
create policy "venue ids are public" on public.venue_external_ids
  for select to anon, authenticated using (true);
create policy "shows are public" on public.shows
  for select to anon, authenticated using (true);
create policy "show ids are public" on public.show_external_ids
  for select to anon, authenticated using (true);
create policy "songs are public" on public.songs
  for select to anon, authenticated using (true);
