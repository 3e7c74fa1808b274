"""The OpenAPI document lists exactly the routes and methods the app serves."""

from __future__ import annotations

import re


def served_routes(app) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((path, method.lower()))
    return routes


def documented_routes(document: dict) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "delete", "patch"}
    }


def test_document_matches_the_code(app):  # type: ignore[no-untyped-def]
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.")
    assert documented_routes(document) == served_routes(app)


def test_every_secured_operation_documents_401(app):  # type: ignore[no-untyped-def]
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    for path, item in document["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and op.get("security"):
                assert "401" in op["responses"], (path, method)
