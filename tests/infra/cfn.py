"""Small readers for a synthesized CloudFormation template (a plain dict), for intent assertions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::Partition": "aws",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "VoiceAgent",
}


def refs(value: Any) -> set[str]:
    """Every logical id that ``value`` refers to (Ref or Fn::GetAtt), at any depth."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str) and not inner.startswith("AWS::"):
                found.add(inner)
            elif key == "Fn::GetAtt" and isinstance(inner, list):
                found.add(str(inner[0]))
            else:
                found |= refs(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= refs(inner)
    return found


def render(value: Any) -> str:
    """A string value with intrinsics replaced by stand-ins: ``Ref X`` -> ``x-id`` (lower case),
    pseudo parameters -> fixed values. Enough to check the shape of URLs and ARNs."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        if "Ref" in value:
            name = str(value["Ref"])
            return PSEUDO.get(name, f"{name.lower()}-id")
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return str(separator).join(render(p) for p in parts)
        if "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            return f"{str(logical_id).lower()}-{str(attribute).lower()}"
    raise AssertionError(f"cannot render {value!r}")


def of_type(template: Mapping[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == resource_type}


def only(template: Mapping[str, Any], resource_type: str) -> tuple[str, dict[str, Any]]:
    found = of_type(template, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.items()))


def statements_by_role(template: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(role logical id, policy statement) for every inline policy attached to a role."""
    for policy in of_type(template, "AWS::IAM::Policy").values():
        props = policy["Properties"]
        for role in props.get("Roles", []):
            for statement in props["PolicyDocument"]["Statement"]:
                yield role["Ref"], statement


def actions(statement: Mapping[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def resources(statement: Mapping[str, Any]) -> list[Any]:
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def function_role(template: Mapping[str, Any], function_id: str) -> str:
    role = template["Resources"][function_id]["Properties"]["Role"]
    (role_id,) = refs(role)
    return role_id


def environment(template: Mapping[str, Any], function_id: str) -> dict[str, Any]:
    return dict(template["Resources"][function_id]["Properties"]["Environment"]["Variables"])
