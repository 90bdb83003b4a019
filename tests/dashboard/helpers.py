"""Walking Dash component trees in plain-function tests."""

from __future__ import annotations

from typing import Any


def walk(node: Any):
    if isinstance(node, (list, tuple)):
        for child in node:
            yield from walk(child)
        return
    if node is None or isinstance(node, (str, int, float)):
        return
    yield node
    yield from walk(getattr(node, "children", None))


def by_id(tree: Any, id_: str) -> Any:
    for node in walk(tree):
        if getattr(node, "id", None) == id_:
            return node
    raise AssertionError(f"no component with id {id_!r}")


def text(tree: Any) -> str:
    out: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, (list, tuple)):
            for child in node:
                collect(child)
        elif isinstance(node, (str, int, float)):
            out.append(str(node))
        elif node is not None:
            collect(getattr(node, "children", None))

    collect(tree)
    return " ".join(out)


def classes(tree: Any) -> list[str]:
    return [getattr(n, "className", "") or "" for n in walk(tree)]
