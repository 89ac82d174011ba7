"""Validates Kubernetes and KServe manifests against the API's schema models, strictly.

Run by tests/test_deploy.py in .tools/venv-deploy (``make deploy-tools``), which has the
``kubernetes`` client and the ``kserve`` SDK; it imports nothing of inferd's.

    python tests/deploy_schema_check.py FILE.yaml ...

Each YAML document is built into its kind's model (V1Deployment, V1Service, V1ConfigMap,
V1alpha1ServingRuntime, V1beta1InferenceService), field by field as the API client's own
deserializer does, but stricter: a key the schema does not have, or a value of the wrong type,
is a problem (the client's deserializer drops unknown keys and coerces types silently); missing
required fields fail in the models' constructors. Then the model, serialized back by the
client's ``sanitize_for_serialization``, must hold all of the document, unchanged. Prints one line per problem
and exits 1 if there is any; prints each document's kind and model class otherwise.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import kserve.models
import kubernetes.client.models
import yaml
from kubernetes.client import ApiClient

KINDS = {
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "Service"): "V1Service",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
}
PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "datetime": (str,), "date": (str,),
}


class SchemaError(Exception):
    pass


def model_class(name: str) -> type:
    """A model by its OpenAPI name: KServe's own first, then the Kubernetes API's."""
    for module in (kserve.models, kubernetes.client.models):
        if hasattr(module, name):
            return getattr(module, name)  # type: ignore[no-any-return]
    raise SchemaError(f"no model named {name}")


def build(data: Any, type_name: str, where: str) -> Any:
    """``data`` as the model (or list, dict, primitive) that ``type_name`` names."""
    if (match := re.fullmatch(r"list\[(.*)\]", type_name)) is not None:
        if not isinstance(data, list):
            raise SchemaError(f"{where}: expected a list, got {type(data).__name__}")
        return [build(item, match.group(1), f"{where}[{i}]") for i, item in enumerate(data)]
    if (match := re.fullmatch(r"dict[(\[]([^,]*), (.*)[)\]]", type_name)) is not None:
        if not isinstance(data, dict):
            raise SchemaError(f"{where}: expected a mapping, got {type(data).__name__}")
        return {key: build(value, match.group(2), f"{where}.{key}") for key, value in data.items()}
    if type_name == "object":
        return data
    if type_name in PRIMITIVES:
        # bool is an int in Python, not in the API.
        if not isinstance(data, PRIMITIVES[type_name]) or (type_name != "bool" and isinstance(data, bool)):
            raise SchemaError(f"{where}: expected {type_name}, got {type(data).__name__} {data!r}")
        return data
    klass = model_class(type_name)
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: expected a {type_name} mapping, got {type(data).__name__}")
    by_json_name = {json_name: attr for attr, json_name in klass.attribute_map.items()}
    unknown = sorted(set(data) - set(by_json_name))
    if unknown:
        raise SchemaError(f"{where}: {type_name} has no field {', '.join(unknown)}")
    kwargs = {
        by_json_name[key]: build(value, klass.openapi_types[by_json_name[key]], f"{where}.{key}")
        for key, value in data.items()
    }
    try:
        return klass(**kwargs)
    except (ValueError, TypeError) as error:  # a required field missing, a value not allowed
        raise SchemaError(f"{where}: {type_name}: {error}") from None


def dropped(document: Any, serialized: Any, where: str) -> str | None:
    """The first place where ``serialized`` lacks or changes what ``document`` has (the models
    may add defaults, such as KServe's ``name: ""``), or None."""
    if isinstance(document, dict) and isinstance(serialized, dict):
        for key, value in document.items():
            if key not in serialized:
                return f"{where}.{key}"
            if (lost := dropped(value, serialized[key], f"{where}.{key}")) is not None:
                return lost
        return None
    if isinstance(document, list) and isinstance(serialized, list) and len(document) == len(serialized):
        return next((lost for i, (a, b) in enumerate(zip(document, serialized))
                     if (lost := dropped(a, b, f"{where}[{i}]")) is not None), None)
    return None if document == serialized and type(document) is type(serialized) else where


def check(path: str) -> list[str]:
    problems, client = [], ApiClient()
    with open(path, encoding="utf-8") as file:
        documents = [document for document in yaml.safe_load_all(file) if document is not None]
    if not documents:
        return [f"{path}: no YAML documents"]
    for index, document in enumerate(documents):
        where = f"{path}[{index}]"
        kind = (document.get("apiVersion"), document.get("kind"))
        if kind not in KINDS:
            problems.append(f"{where}: unexpected apiVersion/kind {kind}")
            continue
        try:
            model = build(document, KINDS[kind], where)
        except SchemaError as error:
            problems.append(str(error))
            continue
        lost = dropped(document, client.sanitize_for_serialization(model), where)
        if lost:
            problems.append(f"{lost}: lost or changed when {KINDS[kind]} is serialized back")
            continue
        print(f"{where}: {kind[1]} -> {type(model).__name__}")
    return problems


def main(paths: list[str]) -> int:
    problems = [problem for path in paths for problem in check(path)]
    for problem in problems:
        print(f"problem: {problem}")
    return 1 if problems or not paths else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
