"""Mint access tokens locally, shaped exactly like the ones Supabase Auth issues.

For the dev stack (printing a demo user's token) and tests. HS256 with the
legacy JWT secret, which ``shared.auth`` accepts when ``SUPABASE_JWT_SECRET``
is set; never point this at a production secret.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt


def mint_local_token(
    user_id: str,
    *,
    email: str | None = None,
    expires_in: int = 3600,
    secret: str,
    issuer: str,
) -> str:
    """An HS256 access token for ``user_id`` with Supabase's password sign-in claim set."""
    uuid.UUID(user_id)  # a non-uuid ``sub`` would only fail later, at verification
    issued_at = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": user_id,
        "aud": "authenticated",
        "exp": issued_at + expires_in,
        "iat": issued_at,
        "email": email or "",
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": issued_at}],
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
    }
    return jwt.encode(claims, secret, algorithm="HS256")
