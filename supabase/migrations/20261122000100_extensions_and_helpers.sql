-- Extensions and the small helpers every later migration uses.

create extension if not exists pg_trgm with schema extensions;
create extension if not exists unaccent with schema extensions;
create extension if not exists pg_cron with schema pg_catalog;

-- Supabase Queues is the pgmq extension; the local platform installs the same
-- SQL without the extension wrapper, so only create it where it is missing.
do $$
begin
  if to_regnamespace('pgmq') is null then
    create extension pgmq;
  end if;
end
$$;

-- The key two spellings of one name share: accents folded, case and
-- punctuation dropped, "&" read as "and". Names made only of punctuation
-- ("!!!") keep their trimmed lower-case form so they still have a key.
-- unaccent is stable only because its dictionary could change; naming the
-- dictionary explicitly makes this safe to declare immutable for indexes.
create or replace function public.name_key(value text)
returns text
language sql
immutable
parallel safe
set search_path = ''
as $$
  select coalesce(
    nullif(btrim(regexp_replace(
      replace(lower(extensions.unaccent('extensions.unaccent'::regdictionary, value)), '&', ' and '),
      '[^[:alnum:]]+', ' ', 'g')), ''),
    lower(btrim(value)))
$$;

revoke all on function public.name_key(text) from public;
grant execute on function public.name_key(text) to anon, authenticated, service_role;

create or replace function public.touch_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end;
$$;

revoke all on function public.touch_updated_at() from public, anon, authenticated, service_role;
