"""Bearer tokens: constant-time comparison against every configured token (no early exit)."""

from __future__ import annotations

import hmac


def token_ok(candidate: str | None, tokens: tuple[str, ...]) -> bool:
    """True when `candidate` equals one of `tokens`. Every token is compared, each in constant time,
    so neither the position of a match nor a token's length or prefix shows in the timing."""
    if not tokens:
        return True
    given = (candidate or "").encode()
    found = False
    for token in tokens:
        found |= hmac.compare_digest(given, token.encode())
    return found and candidate is not None


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (None for any other scheme)."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
