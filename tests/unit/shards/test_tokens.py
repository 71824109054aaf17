"""Lease tokens: unguessable (128 random bits from os.urandom), shaped as version-4 UUIDs as before."""

from __future__ import annotations

import uuid

from shards.leases import Tokens


def test_tokens_are_distinct_version_4_uuids_across_pool_refills() -> None:
    tokens = Tokens()
    drawn = [tokens.next() for _ in range(3 * Tokens.POOL // 16 + 7)]  # three refills and a bit
    assert len(set(drawn)) == len(drawn)
    for token in drawn:
        parsed = uuid.UUID(token)
        assert str(parsed) == token
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_fresh_pools_draw_different_tokens() -> None:
    """Each shard process has its own pool: nothing is derived from a seed two pools could share."""
    assert len({Tokens().next() for _ in range(50)}) == 50
