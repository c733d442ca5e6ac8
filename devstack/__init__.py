"""Local development stack: a private PostgreSQL cluster with the Supabase
platform pieces, the migrations, the functions server and the worker."""
