"""The route table is the front's single source of routes: Starlette, the fast path and the WebSocket
commands all take their entries from it."""

from __future__ import annotations

from starlette.routing import Route

from bunq import ws_commands
from bunq.fastpath import Matcher
from bunq.routes import monitoring
from bunq.routes.table import HOT, OPERATIONS, routes


def test_the_hot_entries_are_the_job_path() -> None:
    hot = {(op.method, op.path) for op in HOT}
    assert hot == {
        ("POST", "/queues/{queue:queue}/jobs"),
        ("GET", "/queues/{queue:queue}/jobs"),
        ("POST", "/queues/{queue:queue}/jobs/bulk"),
        ("POST", "/queues/{queue:queue}/jobs/pull-batch"),
        ("POST", "/jobs/{id}/ack"),
        ("POST", "/jobs/ack-batch"),
    }


def test_the_fast_matcher_finds_each_hot_entry_with_its_parameters() -> None:
    matcher = Matcher(HOT)
    by_handler = {op.handler.__name__: op for op in HOT}
    cases = {
        ("POST", "/queues/emails/jobs"): ("add_job", {"queue": "emails"}),
        ("GET", "/queues/emails/jobs"): ("pull_job", {"queue": "emails"}),
        ("POST", "/queues/emails/jobs/bulk"): ("add_jobs_bulk", {"queue": "emails"}),
        ("POST", "/queues/emails/jobs/pull-batch"): ("pull_jobs", {"queue": "emails"}),
        ("POST", "/jobs/j-1/ack"): ("ack_job", {"id": "j-1"}),
        ("POST", "/jobs/ack-batch"): ("ack_jobs_batch", {}),
    }
    for (method, path), (name, params) in cases.items():
        assert matcher.match(method, path) == (by_handler[name], params), path


def test_the_fast_matcher_leaves_everything_else_to_starlette() -> None:
    matcher = Matcher(HOT)
    for method, path in [
        ("POST", "/queues//jobs"),  # an empty queue name: Starlette's handler refuses it with 400
        ("GET", "/queues//jobs"),
        ("POST", "/jobs//ack"),
        ("HEAD", "/queues/q/jobs"),
        ("PUT", "/queues/q/jobs"),
        ("GET", "/queues/q/jobs/list"),
        ("POST", "/jobs/j-1/fail"),
        ("POST", "/queues/q/jobs/"),
        ("GET", "/jobs/ack-batch"),
    ]:
        assert matcher.match(method, path) is None, (method, path)


def test_starlette_serves_every_entry_of_the_table_in_its_order() -> None:
    served = [(m, r.path) for r in routes() if isinstance(r, Route) for m in sorted(r.methods or ()) if m != "HEAD"]
    table = [(op.method, op.path) for op in OPERATIONS]
    assert [entry for entry in served if entry in table] == table
    assert len(set(table)) == len(table)


def test_every_websocket_command_runs_a_handler_of_the_table() -> None:
    """...or one declared protocol-only (the Prometheus text as JSON, bunqueue's inspection, dashboard, flow and group
    commands), which no route serves."""
    routed = {op.handler for op in OPERATIONS}
    assert {spec.handler for spec in ws_commands.COMMANDS.values()} <= routed | ws_commands.PROTOCOL_ONLY
    assert monitoring.prometheus_json in ws_commands.PROTOCOL_ONLY
    assert not routed & ws_commands.PROTOCOL_ONLY
