"""The dispatch table: one handler per command type (a test checks it covers the command union)."""

from __future__ import annotations

from typing import Any

from bunq import protocol as p
from shards.handlers import jobs, queues

HANDLERS: dict[type[p.Command], Any] = {
    p.AddJobs: jobs.add_jobs,
    p.PullJobs: jobs.pull_jobs,
    p.AckJobs: jobs.ack_jobs,
    p.FailJob: jobs.fail_job,
    p.GetJob: jobs.get_job,
    p.GetJobState: jobs.get_job_state,
    p.GetJobResult: jobs.get_job_result,
    p.CancelJob: jobs.cancel_job,
    p.GetCounts: queues.get_counts,
    p.GetDlq: queues.get_dlq,
    p.Ping: queues.ping,
}
