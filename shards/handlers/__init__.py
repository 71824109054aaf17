"""The dispatch table: one handler per command type (a test checks it covers the command union)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bunq import protocol as p
from shards.handlers import groups, jobs, operations, queues

if TYPE_CHECKING:
    from shards.engine import Handler

HANDLERS: dict[type[p.Command], Handler] = {
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
    p.UpdateProgress: operations.update_progress,
    p.GetProgress: operations.get_progress,
    p.UpdateData: operations.update_data,
    p.ChangePriority: operations.change_priority,
    p.PromoteJob: operations.promote_job,
    p.MoveToDelayed: operations.move_to_delayed,
    p.ChangeDelay: operations.change_delay,
    p.DiscardJob: operations.discard_job,
    p.WaitJob: operations.wait_job,
    p.GetChildren: operations.get_children,
    p.Heartbeat: operations.heartbeat,
    p.AddLog: operations.add_log,
    p.GetLogs: operations.get_logs,
    p.ClearLogs: operations.clear_logs,
    p.WatchJob: operations.watch_job,
    p.ResolveDependency: operations.resolve_dependency,
    p.ListQueues: queues.list_queues,
    p.ListJobs: queues.list_jobs,
    p.GetPriorityCounts: queues.get_priority_counts,
    p.GetQueueConfig: queues.get_queue_config,
    p.PauseQueue: queues.pause_queue,
    p.ResumeQueue: queues.resume_queue,
    p.DrainQueue: queues.drain_queue,
    p.ObliterateQueue: queues.obliterate_queue,
    p.CleanQueue: queues.clean_queue,
    p.PromoteJobs: queues.promote_jobs,
    p.RetryCompleted: queues.retry_completed,
    p.RetryDlq: queues.retry_dlq,
    p.PurgeDlq: queues.purge_dlq,
    p.SetRateLimit: queues.set_rate_limit,
    p.SetConcurrency: queues.set_concurrency,
    p.SetStallConfig: queues.set_stall_config,
    p.SetDlqConfig: queues.set_dlq_config,
    p.GetStats: queues.get_stats,
    p.ReleaseJobs: jobs.release_jobs,
    p.Collect: queues.collect,
    p.GetHeapStats: queues.get_heap_stats,
    p.GetGroup: groups.get_group,
    p.CountGroupedJobs: groups.count_grouped_jobs,
    p.PauseGroup: groups.pause_group,
    p.ResumeGroup: groups.resume_group,
    p.SetGroupConcurrency: groups.set_group_concurrency,
    p.SetGroupRateLimit: groups.set_group_rate_limit,
    p.RateLimitGroup: groups.rate_limit_group,
}
