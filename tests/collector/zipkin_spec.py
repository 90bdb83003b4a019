"""Zipkin's own API specs (../shared/zipkin-api/*.yaml, Swagger 2.0) as OpenAPI 3 for openapi-core,
and a checker that validates meshscope's responses against them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

ZIPKIN_API = Path(__file__).resolve().parents[3] / "shared" / "zipkin-api"
HOST = "http://localhost"
_PARAMETER_SCHEMA_KEYS = ("type", "format", "default", "minLength", "maxLength", "pattern", "enum", "minimum", "maximum", "items")


def _refs(node):
    if isinstance(node, dict):
        return {k: ("#/components/schemas/" + v.split("/")[-1] if k == "$ref" and isinstance(v, str) else _refs(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_refs(item) for item in node]
    return node


def swagger_to_openapi3(swagger: dict, prefixes: list[str]) -> dict:
    paths: dict = {}
    for path, operations in swagger["paths"].items():
        paths[path] = {}
        for method, operation in operations.items():
            out: dict = {"responses": {}}
            parameters = []
            for parameter in operation.get("parameters", ()):
                if parameter["in"] == "body":
                    out["requestBody"] = {"content": {"application/json": {"schema": _refs(parameter["schema"])}}}
                    continue
                schema = {k: parameter[k] for k in _PARAMETER_SCHEMA_KEYS if k in parameter}
                parameters.append({"name": parameter["name"], "in": parameter["in"],
                                   "required": parameter.get("required", parameter["in"] == "path"), "schema": schema})
            if parameters:
                out["parameters"] = parameters
            for status, response in operation["responses"].items():
                converted = {"description": response.get("description", "")}
                if "schema" in response:
                    converted["content"] = {"application/json": {"schema": _refs(response["schema"])}}
                out["responses"][str(status)] = converted
            paths[path][method] = out
    return {
        "openapi": "3.0.3",
        "info": swagger["info"],
        "servers": [{"url": HOST + prefix} for prefix in prefixes],
        "paths": paths,
        "components": {"schemas": _refs(copy.deepcopy(swagger.get("definitions", {})))},
    }


def load_spec(name: str, prefixes: list[str]) -> OpenAPI:
    swagger = yaml.safe_load((ZIPKIN_API / name).read_text())
    spans = swagger["paths"].get("/spans", {}).get("get", {}).get("responses", {}).get("200", {})
    if spans.get("schema", {}).get("$ref", "").endswith("/ListOfSpans"):
        # a known slip of zipkin2-api.yaml: GET /spans answers span *names* (strings), as
        # Zipkin's server and UI do; the v1 file says so (type: array of string)
        spans["schema"] = {"type": "array", "items": {"type": "string"}}
    if "/remoteServices" not in swagger["paths"] and "/spans" in swagger["paths"] and name.startswith("zipkin2"):
        # served by Zipkin's server (zipkin2 QueryApi) though absent from the file: same shape as /spans
        swagger["paths"]["/remoteServices"] = {"get": copy.deepcopy({**swagger["paths"]["/spans"]["get"]})}
    return OpenAPI.from_dict(swagger_to_openapi3(swagger, prefixes))


V2 = load_spec("zipkin2-api.yaml", ["/api/v2", "/zipkin/api/v2"])
V1 = load_spec("zipkin-api.yaml", ["/api/v1"])


def check(response, spec: OpenAPI = V2) -> None:
    """Validate an httpx/TestClient response against ``spec`` (raises on any mismatch)."""
    request = response.request
    url = request.url
    content_type = response.headers.get("content-type", "application/json").split(";")[0]
    data = response.content
    if content_type != "application/json" and response.status_code == 202:
        content_type = "application/json"
    mock_request = MockRequest(HOST, request.method.lower(), url.path, args=dict(url.params))
    mock_response = MockResponse(data, status_code=response.status_code, content_type=content_type)
    spec.validate_response(mock_request, mock_response)


def is_json(response) -> bool:
    try:
        json.loads(response.content)
        return True
    except ValueError:
        return False
