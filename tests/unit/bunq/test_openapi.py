"""The OpenAPI generator over the route table, without a server: every table entry is documented, its body,
query and reply types become schemas, and operation ids are unique."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate

from bunq.openapi import document
from bunq.routes.table import OPERATIONS, routes
from bunq.settings import Settings


@pytest.fixture(scope="module")
def doc() -> Any:
    return document(routes(), Settings())


def test_every_table_entry_has_its_doc_and_is_in_the_document(doc: Any) -> None:
    for op in OPERATIONS:
        assert op.doc is not None and op.doc.summary, (op.method, op.path)
        path = op.path.replace("{queue:queue}", "{queue}")
        described = doc["paths"][path][op.method.lower()]
        assert described["summary"] == op.doc.summary
        if op.doc.body is not None:
            ref = described["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]
        assert ("413" in described["responses"]) == op.body, (op.method, op.path)


def test_the_document_validates_and_operation_ids_are_unique(doc: Any) -> None:
    validate(doc)
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values() if "operationId" in op]
    assert len(ids) == len(set(ids)) == len(OPERATIONS)


def test_query_parameters_come_from_their_struct_without_null(doc: Any) -> None:
    params = {p["name"]: p for p in doc["paths"]["/queues/{queue}/jobs/list"]["get"]["parameters"]}
    assert set(params) == {"queue", "state", "states", "limit", "offset", "asc"}
    assert params["asc"]["schema"] == {"type": "boolean"}
    assert params["state"]["schema"] == {
        "enum": ["active", "completed", "delayed", "failed", "waiting", "waiting-children"]
    }
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 1000}
    assert "ListJobsQuery" not in doc["components"]["schemas"]


def test_open_routes_skip_security_and_others_answer_401(doc: Any) -> None:
    for path in ("/health", "/healthz", "/live", "/ready", "/openapi.json", "/docs", "/prometheus"):
        assert doc["paths"][path]["get"]["security"] == [], path
    secured = doc["paths"]["/queues/{queue}/jobs"]["post"]
    assert "security" not in secured and "401" in secured["responses"]
    assert doc["security"] == [{"bearer": []}]
