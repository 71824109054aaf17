"""HTTP helpers for the contract tests: each call checks the reply is a success before returning its part."""

from __future__ import annotations

from typing import Any


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["ok"] is True, body
    return body


def push(api: Any, queue: str, **body: Any) -> str:
    body.setdefault("data", {"n": 1})
    return str(ok(api.post(f"/queues/{queue}/jobs", json=body))["id"])


def bulk(api: Any, queue: str, jobs: list[dict[str, Any]]) -> list[str]:
    ids: list[str] = ok(api.post(f"/queues/{queue}/jobs/bulk", json={"jobs": jobs}))["ids"]
    return ids


def pull(api: Any, queue: str, **params: Any) -> dict[str, Any] | None:
    job: dict[str, Any] | None = ok(api.get(f"/queues/{queue}/jobs", params=params))["job"]
    return job


def counts(api: Any, queue: str) -> dict[str, int]:
    result: dict[str, int] = ok(api.get(f"/queues/{queue}/counts"))["counts"]
    return result


def state(api: Any, job_id: str) -> str:
    return str(ok(api.get(f"/jobs/{job_id}/state"))["state"])
