-- Production only (deploy step): a Database Webhook on new shows that posts
-- Supabase's webhook payload ({type, table, schema, record, old_record}) to
-- the create_setlist function through pg_net, so a new show's setlist is drawn
-- at once instead of when the queue reaches its job (shows_queue_setlist still
-- queues it: the webhook is the fast path, the job the guarantee; create_setlist
-- is idempotent). Unlike a Dashboard webhook, whose headers are stored in the
-- trigger's arguments, the internal secret is read from Vault at each insert:
-- the trigger holds only the URL. Requires pg_net and Vault; re-running it
-- replaces the trigger.
create or replace function public.post_show_inserted_webhook()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.status in ('cancelled', 'removed') then
    return null;
  end if;
  perform net.http_post(
    url := tg_argv[0],
    headers := jsonb_build_object(
      'Content-Type', 'application/json',
      'X-Internal-Secret',
      (select s.decrypted_secret from vault.decrypted_secrets s where s.name = tg_argv[1])),
    body := jsonb_build_object(
      'type', 'INSERT', 'table', tg_table_name, 'schema', tg_table_schema,
      'record', to_jsonb(new), 'old_record', null),
    timeout_milliseconds := 5000);
  return null;
end;
$$;

-- What both webhooks need before they are registered: pg_net, Vault and an
-- http(s) URL.
create or replace function public.check_webhook_target(function_url text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if to_regnamespace('net') is null then
    raise exception 'pg_net is not installed: enable it (create extension pg_net) first'
      using errcode = '0A000';
  end if;
  if to_regnamespace('vault') is null then
    raise exception 'Vault is not available: the internal secret must live in vault.secrets'
      using errcode = '0A000';
  end if;
  if function_url is null or function_url !~ '^https?://[^[:space:]'']+$' then
    raise exception 'function_url must be an http(s) URL' using errcode = '22023';
  end if;
end;
$$;

create or replace function public.schedule_run_jobs_webhook(
  function_url text,
  secret_name text default 'internal_secret',
  schedule text default '* * * * *',
  budget_seconds integer default 50
) returns bigint
language plpgsql
set search_path = ''
as $$
begin
  perform public.check_webhook_target(function_url);
  if budget_seconds is null or budget_seconds not between 1 and 540 then
    raise exception 'budget_seconds must be between 1 and 540' using errcode = '22023';
  end if;
  return cron.schedule(
    'sync-run-jobs',
    schedule,
    format(
      $cmd$select net.http_post(
  url := %L,
  headers := jsonb_build_object(
    'Content-Type', 'application/json',
    'X-Internal-Secret', (select decrypted_secret from vault.decrypted_secrets where name = %L)),
  body := jsonb_build_object('budget_seconds', %s),
  timeout_milliseconds := %s)$cmd$,
      function_url, secret_name, budget_seconds, (budget_seconds + 10) * 1000));
end;
$$;

create or replace function public.schedule_new_show_webhook(
  function_url text,
  secret_name text default 'internal_secret'
) returns void
language plpgsql
set search_path = ''
as $$
begin
  perform public.check_webhook_target(function_url);
  if secret_name is null or secret_name !~ '^[a-z_][a-z0-9_]*$' then
    raise exception 'secret_name must be a plain identifier' using errcode = '22023';
  end if;
  execute format(
    'create or replace trigger shows_create_setlist_webhook after insert on public.shows'
    ' for each row execute function public.post_show_inserted_webhook(%L, %L)',
    function_url, secret_name);
end;
$$;

create or replace function public.unschedule_new_show_webhook()
returns void
language sql
set search_path = ''
as $$
  drop trigger if exists shows_create_setlist_webhook on public.shows
$$;

revoke execute on function public.check_webhook_target(text)
  from public, anon, authenticated, service_role;
revoke execute on function public.schedule_run_jobs_webhook(text, text, text, integer)
  from public, anon, authenticated, service_role;
revoke execute on function public.post_show_inserted_webhook()
  from public, anon, authenticated, service_role;
revoke execute on function public.schedule_new_show_webhook(text, text)
  from public, anon, authenticated, service_role;
revoke execute on function public.unschedule_new_show_webhook()
  from public, anon, authenticated, service_role;
