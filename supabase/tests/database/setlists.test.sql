-- Setlists and votes: the promises the RPCs, triggers and grants make.
begin;
select plan(18);

select has_trigger('public', 'votes', 'Count_votes', 'vote counts follow the votes');
select has_trigger('public', 'shows', 'shows_queue_setlist', 'new shows queue their setlist');
select has_function('private', 'queue_setlists_for_artist', array['uuid'],
                    'new songs (ingest_songs) queue missing setlists');

select ok(not has_function_privilege('anon', 'public.cast_vote(uuid, boolean)', 'execute'),
          'anon cannot vote');
select ok(has_function_privilege('authenticated', 'public.cast_vote(uuid, boolean)', 'execute'),
          'signed-in users vote through cast_vote');
select ok(not has_function_privilege('anon', 'public.add_song(uuid, uuid)', 'execute'),
          'anon cannot add songs');
select ok(has_function_privilege('anon', 'public.create_setlist(uuid, boolean)', 'execute'),
          'anyone opening a show page may ask for its setlist');
select ok(has_function_privilege('anon', 'public.get_show_page(uuid)', 'execute'),
          'anon reads the show page');
select ok(has_function_privilege('anon', 'public.get_artist_page(uuid)', 'execute'),
          'anon reads the artist page');
select ok(not has_function_privilege('authenticated', 'private.votes_maintain_count()', 'execute'),
          'the count trigger function is not callable');
select ok(not has_table_privilege('authenticated', 'public.votes', 'insert'),
          'votes are written only through cast_vote');
select ok(not has_table_privilege('authenticated', 'private.vote_tallies', 'insert'),
          'clients cannot write vote tallies');
select ok(not has_function_privilege('service_role', 'private.flush_vote_broadcasts(interval)',
                                     'execute'),
          'only the backend''s own role (Supabase Cron, the local runner) flushes broadcasts');

select is(
  (select array_agg(p.proname::text order by p.proname) from pg_proc p
    where p.pronamespace in ('public'::regnamespace, 'private'::regnamespace) and p.prosecdef
      and p.proname in ('cast_vote', 'add_song', 'create_setlist', 'get_show_page',
                        'get_artist_page', 'votes_maintain_count')),
  array['add_song', 'cast_vote', 'create_setlist', 'votes_maintain_count'],
  'only the writing RPCs and the count trigger run with definer rights');

select policies_are('realtime', 'messages', array['anyone may receive setlist vote broadcasts']);
select is(
  (select array_agg(cmd::text) from pg_policies
    where schemaname = 'realtime' and tablename = 'messages'),
  array['SELECT'],
  'clients may receive setlist broadcasts but never send them');

-- The count follows inserts and deletes of votes.
insert into auth.users (id, aud, role, email)
values ('7a1c1d3e-0b7e-4d8f-9a51-3c2f6e8d9b01', 'authenticated', 'authenticated',
        'pgtap.voter@example.com');
with artist as (insert into public.artists (name) values ('Band of Horses') returning id),
venue as (insert into public.venues (name, city, country_code)
          values ('Ryman Auditorium', 'Nashville', 'US') returning id),
show as (insert into public.shows (artist_id, venue_id, local_date)
         select artist.id, venue.id, current_date + 30 from artist, venue returning id, artist_id),
song as (insert into public.songs (artist_id, title)
         select artist_id, 'The Funeral' from show returning id),
setlist as (insert into public.setlists (show_id, kind)
            select id, 'predicted' from show returning id)
insert into public.setlist_songs (id, setlist_id, song_id, position)
select '5e7d0c4b-2f1a-4e9b-8c3d-6a5b4c3d2e1f', setlist.id, song.id, 1 from setlist, song;
insert into public.votes (user_id, setlist_song_id)
values ('7a1c1d3e-0b7e-4d8f-9a51-3c2f6e8d9b01', '5e7d0c4b-2f1a-4e9b-8c3d-6a5b4c3d2e1f');
select is((select private.exact_vote_count(ss) from public.setlist_songs ss
            where ss.id = '5e7d0c4b-2f1a-4e9b-8c3d-6a5b4c3d2e1f'), 1, 'a vote counts');
delete from auth.users where id = '7a1c1d3e-0b7e-4d8f-9a51-3c2f6e8d9b01';
select is((select private.exact_vote_count(ss) from public.setlist_songs ss
            where ss.id = '5e7d0c4b-2f1a-4e9b-8c3d-6a5b4c3d2e1f'), 0,
          'a deleted account''s vote no longer counts');

select * from finish();
rollback;
