"""bunqueue's DLQ reasons as `GetDlqStats` names them: every one of bunq's lands on one of the reference's."""

from __future__ import annotations

from bunq import protocol as p
from bunq.routes.queue_ops import REASON_KEYS, REFERENCE_REASONS


def test_every_dlq_reason_has_a_reference_key() -> None:
    assert set(REASON_KEYS) == set(p.DlqReason)
    assert set(REASON_KEYS.values()) <= set(REFERENCE_REASONS)
