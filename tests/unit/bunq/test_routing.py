"""Job ids carry their slot; queues hash to stable slots."""

from __future__ import annotations

from bunq.routing import new_job_id, shard_of_slot, shards_for_id, slot_of, slot_of_id


def test_generated_ids_are_uuid7_and_carry_their_slot() -> None:
    for slot in (0, 1, 255, 4095):
        job_id = new_job_id(slot)
        assert len(job_id) == 36 and job_id[14] == "7" and job_id[19] in "89ab"
        assert slot_of_id(job_id) == slot


def test_client_ids_have_no_slot() -> None:
    assert slot_of_id("order-12345") is None
    assert slot_of_id("x" * 36) is None


def test_queue_slots_are_stable_and_spread() -> None:
    assert slot_of("emails", 256) == slot_of("emails", 256)
    shards = {shard_of_slot(slot_of(f"q{i}", 256), 4) for i in range(100)}
    assert shards == {0, 1, 2, 3}


def test_a_bunq_id_lives_on_its_slots_shard_a_clients_id_anywhere() -> None:
    assert shards_for_id(new_job_id(5), 256, 4) == [shard_of_slot(5, 4)]
    assert shards_for_id("order-12345", 256, 4) == [0, 1, 2, 3]
    assert shards_for_id(new_job_id(300), 256, 4) == [0, 1, 2, 3]  # a slot this cluster does not have
