-- Structural promises of the schema, checked by pg_prove (`./dev test` runs it).
begin;
select plan(19);

select is_empty(
  $$ select relname from pg_class
     where relnamespace in ('public'::regnamespace, 'private'::regnamespace)
       and relkind in ('r', 'p') and not relrowsecurity $$,
  'every table in public and private has row level security enabled');

select is_empty(
  $$ select p.oid::regprocedure::text from pg_proc p
     where p.pronamespace in ('public'::regnamespace, 'private'::regnamespace) and p.prosecdef
       and not coalesce(p.proconfig, '{}') @> array['search_path=""'] $$,
  'every SECURITY DEFINER function pins an empty search_path');

select is_empty(
  $$ select c.relname from pg_class c
     where c.relnamespace in ('public'::regnamespace, 'private'::regnamespace) and c.relkind in ('r', 'p')
       and has_table_privilege('anon', c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE') $$,
  'anon can write no table directly');

select is_empty(
  $$ select c.relname from pg_class c
     where c.relnamespace in ('public'::regnamespace, 'private'::regnamespace) and c.relkind in ('r', 'p')
       and has_table_privilege('authenticated', c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE') $$,
  'authenticated can write no table directly');

select is_empty(
  $$ select c.relname from pg_class c
     where c.relnamespace in ('public'::regnamespace, 'private'::regnamespace) and c.relkind = 'S'
       and case when c.relkind = 'S'
                then has_sequence_privilege('anon', c.oid, 'USAGE, UPDATE') end $$,
  'anon can use no sequence');

select has_index('public', 'shows', 'shows_artist_date_idx', 'an artist''s shows by date');
select has_index('public', 'shows', 'shows_upcoming_feed_idx', 'the upcoming feed by date');
select has_index('public', 'venues', 'venues_location_idx', 'the feed by country and city');
select has_index('public', 'votes', 'votes_setlist_song_idx', 'votes by setlist song');
select has_index('public', 'artists', 'artists_name_trgm_idx', 'trigram search on artist names');

select col_is_pk('public', 'votes', array['user_id', 'setlist_song_id'], 'one vote per user per setlist song');
select col_is_pk('public', 'artist_external_ids', array['source', 'external_id'], 'an artist id maps to one artist');
select col_is_unique('public', 'shows', array['artist_id', 'venue_id', 'local_date'], 'a show is artist, venue and local date');
select col_is_unique('public', 'setlists', array['show_id', 'kind'], 'one setlist of each kind per show');
select col_is_unique('public', 'songs', array['artist_id', 'title_key'], 'one song per normalised title');

select policies_are('public', 'votes', array['users read their own votes']);
select policies_are('public', 'profiles', array['users read their own profile']);

select has_trigger('auth', 'users', 'on_auth_user_saved', 'profiles follow auth.users');

select ok(
  exists (select from pgmq.meta where queue_name = 'sync'),
  'the sync queue exists');

select * from finish();
rollback;
