-- public.name_key without `set search_path`: same key, a third cheaper per call.
-- A function with a SET clause is called through the configuration-setting
-- path (a GUC nest level set up and torn down per call); name_key runs for
-- every artist and two names of every venue an ingest reads, plus their
-- generated columns, and that path was a third of its cost (bench_ingest: an
-- unchanged batch of 500 venues spent 7.5 of its 19.5 ms of CPU in name_key).
-- Every name in the body is schema-qualified, so no search_path can change
-- what it calls; it is neither SECURITY DEFINER nor granted anything new.
create or replace function public.name_key(value text)
returns text
language sql
immutable
parallel safe
as $$
  select coalesce(
    nullif(pg_catalog.btrim(pg_catalog.regexp_replace(
      pg_catalog.replace(
        pg_catalog.lower(extensions.unaccent('extensions.unaccent'::regdictionary, value)),
        '&', ' and '),
      '[^[:alnum:]]+', ' ', 'g')), ''),
    pg_catalog.lower(pg_catalog.btrim(value)))
$$;

alter function public.name_key(text) reset all;

revoke all on function public.name_key(text) from public;
grant execute on function public.name_key(text) to anon, authenticated, service_role;
