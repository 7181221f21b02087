"""Candidate labels: plain names, names with descriptions, and hierarchies flattened to `parent.child`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from ..errors import InputError


@dataclass(frozen=True)
class Label:
    """A candidate label; `description` (optional) tells the model what the name means."""

    name: str
    description: str | None = None


LabelLike: TypeAlias = str | Label | Mapping[str, Any] | tuple[str, str]
# A hierarchy: {"topic": ["sports", "politics"], "tone": {"formal": [...], ...}}; leaves are names.
Hierarchy: TypeAlias = Mapping[str, Any]


def _to_label(item: Any, field: str) -> Label:
    if isinstance(item, Label):
        label = item
    elif isinstance(item, str):
        label = Label(item)
    elif isinstance(item, tuple) and len(item) == 2:
        label = Label(item[0], item[1])
    elif isinstance(item, Mapping) and "name" in item:
        unknown = set(item) - {"name", "description"}
        if unknown:
            raise InputError(field, f"unknown keys {sorted(unknown)}; a label has 'name' and 'description'")
        label = Label(item["name"], item.get("description"))
    elif isinstance(item, list):
        raise InputError(
            field,
            f"expected a label, got the list {item!r}; a label with a description is "
            '{"name": ..., "description": ...} (or the tuple (name, description) in Python)',
        )
    else:
        raise InputError(
            field, f"expected a label name (str), Label, (name, description) or {{'name': ...}}, got {item!r}"
        )
    if not isinstance(label.name, str):
        raise InputError(field, f"label name must be a string, got {type(label.name).__name__}")
    if not label.name.strip():
        raise InputError(field, "empty label name")
    if label.description is not None and not isinstance(label.description, str):
        raise InputError(field, f"description must be a string, got {type(label.description).__name__}")
    return label


# Levels a label hierarchy may have: deeper nesting is refused (it is bad input, not a taxonomy).
MAX_HIERARCHY_DEPTH = 32


def flatten_hierarchy(
    tree: Any, field: str, separator: str = ".", prefix: str = "", depth: int = 0
) -> list[Any]:
    """{"a": ["x", "y"], "b": {"c": ["z"]}} -> ["a.x", "a.y", "b.c.z"] (descriptions kept on leaves)."""
    if depth > MAX_HIERARCHY_DEPTH:
        raise InputError(field, f"a hierarchy of more than {MAX_HIERARCHY_DEPTH} levels")
    if isinstance(tree, Mapping) and "name" not in tree:
        out: list[Any] = []
        for key, value in tree.items():
            if not isinstance(key, str) or not key.strip():
                raise InputError(field, f"hierarchy keys must be non-empty strings, got {key!r}")
            out.extend(
                flatten_hierarchy(
                    value, f"{field}[{key!r}]", separator, f"{prefix}{key}{separator}", depth + 1
                )
            )
        return out
    if isinstance(tree, Sequence) and not isinstance(tree, str | tuple):
        out = []
        for i, item in enumerate(tree):
            out.extend(flatten_hierarchy(item, f"{field}[{i}]", separator, prefix, depth + 1))
        return out
    leaf = _to_label(tree, field)
    return [Label(prefix + leaf.name, leaf.description)]


def normalize_label_set(raw: Any, field: str, separator: str = ".") -> tuple[list[Label], Any]:
    """One text's candidates -> (labels in order, the hierarchy or None). Rejects empty and duplicates."""
    hierarchy = raw if isinstance(raw, Mapping) and "name" not in raw else None
    if hierarchy is not None:
        labels = flatten_hierarchy(raw, field, separator)
    elif isinstance(raw, Sequence) and not isinstance(raw, str | tuple):
        labels = [_to_label(item, f"{field}[{i}]") for i, item in enumerate(raw)]
        hierarchy = None
    else:
        raise InputError(field, f"expected a list of labels or a hierarchy (dict), got {type(raw).__name__}")
    if not labels:
        raise InputError(field, "empty label list")
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        if label.name in seen:
            raise InputError(
                f"{field}[{i}]", f"duplicate label {label.name!r} (also at index {seen[label.name]})"
            )
        seen[label.name] = i
    return labels, hierarchy


def hierarchy_groups(hierarchy: Any, separator: str = ".") -> dict[str, int] | None:
    """Each flattened label's top-level group: {"topic": ["a", "b"], "tone": ["c"]} ->
    {"topic.a": 0, "topic.b": 0, "tone.c": 1}. A single-label call picks one label per group.
    None without a hierarchy."""
    if hierarchy is None:
        return None
    groups: dict[str, int] = {}
    for group, (key, value) in enumerate(hierarchy.items()):
        for label in flatten_hierarchy(value, "labels", separator, f"{key}{separator}"):
            groups[label.name] = group
    return groups


def nest_scores(flat: Mapping[str, float], hierarchy: Any, separator: str = ".") -> Any:
    """Scores keyed by `parent.child` back into the shape of the hierarchy given by the caller."""
    if isinstance(hierarchy, Mapping) and "name" not in hierarchy:
        return {key: _nest(value, flat, f"{key}{separator}", separator) for key, value in hierarchy.items()}
    return dict(flat)


def _nest(node: Any, flat: Mapping[str, float], prefix: str, separator: str) -> Any:
    if isinstance(node, Mapping) and "name" not in node:
        return {
            key: _nest(value, flat, f"{prefix}{key}{separator}", separator) for key, value in node.items()
        }
    if isinstance(node, Sequence) and not isinstance(node, str | tuple):
        out: dict[str, Any] = {}
        for item in node:
            if isinstance(item, Mapping) and "name" not in item:
                out.update(_nest(item, flat, prefix, separator))
            else:
                name = _to_label(item, "labels").name
                out[name] = flat[prefix + name]
        return out
    name = _to_label(node, "labels").name
    return {name: flat[prefix + name]}
