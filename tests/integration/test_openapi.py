"""The OpenAPI document against real bunq processes: it validates, it names every route the app serves and
nothing else, its auth matches what the edge does, the docs page is served from the package, and a bounded
schemathesis run finds no server error and no reply outside its documented statuses and schemas."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from starlette.routing import Mount, Route, WebSocketRoute

from bunq.app import create_app
from bunq.settings import Settings
from tests.support.processes import BunqServer

pytestmark = pytest.mark.integration

TOKEN = "openapi-secret"
# Streams that never end: the SSE routes answer 200 and then keep the connection open; the WebSocket routes
# only speak after an upgrade (schemathesis sends plain HTTP). Both are described, not fuzzed.
STREAMS = re.compile(r"^/(events|ws)(/|$)")
_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BunqServer]:
    """bunq of its own (the fuzzing pauses, drains and obliterates queues: no other test's server)."""
    srv = BunqServer(tmp_path_factory.mktemp("openapi") / "data", shards=2)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def document(server: BunqServer) -> Any:
    reply = httpx.get(server.url + "/openapi.json", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json")
    return reply.json()


def test_the_document_is_valid_openapi_3_1(document: Any) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)


def _served() -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every route the app serves, HEAD aside."""
    served = set()
    app = create_app(Settings(), client=SimpleNamespace())  # type: ignore[arg-type]  # never started: no link
    for route in app.routes:
        if isinstance(route, Route):
            methods, path = (route.methods or set()) - {"HEAD"}, route.path
        elif isinstance(route, WebSocketRoute):
            methods, path = {"GET"}, route.path
        else:
            assert isinstance(route, Mount), route
            methods, path = {"GET"}, route.path + "/{path}"
        served |= {(m, _PARAM.sub(r"{\1}", path)) for m in methods}
    return served


def test_every_route_served_is_documented_and_nothing_else(document: Any) -> None:
    documented = {(m.upper(), path) for path, item in document["paths"].items() for m in item}
    served = _served()
    assert documented == served
    from bunq.routes.table import OPERATIONS

    table = {(op.method, _PARAM.sub(r"{\1}", op.path)) for op in OPERATIONS}
    assert table <= documented
    assert {("GET", "/queues/summary"), ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/ws")} <= documented


def test_operations_carry_their_parameters_bodies_and_errors(document: Any) -> None:
    push = document["paths"]["/queues/{queue}/jobs"]["post"]
    assert [p["name"] for p in push["parameters"]] == ["queue"]
    assert push["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/NewJob"}
    assert {"200", "400", "401", "413", "429", "503"} <= set(push["responses"])
    new_job = document["components"]["schemas"]["NewJob"]
    assert new_job["required"] == ["data"]
    assert new_job["properties"]["priority"] == {
        "type": "integer",
        "minimum": -1_000_000,
        "maximum": 1_000_000,
        "default": 0,
    }
    assert new_job["properties"]["maxAttempts"]["default"] == 3
    pull = document["paths"]["/queues/{queue}/jobs"]["get"]
    timeout = next(p for p in pull["parameters"] if p["name"] == "timeout")
    assert timeout == {
        "name": "timeout",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 0, "maximum": 60_000, "default": 0},
    }
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["ok", "error"]
    assert push["responses"]["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    state = document["paths"]["/jobs/{id}/state"]["get"]
    assert "404" in state["responses"] and "requestBody" not in state
    sse = document["paths"]["/events"]["get"]
    assert "text/event-stream" in sse["responses"]["200"]["content"]
    ws = document["paths"]["/ws"]["get"]
    assert "101" in ws["responses"] and "Subscribe" in ws["description"] and "`PUSH`" in ws["description"]
    assert document["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}


def _example(path: str) -> str:
    return _PARAM.sub(lambda m: "openapi-q" if m.group(1) == "queue" else "x", path)


def test_documented_auth_is_what_the_server_does(tmp_path: Path) -> None:
    """With `AUTH_TOKENS`, a path the document marks `security: []` answers without a token; every other
    answers 401 (its document itself, and the docs page, open)."""
    srv = BunqServer(tmp_path / "data", shards=1, AUTH_TOKENS=TOKEN).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            document = client.get("/openapi.json").json()
            assert client.get("/docs").status_code == 200
            for path, item in document["paths"].items():
                for method, operation in item.items():
                    if STREAMS.match(path):
                        continue
                    status = client.request(method.upper(), _example(path)).status_code
                    if operation.get("security") == []:
                        assert status != 401, (method, path)
                    else:
                        assert status == 401, (method, path, status)
                        assert "401" in operation["responses"]
    finally:
        srv.stop()


def test_prometheus_open_or_not_as_configured() -> None:
    from bunq.openapi import document as make
    from bunq.routes.table import routes

    open_ = make(routes(), Settings())["paths"]["/prometheus"]["get"]
    closed = make(routes(), Settings(require_auth_for_metrics=True))["paths"]["/prometheus"]["get"]
    assert open_["security"] == [] and "security" not in closed and "401" in closed["responses"]


def test_docs_page_is_served_from_the_package(server: BunqServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        page = client.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assets = re.findall(r'(?:src|href)="(/docs/[^"]+)"', page.text)
        assert set(assets) == {"/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js", "/docs/docs.js"}
        assert "http" not in "".join(re.findall(r'(?:src|href)="([^"]+)"', page.text))  # nothing from a CDN
        for asset in assets:
            reply = client.get(asset)
            assert reply.status_code == 200 and len(reply.content) > 100, asset
        assert "SwaggerUIBundle" in client.get("/docs/swagger-ui-bundle.js").text
        assert "/openapi.json" in client.get("/docs/docs.js").text


# ---- schemathesis --------------------------------------------------------------------------------------


def _bounded(document: Any) -> Any:
    """The document as fuzzed: long polls and waits capped at 50 ms (they are served as documented; a
    60 s poll per example would only make the run long), and no streams."""
    doc = copy.deepcopy(document)
    doc["paths"] = {path: item for path, item in doc["paths"].items() if not STREAMS.match(path)}
    pull = doc["paths"]["/queues/{queue}/jobs"]["get"]
    for param in pull["parameters"]:
        if param["name"] == "timeout":
            param["schema"]["maximum"] = 50
    schemas = doc["components"]["schemas"]
    schemas["PullBatch"]["properties"]["timeout"]["maximum"] = 50
    schemas["Wait"]["properties"]["timeout"] = {"type": "integer", "minimum": 0, "maximum": 50}
    schemas["Wait"]["required"] = ["timeout"]  # its default is 30 s
    return doc


CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


def test_schemathesis_finds_no_server_error_and_no_reply_off_its_schema(server: BunqServer, document: Any) -> None:
    """Every documented operation, a few generated requests each (schemathesis' pytest plugin does not run
    on this pytest, so its operations are driven here with hypothesis); every failure is reported at once."""
    schema = schemathesis.openapi.from_dict(_bounded(document))
    schema.config.update(base_url=server.url)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 70
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def run(case: Any) -> None:
            case.call_and_validate(checks=CHECKS, timeout=10)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # checks' failures, with the requests that caused them
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
