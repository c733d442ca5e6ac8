-- TheSet demo seed.
--
-- EVERYTHING IN THIS FILE IS FICTIONAL DEMO DATA FOR LOCAL DEVELOPMENT ONLY.
-- It never runs in production. The artists, venues, shows, songs, users and
-- external ids below are invented; artist names end in " (Demo)", venue names
-- start with "Demo", and every external id starts with "DEMO-" or "demo-".
--
-- It runs once, in one transaction, as the superuser, right after the
-- migrations on an empty database. It is deterministic: dates are relative to
-- current_date and every choice is modular arithmetic, never random().
--
-- Fixed ids other documents may refer to:
--   artists    a0000000-0000-4000-8000-0000000000NN  (NN = 01..10, see below)
--   fan one    00000000-0000-4000-8000-000000000001  fan.one@example.com
--   fan two    00000000-0000-4000-8000-000000000002  fan.two@example.com
-- Numbering used to link rows below (all obviously fake):
--   artist N   ticketmaster 'DEMO-TM-0NN', spotify 'demo-spotify-0NN'
--   venue N    ticketmaster 'DEMO-TM-V0NN'
--   show N     ticketmaster 'DEMO-TM-E0NN': 1..60 upcoming, 61..65 past

-- Demo users, as Supabase Auth stores a Spotify sign-in ----------------------
-- (the profiles trigger creates their profiles rows).
insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                        last_sign_in_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
select '00000000-0000-0000-0000-000000000000', u.id::uuid, 'authenticated', 'authenticated',
       u.email, '', now(), now(),
       '{"provider": "spotify", "providers": ["spotify"]}'::jsonb,
       jsonb_build_object(
         'iss', 'https://api.spotify.com/v1',
         'sub', u.spotify_id,
         'provider_id', u.spotify_id,
         'name', u.full_name,
         'full_name', u.full_name,
         'email', u.email,
         'email_verified', true,
         'phone_verified', false,
         'avatar_url', 'https://picsum.photos/seed/' || u.spotify_id || '/300/300',
         'picture', 'https://picsum.photos/seed/' || u.spotify_id || '/300/300'),
       now(), now()
from (values
  ('00000000-0000-4000-8000-000000000001', 'fan.one@example.com', 'Demo Fan One', 'demo-spotify-user-001'),
  ('00000000-0000-4000-8000-000000000002', 'fan.two@example.com', 'Demo Fan Two', 'demo-spotify-user-002')
) as u (id, email, full_name, spotify_id);

-- Artists -------------------------------------------------------------------
insert into public.artists (id, name, genres, image_url, popularity, followers)
select id::uuid, name, genres,
       'https://picsum.photos/seed/' || slug || '/640/640', popularity, followers
from (values
  ('a0000000-0000-4000-8000-000000000001', 'Paper Lanterns (Demo)',    'paper-lanterns',    array['indie pop', 'indie'],           78, 1240000),
  ('a0000000-0000-4000-8000-000000000002', 'The Velvet Static (Demo)', 'the-velvet-static', array['alternative rock', 'rock'],     71,  860000),
  ('a0000000-0000-4000-8000-000000000003', 'Midnight Orchard (Demo)',  'midnight-orchard',  array['folk', 'americana'],            64,  412000),
  ('a0000000-0000-4000-8000-000000000004', 'Neon Tide (Demo)',         'neon-tide',         array['synthpop', 'electronic'],       82, 2310000),
  ('a0000000-0000-4000-8000-000000000005', 'Copper & Coil (Demo)',     'copper-and-coil',   array['blues rock', 'rock'],           55,  198000),
  ('a0000000-0000-4000-8000-000000000006', 'Luna Barrows (Demo)',      'luna-barrows',      array['singer-songwriter', 'pop'],     88, 5120000),
  ('a0000000-0000-4000-8000-000000000007', 'Glass Harbour (Demo)',     'glass-harbour',     array['dream pop', 'shoegaze'],        47,   96000),
  ('a0000000-0000-4000-8000-000000000008', 'Static Bloom (Demo)',      'static-bloom',      array['punk', 'pop punk'],             59,  305000),
  ('a0000000-0000-4000-8000-000000000009', 'Saffron Skies (Demo)',     'saffron-skies',     array['r&b', 'soul'],                  74, 1045000),
  ('a0000000-0000-4000-8000-000000000010', 'Kilowatt Choir (Demo)',    'kilowatt-choir',    array['electronic', 'dance'],          67,  587000)
) as a (id, name, slug, genres, popularity, followers);

insert into public.artist_external_ids (source, external_id, artist_id)
select s.source, s.prefix || lpad(right(a.id::text, 2), 3, '0'), a.id
from public.artists a
cross join (values ('ticketmaster', 'DEMO-TM-'), ('spotify', 'demo-spotify-')) as s (source, prefix)
where a.id::text like 'a0000000-0000-4000-8000-%';

-- Venues: fictional names in real cities ------------------------------------
with v (n, name, city, state, state_code, country_code, country, timezone, latitude, longitude) as (
  values
    ( 1, 'Demo Hall Berlin',            'Berlin',      null,              null, 'DE', 'Germany',        'Europe/Berlin',       52.520008,   13.404954),
    ( 2, 'Demo Arena London',           'London',      'England',         null, 'GB', 'United Kingdom', 'Europe/London',       51.507351,   -0.127758),
    ( 3, 'Demo Ballroom Manchester',    'Manchester',  'England',         null, 'GB', 'United Kingdom', 'Europe/London',       53.480759,   -2.242631),
    ( 4, 'Demo Théâtre Paris',          'Paris',       null,              null, 'FR', 'France',         'Europe/Paris',        48.856613,    2.352222),
    ( 5, 'Demo Club Amsterdam',         'Amsterdam',   null,              null, 'NL', 'Netherlands',    'Europe/Amsterdam',    52.367573,    4.904139),
    ( 6, 'Demo Sala Madrid',            'Madrid',      null,              null, 'ES', 'Spain',          'Europe/Madrid',       40.416775,   -3.703790),
    ( 7, 'Demo Hall Stockholm',         'Stockholm',   null,              null, 'SE', 'Sweden',         'Europe/Stockholm',    59.329323,   18.068581),
    ( 8, 'Demo Garden New York',        'New York',    'New York',        'NY', 'US', 'United States',  'America/New_York',    40.712776,  -74.005974),
    ( 9, 'Demo Theater Chicago',        'Chicago',     'Illinois',        'IL', 'US', 'United States',  'America/Chicago',     41.878113,  -87.629799),
    (10, 'Demo Palladium Los Angeles',  'Los Angeles', 'California',      'CA', 'US', 'United States',  'America/Los_Angeles', 34.052235, -118.243683),
    (11, 'Demo Warehouse Austin',       'Austin',      'Texas',           'TX', 'US', 'United States',  'America/Chicago',     30.267153,  -97.743057),
    (12, 'Demo Hall Toronto',           'Toronto',     'Ontario',         'ON', 'CA', 'Canada',         'America/Toronto',     43.653225,  -79.383186),
    (13, 'Demo Foro Mexico City',       'Mexico City', 'Ciudad de México', null, 'MX', 'Mexico',        'America/Mexico_City', 19.432608,  -99.133209),
    (14, 'Demo Pavilion Sydney',        'Sydney',      'New South Wales', 'NSW', 'AU', 'Australia',     'Australia/Sydney',   -33.868820,  151.209296),
    (15, 'Demo Hall Tokyo',             'Tokyo',       null,              null, 'JP', 'Japan',          'Asia/Tokyo',          35.676192,  139.650311)
),
ins as (
  insert into public.venues (name, city, state, state_code, country_code, country, timezone, latitude, longitude)
  select name, city, state, state_code, country_code, country, timezone, latitude, longitude from v
  returning id, name
)
insert into public.venue_external_ids (source, external_id, venue_id)
select 'ticketmaster', 'DEMO-TM-V' || lpad(v.n::text, 3, '0'), ins.id
from ins join v using (name);

-- Shows: 60 upcoming (1..60) over the next 120 days, 5 past (61..65) --------
with artist_n as (
  select right(id::text, 2)::int as n, id, name from public.artists
  where id::text like 'a0000000-0000-4000-8000-%'
),
venue_n as (
  select substr(x.external_id, 10)::int as n, v.*
  from public.venue_external_ids x join public.venues v on v.id = x.venue_id
  where x.source = 'ticketmaster' and x.external_id like 'DEMO-TM-V%'
),
plan as (
  select g,
         (g - 1) % 10 + 1 as artist_n,
         -- 4g + g/10 walks each artist through six different venues.
         (4 * g + (g - 1) / 10) % 15 + 1 as venue_n,
         case when g <= 60 then current_date + (2 * g - g % 3)   -- strictly increasing, 1..120
              else current_date - (g - 60) * 9 end as local_date,
         (array['19:00', '19:30', '20:00', '20:30'])[g % 4 + 1]::time as local_time,
         case g when 17 then 'postponed' when 41 then 'cancelled' else 'scheduled' end as status,
         25 + (g * 7) % 40 as base_price
  from generate_series(1, 65) as g
),
planned as (
  select p.g, a.id as artist_id, v.id as venue_id, p.local_date, p.local_time,
         (p.local_date + p.local_time) at time zone v.timezone as starts_at,
         a.name || ': The Demo Tour' as name, p.status,
         case v.country_code when 'GB' then 'GBP' when 'US' then 'USD' when 'CA' then 'CAD'
              when 'MX' then 'MXN' when 'AU' then 'AUD' when 'JP' then 'JPY' when 'SE' then 'SEK'
              else 'EUR' end as currency,
         p.base_price * case v.country_code when 'JP' then 150 when 'MX' then 18
                                            when 'SE' then 11 else 1 end as price_min,
         (p.base_price + 20 + (p.g % 5) * 10) * case v.country_code when 'JP' then 150
              when 'MX' then 18 when 'SE' then 11 else 1 end as price_max
  from plan p
  join artist_n a on a.n = p.artist_n
  join venue_n v on v.n = p.venue_n
),
ins as (
  insert into public.shows (artist_id, venue_id, local_date, local_time, starts_at, name, status,
                            ticket_url, image_url, on_sale_at, price_min, price_max, price_currency)
  select artist_id, venue_id, local_date, local_time, starts_at, name, status,
         'https://example.com/demo-tickets/' || g,
         'https://picsum.photos/seed/demo-show-' || g || '/1024/576',
         starts_at - interval '60 days', price_min, price_max, currency
  from planned
  returning id, artist_id, venue_id, local_date
)
insert into public.show_external_ids (source, external_id, show_id)
select 'ticketmaster', 'DEMO-TM-E' || lpad(planned.g::text, 3, '0'), ins.id
from ins join planned using (artist_id, venue_id, local_date);

-- Songs: 8..15 fictional titles per artist ------------------------------------
with words as (
  select array['Paper', 'Silver', 'Hollow', 'Golden', 'Quiet', 'Electric', 'Crimson', 'Velvet',
               'Distant', 'Broken', 'Midnight', 'Northern', 'Restless', 'Faded', 'Neon', 'Wild'] as adj,
         array['Harbour', 'Lanterns', 'Signals', 'Horizon', 'Letters', 'Rivers', 'Satellites', 'Gardens',
               'Echoes', 'Highways', 'Embers', 'Tides', 'Windows', 'Parade', 'Compass', 'Summer'] as noun
),
artist_n as (
  select right(id::text, 2)::int as n, id from public.artists
  where id::text like 'a0000000-0000-4000-8000-%'
),
plan as (
  -- The adjective index differs for every s of one artist, so titles are unique per artist.
  select a.id as artist_id, a.n, s,
         w.adj[(a.n * 3 + s) % 16 + 1] || ' ' || w.noun[(a.n * 5 + s * 3) % 16 + 1] as title
  from artist_n a
  cross join words w
  cross join lateral generate_series(1, 8 + (a.n * 3) % 8) as s
)
insert into public.songs (artist_id, title, album, release_date, duration_ms, popularity)
select artist_id, title,
       'Demo Sessions, Vol. ' || ((s - 1) / 5 + 1),
       date '2018-03-01' + ((s - 1) / 5) * 400 + n * 17,
       (150 + (n * 37 + s * 53) % 150) * 1000 + (s * 137) % 1000,
       20 + (n * 11 + s * 17) % 70
from plan;

-- Setlists: a predicted one for every show, an actual one for shows 61, 62 ----
with show_n as (
  select substr(external_id, 10)::int as g, show_id
  from public.show_external_ids
  where source = 'ticketmaster' and external_id like 'DEMO-TM-E%'
)
insert into public.setlists (show_id, kind)
select show_id, 'predicted' from show_n
union all
select show_id, 'actual' from show_n where g in (61, 62);

-- Setlist songs: predicted = 5 consecutive catalogue songs (by title) from a
-- per-show offset; actual = 8 songs, the last two as the encore.
with show_n as (
  select substr(x.external_id, 10)::int as g, s.id as show_id, s.artist_id
  from public.show_external_ids x join public.shows s on s.id = x.show_id
  where x.source = 'ticketmaster' and x.external_id like 'DEMO-TM-E%'
),
song_n as (
  select id, artist_id,
         row_number() over (partition by artist_id order by title_key) as n,
         count(*) over (partition by artist_id) as k
  from public.songs
),
picks as (
  select sl.id as setlist_id, sh.g, sl.kind, p.position,
         case sl.kind when 'predicted' then (sh.g * 3 + p.position - 1)
                      else (sh.g * 5 + p.position - 1) end as offset_n,
         sh.artist_id
  from show_n sh
  join public.setlists sl on sl.show_id = sh.show_id
  cross join lateral generate_series(1, case sl.kind when 'predicted' then 5 else 8 end)
    as p (position)
)
insert into public.setlist_songs (setlist_id, song_id, position, encore, info, added_by)
select p.setlist_id, so.id, p.position,
       case when p.kind = 'actual' and p.position > 6 then 1 end,
       case when p.kind = 'actual' and p.position = 4 then 'Acoustic' end,
       case when p.kind = 'predicted' and p.position = 5 and p.g % 4 = 0
              then '00000000-0000-4000-8000-000000000001'::uuid
            when p.kind = 'predicted' and p.position = 5 and p.g % 4 = 2
              then '00000000-0000-4000-8000-000000000002'::uuid end
from picks p
join song_n so on so.artist_id = p.artist_id and so.n = p.offset_n % so.k + 1;

-- Their Spotify top artists (ranked) and followed artists.
insert into public.user_artists (user_id, artist_id, relation, rank)
select u.id::uuid, ('a0000000-0000-4000-8000-0000000000' || lpad(x.artist_n::text, 2, '0'))::uuid,
       x.relation, x.rank
from (values ('00000000-0000-4000-8000-000000000001', 1),
             ('00000000-0000-4000-8000-000000000002', 2)) as u (id, n)
cross join lateral (
  -- Fan one: top 1..5, follows 2, 4, 6, 8. Fan two: top 10..6, follows 1, 3, 5.
  select case u.n when 1 then r else 11 - r end, 'top', r
  from generate_series(1, 5) as r
  union all
  select case u.n when 1 then 2 * f else 2 * f - 1 end, 'followed', null::int
  from generate_series(1, 5 - u.n) as f
) as x (artist_n, relation, rank);

-- Votes on predicted setlists (not on the cancelled show).
with predicted as (
  select substr(x.external_id, 10)::int as g, ss.id as setlist_song_id, ss.position
  from public.show_external_ids x
  join public.shows s on s.id = x.show_id
  join public.setlists sl on sl.show_id = s.id and sl.kind = 'predicted'
  join public.setlist_songs ss on ss.setlist_id = sl.id
  where x.source = 'ticketmaster' and x.external_id like 'DEMO-TM-E%' and s.status <> 'cancelled'
)
insert into public.votes (user_id, setlist_song_id, created_at)
select '00000000-0000-4000-8000-000000000001'::uuid, setlist_song_id,
       now() - make_interval(hours => g + position)
from predicted where (g + position) % 3 = 0
union all
select '00000000-0000-4000-8000-000000000002'::uuid, setlist_song_id,
       now() - make_interval(hours => 2 * g + position)
from predicted where (2 * g + position) % 4 = 1;

-- Exact counts whatever vote triggers exist.
update public.setlist_songs ss
set vote_count = (select count(*) from public.votes v where v.setlist_song_id = ss.id);

-- The demo artists' ids are fake: mark every sync of theirs fresh for ever so
-- the local worker and the pg_cron schedules never send them to the sources.
insert into private.sync_state (job_kind, entity_id, last_attempt_at, last_success_at, next_due_at)
select kind, a.id, now(), now(), 'infinity'
from public.artists a
cross join unnest(array['artist_details', 'artist_shows', 'artist_catalogue',
                        'artist_popularity']) as kind
where a.name like '% (Demo)';
