"""Print the API of the ``tensorrt`` module on the path as JSON (run in a subprocess with the real
bindings of build/trt_bindings/<version>/, see scripts/install_trt_bindings.py).

For every module attribute: its kind; for classes, every public member with its kind, the parameter
names of each pybind11 overload (read from the signature lines of its docstring, ``self`` dropped),
and whether a property can be set; for enums, their members.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

_SIG = re.compile(r"^(?:\d+\. )?(\w+)\((.*)\) -> ")


def _split_params(text: str) -> list[str]:
    """Top-level comma split of a pybind11 parameter list (types contain brackets and commas)."""
    depth, cur, out = 0, "", []
    for ch in text:
        if ch in "[(<{":
            depth += 1
        elif ch in "])>}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [p.strip() for p in out]


def overloads(func: Any, name: str) -> list[list[str]] | None:
    """Parameter names per overload (``*args`` style names kept), or None when no signature is shown."""
    doc = getattr(func, "__doc__", None) or ""
    found = []
    for line in doc.splitlines():
        m = _SIG.match(line.strip())
        if m and m.group(1) == name:
            names = [p.split(":", 1)[0].split("=", 1)[0].strip() for p in _split_params(m.group(2))]
            found.append([n for n in names if n != "self"])
    return found or None


def describe_class(cls: type) -> dict[str, Any]:
    members: dict[str, Any] = {}
    if hasattr(cls, "__members__"):  # a pybind11 enum
        return {"kind": "enum", "members": sorted(cls.__members__)}
    for name in dir(cls):
        if name.startswith("_") and name != "__init__":
            continue
        raw = None
        for klass in cls.__mro__:
            if name in vars(klass):
                raw = vars(klass)[name]
                break
        if isinstance(raw, property):
            members[name] = {"kind": "property", "writable": raw.fset is not None}
        elif isinstance(raw, type):  # a nested class or enum (ILogger.Severity)
            members[name] = describe_class(raw)
        elif callable(raw) or isinstance(raw, staticmethod):
            members[name] = {"kind": "method", "overloads": overloads(getattr(cls, name), name)}
        else:
            members[name] = {"kind": "attribute"}
    return {"kind": "class", "members": members}


def main() -> int:
    import tensorrt as trt

    api: dict[str, Any] = {"version": trt.__version__, "names": {}}
    for name in dir(trt):
        if name.startswith("_") and name != "__version__":
            continue
        obj = getattr(trt, name)
        if isinstance(obj, type):
            api["names"][name] = describe_class(obj)
        elif callable(obj):
            api["names"][name] = {"kind": "function", "overloads": overloads(obj, name)}
        else:
            api["names"][name] = {"kind": "attribute"}
    json.dump(api, sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
