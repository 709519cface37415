"""Checks shared by every parser of outside JSON (the HTTP API, the softphone's messages)."""

from __future__ import annotations

# Deepest JSON nesting accepted in a request or a softphone message (ours use 1 or 2).
MAX_JSON_DEPTH = 8


def json_problem(data: object, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why parsed JSON is unfit to use, or None. Iterative: any depth costs no stack."""
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > max_depth:
                return f"nested deeper than {max_depth} levels"
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return "a string holds a lone surrogate, not text"
    return None
