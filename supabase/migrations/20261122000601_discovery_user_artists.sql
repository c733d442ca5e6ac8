-- Discovery, continued: what the search_artists and sync_my_artists functions call.
--
--   public.artist_ids_by_external_id(sources, external_ids)  our artists behind source ids
--   public.replace_user_artists(user_id, top, followed)      a user's Spotify artists, atomically

-- Which of these (source, external id) pairs we know, and as which artist.
-- Pairs are matched position by position; unknown pairs are left out.
-- Public data (artist_external_ids is world-readable), invoker rights.
create or replace function public.artist_ids_by_external_id(sources text[], external_ids text[])
returns table (source text, external_id text, artist_id uuid)
language sql
stable
security invoker
set search_path = ''
as $$
  select x.source, x.external_id, x.artist_id
    from unnest(artist_ids_by_external_id.sources, artist_ids_by_external_id.external_ids)
           as q(source, external_id)
    join public.artist_external_ids x
      on x.source = q.source and x.external_id = q.external_id
$$;

revoke all on function public.artist_ids_by_external_id(text[], text[]) from public;
grant execute on function public.artist_ids_by_external_id(text[], text[])
  to anon, authenticated, service_role;

-- Replace a user's Spotify artists with the lists just read from Spotify, in
-- the caller's transaction: top artists ranked by their position (1 = most
-- listened; an artist listed twice keeps its best rank), followed artists
-- unranked. Rows no longer listed go, listed ones are upserted, and the
-- user's 'user_artists' freshness is recorded (TTL: public.sync_ttl, 1 hour).
-- Concurrent replacements for one user run one after the other.
-- Backend only: the user id must come from a verified token, never a client.
-- Answers {"top": n, "followed": n, "removed": n}.
create or replace function public.replace_user_artists(
  p_user_id uuid,
  top_artist_ids uuid[],
  followed_artist_ids uuid[]
)
returns jsonb
language plpgsql
volatile
security invoker
set search_path = ''
as $$
declare
  removed integer;
  n_artist uuid[];
  n_relation text[];
  n_rank integer[];
  failed_constraint text;
  top_count integer;
  followed_count integer;
begin
  if p_user_id is null then
    raise exception 'user id is required' using errcode = '22004';
  end if;
  perform pg_catalog.pg_advisory_xact_lock(
    pg_catalog.hashtextextended('user_artists:' || p_user_id::text, 0));

  -- The new rows, one per (artist, relation).
  select coalesce(array_agg(n.artist_id order by n.relation, n.rank, n.artist_id), '{}'),
         coalesce(array_agg(n.relation order by n.relation, n.rank, n.artist_id), '{}'),
         coalesce(array_agg(n.rank order by n.relation, n.rank, n.artist_id), '{}')
    into n_artist, n_relation, n_rank
    from (select t.artist_id, 'top' as relation, min(t.ord)::integer as rank
            from unnest(coalesce(top_artist_ids, '{}')) with ordinality as t(artist_id, ord)
           where t.artist_id is not null
           group by t.artist_id
          union all
          select distinct f.artist_id, 'followed', null::integer
            from unnest(coalesce(followed_artist_ids, '{}')) as f(artist_id)
           where f.artist_id is not null) n;

  delete from public.user_artists ua
   where ua.user_id = p_user_id
     and not exists (select 1 from unnest(n_artist, n_relation) as n(artist_id, relation)
                      where n.artist_id = ua.artist_id and n.relation = ua.relation);
  get diagnostics removed = row_count;

  begin
    insert into public.user_artists as ua (user_id, artist_id, relation, rank, synced_at)
    select p_user_id, n.artist_id, n.relation, n.rank, now()
      from unnest(n_artist, n_relation, n_rank) as n(artist_id, relation, rank)
    on conflict (user_id, artist_id, relation) do update
      set rank = excluded.rank, synced_at = excluded.synced_at;
  exception when foreign_key_violation then
    get stacked diagnostics failed_constraint = constraint_name;
    if failed_constraint = 'user_artists_user_id_fkey' then
      -- The token was valid, but the account has been deleted since.
      raise exception 'this account no longer exists'
        using errcode = 'PT401', hint = 'unknown_user';
    end if;
    raise;
  end;

  top_count := cardinality(array_remove(n_relation, 'followed'));
  followed_count := cardinality(n_relation) - top_count;

  perform public.sync_record_success('user_artists', p_user_id);
  return jsonb_build_object('top', top_count, 'followed', followed_count, 'removed', removed);
end;
$$;

revoke all on function public.replace_user_artists(uuid, uuid[], uuid[])
  from public, anon, authenticated;
grant execute on function public.replace_user_artists(uuid, uuid[], uuid[]) to service_role;
