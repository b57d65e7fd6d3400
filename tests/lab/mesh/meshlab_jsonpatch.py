"""A minimal RFC 6902 applier (add/replace/remove) so injector tests check the patch itself."""

from __future__ import annotations

import copy
from typing import Any


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def apply_patch(document: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    result = copy.deepcopy(document)
    for op in ops:
        tokens = [_unescape(t) for t in op["path"].split("/")[1:]]
        parent: Any = result
        for token in tokens[:-1]:
            parent = parent[int(token)] if isinstance(parent, list) else parent[token]
        last = tokens[-1]
        if op["op"] in ("add", "replace"):
            if op["op"] == "replace" and not isinstance(parent, list):
                assert last in parent, f"replace of missing {op['path']}"
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                else:
                    parent.insert(int(last), op["value"])
            else:
                parent[last] = op["value"]
        elif op["op"] == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        else:
            raise AssertionError(f"unexpected op {op['op']}")
    return result
