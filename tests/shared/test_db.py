"""shared.db: a transaction acting for a user is what PostgREST would run."""

from __future__ import annotations

import uuid

import pytest

from shared.db import transaction


def test_acting_as_a_user_sets_role_claims_and_timeout(database_url: str) -> None:
    user = uuid.uuid4()
    with transaction({"sub": str(user), "role": "authenticated"}) as conn:
        row = conn.execute(
            "select current_user as role, auth.uid() as uid,"
            " current_setting('statement_timeout') as timeout"
        ).fetchone()
    assert row == {"role": "authenticated", "uid": user, "timeout": "8s"}


def test_anon_gets_anons_timeout(database_url: str) -> None:
    with transaction({"role": "anon"}) as conn:
        row = conn.execute(
            "select current_user as role, current_setting('statement_timeout') as timeout"
        ).fetchone()
    assert row == {"role": "anon", "timeout": "3s"}


def test_nothing_leaks_to_the_next_transaction_on_the_pooled_connection(
    database_url: str,
) -> None:
    with transaction({"sub": str(uuid.uuid4()), "role": "authenticated"}):
        pass
    with transaction() as conn:
        row = conn.execute(
            "select current_user as role, auth.uid() as uid,"
            " current_setting('statement_timeout') as timeout"
        ).fetchone()
    assert row == {"role": "postgres", "uid": None, "timeout": "0"}


@pytest.mark.parametrize("role", ["service_role", "postgres", "supabase_admin"])
def test_roles_beyond_anon_and_authenticated_are_refused(database_url: str, role: str) -> None:
    with pytest.raises(ValueError, match="unsupported request role"), transaction({"role": role}):
        pass
