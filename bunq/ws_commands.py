"""WebSocket commands (`{cmd, ..., reqId}`, named as in ws-commands.md) mapped onto the HTTP handlers.

Each command runs the very `Call` handler of its HTTP route, so both protocols validate and answer
alike; the WebSocket answer is the HTTP body plus the command's `reqId`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import msgspec

from bunq.client import Shards
from bunq.errors import BadRequest
from bunq.http import Call, Handler, Result
from bunq.routes import dashboard, flows, groups, jobs, monitoring, operations, queue_ops, queues, registries

_json = msgspec.json.Encoder()
RESERVED = ("cmd", "reqId")


@dataclass(frozen=True)
class Spec:
    handler: Handler
    params: tuple[tuple[str, str], ...] = ()  # (path parameter, message field)
    query: tuple[str, ...] = ()  # message fields passed as the query string
    body: bool = True  # the rest of the message is the JSON body


def _queue(handler: Handler, *, query: tuple[str, ...] = (), body: bool = True) -> Spec:
    return Spec(handler, (("queue", "queue"),), query, body)


def _job(handler: Handler, *, body: bool = True) -> Spec:
    return Spec(handler, (("id", "id"),), (), body)


COMMANDS: dict[str, Spec] = {
    # core
    "PUSH": _queue(jobs.add_job),
    "PUSHB": _queue(jobs.add_jobs_bulk),
    "PULL": _queue(jobs.pull_job, query=("timeout", "owner", "lockTtl"), body=False),
    "PULLB": _queue(jobs.pull_jobs),
    "ACK": _job(jobs.ack_job),
    "ACKB": Spec(jobs.ack_jobs_batch),
    "FAIL": _job(jobs.fail_job),
    # queries
    "GetJob": _job(jobs.get_job, body=False),
    "GetState": _job(jobs.get_job_state, body=False),
    "GetResult": _job(jobs.get_job_result, body=False),
    "GetProgress": _job(operations.get_progress, body=False),
    "GetChildrenValues": _job(operations.get_children, body=False),
    "GetJobs": _queue(queues.list_jobs, query=("state", "limit", "offset", "asc"), body=False),
    "GetJobCounts": _queue(queues.get_counts, body=False),
    "GetCountsPerPriority": _queue(queues.get_priority_counts, body=False),
    "Count": _queue(queues.get_count, body=False),
    "GetJobByCustomId": Spec(jobs.get_job_by_custom_id, (("custom_id", "customId"),), (), False),
    # management
    "Cancel": _job(jobs.cancel_job, body=False),
    "Promote": _job(operations.promote_job),
    "MoveToWait": _job(operations.move_to_wait),
    "Discard": _job(operations.discard_job),
    "WaitJob": _job(operations.wait_job),
    "Progress": _job(operations.update_progress),
    "Update": _job(operations.update_data),
    "ChangePriority": _job(operations.change_priority),
    "MoveToDelayed": _job(operations.move_to_delayed),
    "ChangeDelay": _job(operations.change_delay),
    "ExtendLock": _job(operations.extend_lock),
    "ExtendLocks": Spec(operations.extend_locks),
    "JobHeartbeat": _job(operations.heartbeat),
    "JobHeartbeatB": Spec(operations.heartbeat_batch),
    "PromoteJobs": _queue(queues.promote_jobs),
    "AddLog": _job(operations.add_log),
    # flows (WebSocket and TCP only, as the reference serves them)
    "PUSHF": Spec(flows.push_flow),
    "UpdateParent": Spec(flows.update_parent),
    "GetFailedChildrenValues": _job(flows.get_failed_children_values, body=False),
    "GetIgnoredChildrenFailures": _job(flows.get_ignored_children_failures, body=False),
    "RemoveChildDependency": _job(flows.remove_child_dependency, body=False),
    "RemoveUnprocessedChildren": _job(flows.remove_unprocessed_children, body=False),
    "MoveToWaitingChildren": _job(flows.move_to_waiting_children),
    "GetLogs": _job(operations.get_logs, body=False),
    "ClearLogs": _job(operations.clear_logs, body=False),
    # queue control
    "Pause": _queue(queues.pause_queue),
    "Resume": _queue(queues.resume_queue),
    "IsPaused": _queue(queues.is_paused, body=False),
    "Drain": _queue(queues.drain_queue),
    "Obliterate": _queue(queues.obliterate_queue),
    "ListQueues": Spec(queues.list_queues, body=False),
    "Clean": _queue(queues.clean_queue),
    # dead-letter queue
    "Dlq": _queue(queues.get_dlq, query=("count", "limit", "offset"), body=False),
    "RetryDlq": _queue(queues.retry_dlq),
    "PurgeDlq": _queue(queues.purge_dlq),
    "RetryCompleted": _queue(queues.retry_completed),
    "SetDlqConfig": _queue(queues.set_dlq_config),
    "GetDlqConfig": _queue(queues.get_dlq_config, body=False),
    "GetDlqStats": _queue(queue_ops.get_dlq_stats, body=False),
    "RemoveDlqJob": _queue(queue_ops.remove_dlq_job),
    # limits and configuration
    "RateLimit": _queue(queues.set_rate_limit),
    "RateLimitClear": _queue(queues.clear_rate_limit, body=False),
    "SetConcurrency": _queue(queues.set_concurrency),
    "ClearConcurrency": _queue(queues.clear_concurrency, body=False),
    "SetStallConfig": _queue(queues.set_stall_config),
    "GetStallConfig": _queue(queues.get_stall_config, body=False),
    "GetQueueLimits": _queue(queue_ops.get_queue_limits),
    "GetDeduplicationJobId": _queue(queue_ops.get_deduplication_job_id),
    "RemoveDeduplicationKey": _queue(queue_ops.remove_deduplication_key),
    "RemoveJobDeduplicationKey": _job(queue_ops.remove_job_deduplication_key, body=False),
    # groups
    "GetGroupJobsCount": _queue(groups.get_group_jobs_count),
    "GetGroupsJobsCount": _queue(groups.get_groups_jobs_count, body=False),
    "GetGroupActiveCount": _queue(groups.get_group_active_count),
    "SetGroupRateLimit": _queue(groups.set_group_rate_limit),
    "GetGroupRateLimit": _queue(groups.get_group_rate_limit),
    "RemoveGroupRateLimit": _queue(groups.remove_group_rate_limit),
    "GetGroupRateLimitTtl": _queue(groups.get_group_rate_limit_ttl),
    "SetGroupConcurrency": _queue(groups.set_group_concurrency),
    "GetGroupConcurrency": _queue(groups.get_group_concurrency),
    "RemoveGroupConcurrency": _queue(groups.remove_group_concurrency),
    "PauseGroup": _queue(groups.pause_group),
    "ResumeGroup": _queue(groups.resume_group),
    "IsGroupPaused": _queue(groups.is_group_paused),
    "RateLimitGroup": _queue(groups.rate_limit_group),
    # crons
    "Cron": Spec(registries.add_cron),
    "CronGet": Spec(registries.get_cron, (("name", "name"),), (), False),
    "CronDelete": Spec(registries.delete_cron, (("name", "name"),), (), False),
    "CronList": Spec(registries.list_crons, body=False),
    # webhooks
    "AddWebhook": Spec(registries.add_webhook),
    "RemoveWebhook": Spec(registries.delete_webhook, (("id", "webhookId"),), (), False),
    "ListWebhooks": Spec(registries.list_webhooks, body=False),
    "SetWebhookEnabled": Spec(registries.set_webhook_enabled, (("id", "id"),)),
    # workers
    "RegisterWorker": Spec(registries.register_worker),
    "UnregisterWorker": Spec(registries.delete_worker, (("id", "workerId"),), (), False),
    "ListWorkers": Spec(registries.list_workers, body=False),
    "Heartbeat": Spec(registries.worker_heartbeat, (("id", "id"),)),
    # monitoring
    "Stats": Spec(monitoring.stats, body=False),
    "Metrics": Spec(monitoring.metrics_json, body=False),
    "Prometheus": Spec(monitoring.prometheus_json, body=False),
    "StorageStatus": Spec(monitoring.storage_status, body=False),
    "CompactMemory": Spec(monitoring.collect, body=False),
    "TrimEvents": _queue(queue_ops.trim_events),
    # dashboard
    "DashboardOverview": Spec(dashboard.dashboard_overview, body=False),
    "DashboardQueues": Spec(dashboard.dashboard_queues, body=False),
    "DashboardQueue": _queue(dashboard.dashboard_queue),
}


def _param(message: dict[str, Any], field: str) -> str:
    value = message.get(field)
    if field == "queue":
        if type(value) is int:
            return str(value)  # as the reference takes it
        if not value:
            raise BadRequest("Queue name is required")  # the HTTP route's words for an empty name
        if not isinstance(value, str):
            raise BadRequest("Queue name must be a string")
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{field} is required")
    return value


def _query_value(value: Any) -> Any:
    """A list (`GetJobs` `state: ["waiting", "delayed"]`) in the query string's form for it, `a,b`."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ",".join(value)
    return value


# Handlers that serve only commands: bunqueue's protocol has these, the spec gives them no HTTP route (or one
# that means something else), and they answer as the reference does (every other command runs its HTTP
# route's handler).
PROTOCOL_ONLY: frozenset[Handler] = frozenset(
    {
        monitoring.prometheus_json,
        monitoring.storage_status,
        operations.move_to_wait,  # the reference's MoveToWait; HTTP's move-to-wait is the spec's promote
        queue_ops.get_queue_limits,
        queue_ops.get_dlq_stats,
        queue_ops.remove_dlq_job,
        queue_ops.trim_events,
        queue_ops.get_deduplication_job_id,
        queue_ops.remove_deduplication_key,
        queue_ops.remove_job_deduplication_key,
        dashboard.dashboard_overview,
        dashboard.dashboard_queues,
        dashboard.dashboard_queue,
        *flows.WS_ONLY,
        *groups.WS_ONLY,
    }
)


def build_call(client: Shards, spec: Spec, message: dict[str, Any]) -> Call:
    params = {param: _param(message, field) for param, field in spec.params}
    query = {k: _query_value(message[k]) for k in spec.query if message.get(k) is not None}
    used = {field for _, field in spec.params} | set(spec.query) | set(RESERVED)
    # a command with a body always sends one (`{}` at least): the handler then names what is missing
    # ("data is required") instead of finding no JSON at all
    body = _json.encode({k: v for k, v in message.items() if k not in used}) if spec.body else b""
    return Call(client, params, urlencode(query).encode(), body)


async def run(client: Shards, name: str, message: dict[str, Any]) -> Result:
    spec = COMMANDS[name]
    return await spec.handler(build_call(client, spec, message))
