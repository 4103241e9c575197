"""The package's use of the ROS 2 Python APIs, checked statically against a distribution's SOURCES.

Two halves, both plain ``ast`` (nothing of a distribution is imported into the test process):

* ``scan_sources``: every use the package makes of rclpy, launch, launch_ros, launch_testing,
  launch_testing_ros, message_filters, tf2_ros, sensor_msgs_py and diagnostic_updater, as a chain of
  steps from an imported module: ``launch.substitutions`` + ``.NotEqualsSubstitution``;
  ``rclpy.lifecycle`` + ``.Node`` + instance + ``.create_lifecycle_publisher`` + call(keywords, number
  of positional arguments). Objects whose type is evident are followed: names bound by imports,
  annotated parameters and variables (``node: Node``), variables and ``self.x`` attributes assigned a
  call of a ROS class (``updater = Updater(...)``, ``self.buffer = tf2_ros.Buffer()``), ``self`` and
  ``super()`` in the package's subclasses of ROS classes (names the package class defines itself are
  its own), instances of the package's classes and package functions that return a ROS module
  (``optional.message_filters()``). Methods a package class defines that exist on its ROS base in the
  reference (dev venv) sources are overrides, which must exist on the checked distribution too.
* ``Distro``: a distribution's sources as modules, classes, functions and values, with re-exports
  (``from .x import Y``, star imports, ``__all__``), aliases (``Node = LifecycleNode``), class
  inheritance (own methods, class attributes and ``self.x`` assignments, then the bases), signatures
  (keywords, positional count, ``**kwargs`` followed to where the function forwards them:
  ``super().__init__(**kwargs)``, ``Base.__init__(self, **kwargs)``, ``self.method(**kwargs)``) and return
  annotations (the checked sources', else the reference's for the same method) to follow call results.

What the sources cannot show (rclpy's C extension ``_rclpy_pybind11``, tf2_py's ``BufferCore``, a
``**kwargs`` forwarded to an object of unknown type) is "unverifiable"; the test accepts such a use
only through its commented allow-list.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# try/except, and try/except* where the Python has it (ast.TryStar is 3.11+; JetPack 6 runs 3.10)
_TRY_NODES: tuple[type[ast.stmt], ...] = (ast.Try, getattr(ast, "TryStar", ast.Try))

ROS_PACKAGES = (
    "rclpy",
    "launch",
    "launch_ros",
    "launch_testing",
    "launch_testing_ros",
    "message_filters",
    "tf2_ros",
    "sensor_msgs_py",
    "diagnostic_updater",
)
# where each package's directory (the one holding its __init__.py) is in a checkout of its repository
HUMBLE_LAYOUT = {
    "rclpy": "rclpy/rclpy",
    "launch": "launch/launch",
    "launch_ros": "launch_ros/launch_ros",
    "launch_testing": "launch_testing/launch_testing",
    "launch_testing_ros": "launch_testing_ros/launch_testing_ros",
    "message_filters": "src/message_filters",
    "tf2_ros": "tf2_ros_py/tf2_ros",
    "sensor_msgs_py": "sensor_msgs_py/sensor_msgs_py",
    "diagnostic_updater": "diagnostic_updater/diagnostic_updater",
}
ROS_SRC_LAYOUT = {  # ../shared/ros_src_jazzy (no rclpy: its Jazzy sources are not there)
    "launch": "launch/launch/launch",
    "launch_ros": "launch_ros/launch_ros/launch_ros",
    "launch_testing": "launch/launch_testing/launch_testing",
    "launch_testing_ros": "launch_ros/launch_testing_ros/launch_testing_ros",
    "message_filters": "message_filters/src/message_filters",
    "tf2_ros": "geometry2/tf2_ros_py/tf2_ros",
    "sensor_msgs_py": "common_interfaces/sensor_msgs_py/sensor_msgs_py",
    "diagnostic_updater": "diagnostics/diagnostic_updater/diagnostic_updater",
}


def is_ros(module: str) -> bool:
    return module.split(".")[0] in ROS_PACKAGES


# -- the distribution side --------------------------------------------------------------------------


@dataclass(frozen=True)
class DMod:
    name: str


@dataclass(frozen=True)
class DClass:
    mod: str
    qualname: str
    node: ast.ClassDef = field(compare=False, repr=False)

    @property
    def path(self) -> str:
        return f"{self.mod}.{self.qualname}"


@dataclass(frozen=True)
class DInst:
    cls: DClass


@dataclass(frozen=True)
class DFunc:
    mod: str
    owner: DClass | None
    name: str
    node: ast.FunctionDef | ast.AsyncFunctionDef = field(compare=False, repr=False)
    bound: bool

    @property
    def path(self) -> str:
        return f"{self.owner.path if self.owner else self.mod}.{self.name}"

    @property
    def decorators(self) -> set[str]:
        return _decorator_names(self.node)


@dataclass(frozen=True)
class DExt:
    """A name from a module outside every checked package (the standard library, a message package)."""

    mod: str
    attr: str

    def real(self) -> Any:
        """The object itself, for the standard library only (None otherwise)."""
        if self.mod.split(".")[0] not in sys.stdlib_module_names:
            return None
        obj: Any = importlib.import_module(self.mod)
        for part in filter(None, self.attr.split(".")):
            obj = getattr(obj, part, None)
        return obj


@dataclass(frozen=True)
class DValue:
    """A name that exists, bound to a value whose contents the sources do not show."""

    what: str


@dataclass(frozen=True)
class Missing:
    why: str


@dataclass(frozen=True)
class Unknown:
    why: str
    absent: bool = False  # reached a ROS package this distribution's sources do not include


Value = DMod | DClass | DInst | DFunc | DExt | DValue
Result = Value | Missing | Unknown


class ModInfo:
    """One module's top-level names (in if/try/with blocks too), star imports and ``__all__``."""

    def __init__(self, name: str, path: Path, is_pkg: bool) -> None:
        self.name, self.path, self.is_pkg = name, path, is_pkg
        self.bindings: dict[str, tuple[Any, ...]] = {}
        self.stars: list[str] = []
        self.all: list[str] | None = None
        self._collect(ast.parse(path.read_text(), str(path)).body)

    def absolute(self, module: str | None, level: int) -> str:
        if not level:
            return module or ""
        pkg = self.name if self.is_pkg else self.name.rpartition(".")[0]
        for _ in range(level - 1):
            pkg = pkg.rpartition(".")[0]
        return f"{pkg}.{module}" if module else pkg

    def _collect(self, body: list[ast.stmt]) -> None:
        for st in body:
            if isinstance(st, ast.Import):
                for a in st.names:
                    if a.asname:
                        self.bindings[a.asname] = ("mod", a.name)
                    else:
                        self.bindings[a.name.split(".")[0]] = ("mod", a.name.split(".")[0])
            elif isinstance(st, ast.ImportFrom):
                base = self.absolute(st.module, st.level)
                for a in st.names:
                    if a.name == "*":
                        self.stars.append(base)
                    else:
                        self.bindings[a.asname or a.name] = ("from", base, a.name)
            elif isinstance(st, ast.ClassDef):
                self.bindings[st.name] = ("class", st)
            elif isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.bindings[st.name] = ("func", st)
            elif isinstance(st, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = st.targets if isinstance(st, ast.Assign) else [st.target]
                for t in targets:
                    for name in _target_names(t):
                        value = st.value if isinstance(t, ast.Name) and not isinstance(st, ast.AugAssign) else None
                        if name not in self.bindings or value is not None:
                            self.bindings[name] = ("expr", value, st.lineno)
                    if isinstance(t, ast.Name) and t.id == "__all__" and isinstance(st.value, (ast.List, ast.Tuple)):
                        names = [e.value for e in st.value.elts if isinstance(e, ast.Constant)]
                        self.all = (self.all or []) + names if isinstance(st, ast.AugAssign) else names
            elif isinstance(st, ast.If | ast.Try | ast.With | ast.For | ast.While):
                for block in ("body", "orelse", "finalbody"):
                    self._collect(getattr(st, block, []))
                for h in getattr(st, "handlers", []):
                    self._collect(h.body)


def _target_names(t: ast.expr) -> Iterator[str]:
    if isinstance(t, ast.Name):
        yield t.id
    elif isinstance(t, ast.Tuple | ast.List):
        for e in t.elts:
            yield from _target_names(e)
    elif isinstance(t, ast.Starred):
        yield from _target_names(t.value)


def _class_body(cls: DClass) -> dict[str, tuple[str, Any]]:
    """A class's own names: methods (the last definition), nested classes, class attributes and the
    attributes its methods assign on ``self``."""
    own: dict[str, tuple[str, Any]] = {}
    for st in cls.node.body:
        if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(st):
                targets: list[ast.expr] = []
                if isinstance(sub, ast.Assign):
                    targets = sub.targets
                elif isinstance(sub, (ast.AnnAssign, ast.AugAssign)):
                    targets = [sub.target]
                for t in targets:
                    for e in ast.walk(t):
                        if isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name) and e.value.id == "self":
                            own.setdefault(e.attr, ("attr", sub))
    for st in cls.node.body:
        if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)):
            own[st.name] = ("func", st)
        elif isinstance(st, ast.ClassDef):
            own[st.name] = ("class", st)
        elif isinstance(st, (ast.Assign, ast.AnnAssign)):
            for t in st.targets if isinstance(st, ast.Assign) else [st.target]:
                for name in _target_names(t):
                    own[name] = ("expr", st.value if isinstance(t, ast.Name) else None)
        elif isinstance(st, ast.If | ast.Try):
            for sub in st.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    own[sub.name] = ("func", sub)
    return own


class Distro:
    """One distribution's sources of the ROS packages, resolved statically."""

    def __init__(self, name: str, roots: dict[str, Path], reference: Distro | None = None) -> None:
        self.name, self.roots, self.reference = name, roots, reference
        self._mods: dict[str, ModInfo | None] = {}
        self._own: dict[DClass, dict[str, tuple[str, Any]]] = {}
        self._busy: set[tuple[str, str]] = set()

    @classmethod
    def from_layout(cls, name: str, base: Path, layout: dict[str, str], reference: Distro | None = None) -> Distro:
        return cls(name, {pkg: base / rel for pkg, rel in layout.items()}, reference)

    def covers(self, module: str) -> bool:
        return module.split(".")[0] in self.roots

    def module(self, dotted: str) -> ModInfo | None:
        if dotted not in self._mods:
            parts = dotted.split(".")
            root = self.roots.get(parts[0])
            info = None
            if root is not None:
                path = root.joinpath(*parts[1:])
                if (path / "__init__.py").is_file():
                    info = ModInfo(dotted, path / "__init__.py", True)
                elif len(parts) > 1 and path.with_suffix(".py").is_file():
                    info = ModInfo(dotted, path.with_suffix(".py"), False)
            self._mods[dotted] = info
        return self._mods[dotted]

    # -- names ------------------------------------------------------------------------------------------
    def outside(self, mod: str, attr: str = "") -> Result:
        top = mod.split(".")[0]
        if top in ROS_PACKAGES:
            where = f"{mod}.{attr}" if attr else mod
            return Unknown(f"{where}: {top}'s sources are not part of {self.name}'s", absent=True)
        return DExt(mod, attr)

    def import_from(self, mod: str, attr: str) -> Result:
        if not self.covers(mod):
            return self.outside(mod, attr)
        if self.module(mod) is None:
            return Missing(f"module {mod} does not exist")
        if (mod, attr) in self._busy:  # `from . import x` in x's package: the submodule
            sub = self.module(f"{mod}.{attr}")
            return DMod(sub.name) if sub is not None else Missing(f"{attr} is not in {self.name}'s {mod}")
        self._busy.add((mod, attr))
        try:
            return self.getattr(DMod(mod), attr)
        finally:
            self._busy.discard((mod, attr))

    def ns(self, mod: str, name: str, depth: int = 0) -> Result | None:
        info = self.module(mod)
        if info is None or depth > 20:
            return None
        b = info.bindings.get(name)
        if b is not None:
            kind = b[0]
            if kind == "class":
                return DClass(mod, name, b[1])
            if kind == "func":
                return DFunc(mod, None, name, b[1], False)
            if kind == "mod":
                if not self.covers(b[1]):
                    return self.outside(b[1])
                return DMod(b[1]) if self.module(b[1]) is not None else Missing(f"module {b[1]} does not exist")
            if kind == "from":
                return self.import_from(b[1], b[2])
            value = b[1]
            if isinstance(value, ast.Name | ast.Attribute | ast.Call):
                r = self.eval_expr(mod, value, depth + 1)
                if isinstance(r, DMod | DClass | DInst | DFunc | DExt):
                    return r
                what = r.what if isinstance(r, DValue) else f"{mod}.{name}"
                return DValue(what)
            return DValue(f"{mod}.{name}")
        for star in info.stars:
            src = self.module(star)
            if src is None:
                continue
            exported = src.all if src.all is not None else [n for n in src.bindings if not n.startswith("_")]
            if name in exported:
                found = self.ns(star, name, depth + 1)
                if found is not None:
                    return found
        return None

    def eval_expr(self, mod: str, expr: ast.expr, depth: int = 0) -> Result:
        """An expression at a module's top level (an alias, a base class, an annotation)."""
        if isinstance(expr, ast.Name):
            found = self.ns(mod, expr.id, depth)
            if found is not None:
                return found
            if hasattr(builtins, expr.id):
                return DExt("builtins", expr.id)
            return Missing(f"{expr.id} is not defined in {mod}")
        if isinstance(expr, ast.Attribute):
            base = self.eval_expr(mod, expr.value, depth)
            return base if isinstance(base, Missing | Unknown) else self.getattr(base, expr.attr)
        if isinstance(expr, ast.Subscript):  # Generic[T], Optional[X]
            return self.eval_expr(mod, expr.value, depth)
        if isinstance(expr, ast.Call):
            f = self.eval_expr(mod, expr.func, depth)
            return DInst(f) if isinstance(f, DClass) else DValue(ast.unparse(expr))
        return DValue(ast.unparse(expr))

    def getattr(self, v: Value, name: str) -> Result:
        if isinstance(v, DMod):
            found = self.ns(v.name, name)
            if found is not None:
                return found
            if self.module(f"{v.name}.{name}") is not None:
                return DMod(f"{v.name}.{name}")
            return Missing(f"{name} is not in {self.name}'s {v.name}")
        if isinstance(v, DClass | DInst):
            cls = v if isinstance(v, DClass) else v.cls
            r = self.member(cls, name)
            if isinstance(r, DFunc) and isinstance(v, DClass) and "classmethod" not in r.decorators:
                return DFunc(r.mod, r.owner, r.name, r.node, False)
            return r
        if isinstance(v, DExt):
            obj = v.real()
            if obj is None:
                return Unknown(f"{v.mod}.{v.attr} is outside the checked sources")
            return DExt(v.mod, f"{v.attr}.{name}") if hasattr(obj, name) else Missing(f"{v.mod}.{v.attr} has no {name}")
        what = v.what if isinstance(v, DValue) else v.path
        return Unknown(f"{what} is a value the sources do not show the contents of")

    def bases(self, cls: DClass) -> list[Result]:
        return [self.eval_expr(cls.mod, b) for b in cls.node.bases]

    def own(self, cls: DClass) -> dict[str, tuple[str, Any]]:
        if cls not in self._own:
            self._own[cls] = _class_body(cls)
        return self._own[cls]

    def member(self, cls: DClass, name: str, depth: int = 0) -> Result:
        own = self.own(cls).get(name)
        if own is not None:
            kind, node = own
            if kind == "func":
                if {"property", "cached_property", "setter", "getter"} & DFunc(
                    cls.mod, cls, name, node, True
                ).decorators:
                    return self.returns(DFunc(cls.mod, cls, name, node, True)) or DValue(f"{cls.path}.{name}")
                return DFunc(cls.mod, cls, name, node, "staticmethod" not in _decorator_names(node))
            if kind == "class":
                return DClass(cls.mod, f"{cls.qualname}.{name}", node)
            if kind == "expr" and isinstance(node, ast.Name | ast.Attribute):
                r = self.eval_expr(cls.mod, node)
                if isinstance(r, DClass | DFunc | DMod):
                    return r
            return DValue(f"{cls.path}.{name}")
        unknown: Unknown | None = None
        for base in self.bases(cls):
            if isinstance(base, DClass) and depth < 30:
                r = self.member(base, name, depth + 1)
                if isinstance(r, Unknown):
                    unknown = unknown or r
                elif not isinstance(r, Missing):
                    return r
            elif isinstance(base, DExt):
                obj = base.real()
                if obj is None:
                    unknown = unknown or Unknown(f"{cls.path}'s base {base.mod}.{base.attr} is outside the sources")
                elif hasattr(obj, name):
                    return DExt(base.mod, f"{base.attr}.{name}")
            elif isinstance(base, Unknown):
                unknown = unknown or base
            else:
                what = base.what if isinstance(base, DValue) else str(base)
                unknown = unknown or Unknown(f"{cls.path}'s base {what} is outside the sources (C extension)")
        if name.startswith("__") and hasattr(object, name):
            return DExt("builtins", f"object.{name}")
        if unknown is not None:
            return unknown
        if depth == 0 and name != "__getattr__" and isinstance(self.member(cls, "__getattr__", 1), DFunc):
            return Unknown(f"{cls.path} answers other names through __getattr__")
        return Missing(f"{name} is not an attribute of {self.name}'s {cls.path}")

    def resolve_path(self, dotted: str) -> Result:
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            mod = ".".join(parts[:i])
            if self.covers(mod) and self.module(mod) is not None:
                v: Result = DMod(mod)
                for p in parts[i:]:
                    if isinstance(v, Missing | Unknown):
                        return v
                    v = self.getattr(v, p)
                return v
        return self.outside(dotted)

    # -- calls ------------------------------------------------------------------------------------------
    def signature_of(self, v: Value) -> DFunc | Result | None:
        """The function a call of ``v`` runs (a class: its __init__), or why it is not known."""
        if isinstance(v, DFunc):
            return v
        if isinstance(v, DClass):
            init = self.member(v, "__init__")
            if isinstance(init, DExt) and init.attr.startswith("object."):
                return None  # object.__init__: no keywords
            return init
        if isinstance(v, DInst):
            return self.member(v.cls, "__call__")
        return Unknown("a call of a value the sources do not show")

    def accepts(self, f: DFunc, kw: str, depth: int = 0) -> Missing | Unknown | None:
        a = f.node.args
        if kw in {p.arg for p in [*a.args, *a.kwonlyargs]}:
            return None
        if a.kwarg is None:
            return Missing(f"{f.path}() takes no keyword '{kw}' on {self.name}")
        if depth > 12:
            return Unknown(f"{f.path}: **{a.kwarg.arg} followed too deep")
        forwards, read = self._forwarding(f, a.kwarg.arg)
        if kw in read:
            return None
        unknown: Unknown | None = None
        for target in forwards:
            if isinstance(target, DFunc):
                r = self.accepts(target, kw, depth + 1)
                if r is None:
                    return None
                if isinstance(r, Unknown):
                    unknown = unknown or r
            elif isinstance(target, Unknown):
                unknown = unknown or target
        if not forwards:
            return Unknown(f"{f.path}() takes **{a.kwarg.arg} and forwards it nowhere the sources show")
        if unknown is not None:
            return unknown
        return Missing(f"{f.path}() takes no keyword '{kw}' on {self.name} (nor do the calls its **kwargs go to)")

    def _forwarding(self, f: DFunc, kwarg: str) -> tuple[list[Result], set[str]]:
        targets: list[Result] = []
        read: set[str] = set()
        for node in ast.walk(f.node):
            if isinstance(node, ast.Call):
                fn = node.func
                # kwargs.get('x') / kwargs.pop('x') / kwargs.setdefault('x', ...)
                if isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name) and fn.value.id == kwarg:
                    if node.args and isinstance(node.args[0], ast.Constant):
                        read.add(str(node.args[0].value))
                    continue
                if not any(
                    k.arg is None and isinstance(k.value, ast.Name) and k.value.id == kwarg for k in node.keywords
                ):
                    continue
                targets.append(self._callee(f, fn))
            elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == kwarg:
                if isinstance(node.slice, ast.Constant):
                    read.add(str(node.slice.value))
            elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant):
                if any(isinstance(c, ast.Name) and c.id == kwarg for c in node.comparators):
                    read.add(str(node.left.value))
        return targets, read

    def _callee(self, f: DFunc, fn: ast.expr) -> Result:
        """The function a call inside ``f`` reaches: super().x, Base.x, self.x, a module-level name."""
        owner = f.owner
        if isinstance(fn, ast.Attribute):
            v = fn.value
            if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "super" and owner is not None:
                for base in self.bases(owner):
                    if isinstance(base, DClass):
                        r = self.member(base, fn.attr)
                        if not isinstance(r, Missing):
                            return self._as_func(r)
                    elif isinstance(base, DExt) and base.real() is not None:
                        continue
                    else:
                        return Unknown(f"{owner.path}'s base is outside the sources")
                return Missing(f"super().{fn.attr} not found")
            if isinstance(v, ast.Name) and v.id == "self" and owner is not None:
                return self._as_func(self.member(owner, fn.attr))
        root = fn
        while isinstance(root, ast.Attribute):
            root = root.value
        info = self.module(f.mod)
        if isinstance(root, ast.Name) and info is not None and root.id in info.bindings:
            return self._as_func(self.eval_expr(f.mod, fn))
        return Unknown(f"{f.path} forwards **kwargs to {ast.unparse(fn)}, whose type the sources do not show")

    def _as_func(self, r: Result) -> Result:
        if isinstance(r, DClass | DInst | DFunc):
            sig = self.signature_of(r)
            return sig if sig is not None else Missing("object.__init__")
        if isinstance(r, Missing | Unknown):
            return r
        return Unknown(f"{r} is outside the sources")

    def check_call(self, v: Value, kws: Iterable[str], npos: int | None) -> list[tuple[str, Missing | Unknown]]:
        """(the keyword, or '' for the call as a whole; why) per problem of a call of ``v``."""
        sig = self.signature_of(v)
        kws = list(kws)
        if sig is None:  # object.__init__
            return [(k, Missing(f"{getattr(v, 'path', v)}() takes no keyword '{k}'")) for k in kws]
        if isinstance(sig, DExt):
            return []  # a standard-library class's constructor (NamedTuple, Exception, ...): not checked
        if not isinstance(sig, DFunc):
            why = sig if isinstance(sig, Missing | Unknown) else Unknown(str(sig))
            return [(k, why) for k in kws]
        problems: list[tuple[str, Missing | Unknown]] = []
        for k in kws:
            r = self.accepts(sig, k)
            if r is not None:
                problems.append((k, r))
        a = sig.node.args
        if npos is not None and a.vararg is None:
            most = len(a.posonlyargs) + len(a.args) - (1 if sig.bound else 0)
            if npos > most:
                problems.append(
                    ("", Missing(f"{sig.path}() takes at most {most} positional argument(s), given {npos}"))
                )
        return problems

    def returns(self, f: DFunc) -> Value | None:
        """What a call of ``f`` returns, from its return annotation (else the reference's for the same
        function): an instance of a class of these sources, or None when not known."""
        cls = self._annotated_class(f.mod, f.node.returns)
        if cls is None and self.reference is not None:
            ref = self.reference.resolve_path(f.path) if f.owner is None else None
            if f.owner is not None:
                owner = self.reference.resolve_path(f.owner.path)
                ref = self.reference.member(owner, f.name) if isinstance(owner, DClass) else None
            if isinstance(ref, DFunc):
                rc = self.reference._annotated_class(ref.mod, ref.node.returns)
                if rc is not None:
                    here = self.resolve_path(rc.path)
                    cls = here if isinstance(here, DClass) else None
            elif isinstance(ref, DInst):  # a property, resolved in the reference
                here = self.resolve_path(ref.cls.path)
                cls = here if isinstance(here, DClass) else None
        return DInst(cls) if cls is not None else None

    def _annotated_class(self, mod: str, ann: ast.expr | None) -> DClass | None:
        if ann is None:
            return None
        if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
            try:
                ann = ast.parse(ann.value, mode="eval").body
            except SyntaxError:
                return None
        if isinstance(ann, ast.BinOp):
            return self._annotated_class(mod, ann.left) or self._annotated_class(mod, ann.right)
        if isinstance(ann, ast.Subscript) and isinstance(ann.value, ast.Name | ast.Attribute):
            head = ann.value.attr if isinstance(ann.value, ast.Attribute) else ann.value.id
            if head == "Optional":
                return self._annotated_class(mod, ann.slice)
            if head == "Union" and isinstance(ann.slice, ast.Tuple):
                return next(filter(None, (self._annotated_class(mod, e) for e in ann.slice.elts)), None)
            return None
        if isinstance(ann, ast.Name | ast.Attribute):
            r = self.eval_expr(mod, ann)
            return r if isinstance(r, DClass) else None
        return None


def _decorator_names(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    out = set()
    for d in node.decorator_list:
        d = d.func if isinstance(d, ast.Call) else d
        out.add(d.attr if isinstance(d, ast.Attribute) else d.id if isinstance(d, ast.Name) else "?")
    return out


# -- the package side -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    kind: str  # "attr" | "call" | "inst" (an object of that class: an annotation, self, super())
    name: str = ""
    kws: tuple[str, ...] = ()
    npos: int | None = None
    line: int = 0


@dataclass(frozen=True)
class Chain:
    """A use: ``root`` (an imported module) and the steps the code takes from it."""

    file: str
    root: str
    steps: tuple[Step, ...] = ()
    at: int = 0  # the line of the import that binds root

    def add(self, step: Step) -> Chain:
        return Chain(self.file, self.root, (*self.steps, step), self.at)

    def spelled(self, upto: int | None = None) -> str:
        out = self.root
        for s in self.steps[:upto]:
            out += f".{s.name}" if s.kind == "attr" else "()"
        return out

    @property
    def line(self) -> int:
        return self.steps[-1].line if self.steps else self.at


@dataclass(frozen=True)
class Override:
    file: str
    line: int
    base: Chain  # the ROS class the package class derives from
    name: str


@dataclass
class ClassCtx:
    scanner: Scanner
    node: ast.ClassDef
    ros_base: Chain | None
    parent: ClassCtx | None
    own: set[str]
    _attr_types: dict[str, Any] | None = None
    _busy: bool = False

    def attr_types(self) -> dict[str, Any]:
        if self._attr_types is None:
            if self._busy:
                return {}
            self._busy = True
            found: dict[str, Any] = dict(self.parent.attr_types()) if self.parent else {}
            self.scanner.collect_attr_types(self, found)
            self._attr_types = found
            self._busy = False
        return self._attr_types


@dataclass(frozen=True)
class SelfVal:
    ctx: ClassCtx
    sup: bool = False


@dataclass(frozen=True)
class PkgClass:
    ctx: ClassCtx


@dataclass(frozen=True)
class PkgInst:
    ctx: ClassCtx


@dataclass(frozen=True)
class PkgMod:
    name: str


@dataclass(frozen=True)
class PkgFunc:
    scanner: Scanner
    node: ast.FunctionDef


class Project:
    """The package's Python files by module name, for following its own imports between them."""

    def __init__(self, files: dict[str, str], modules: dict[str, str] | None = None) -> None:
        self.files = files  # path (for the report) -> text
        self.modules = modules or {}  # module name -> path
        self._scanners: dict[str, Scanner] = {}

    def scanner(self, path: str) -> Scanner:
        if path not in self._scanners:
            self._scanners[path] = Scanner(self, path, self.files[path])
        return self._scanners[path]

    def module_value(self, module: str, attr: str | None) -> Any:
        if attr is not None and f"{module}.{attr}" in self.modules:
            return PkgMod(f"{module}.{attr}")
        path = self.modules.get(module)
        if path is None:
            return None
        if attr is None:
            return PkgMod(module)
        return self.scanner(path).top_value(attr)

    def uses(self) -> tuple[set[Chain], set[Override]]:
        chains: set[Chain] = set()
        overrides: set[Override] = set()
        for path in self.files:
            s = self.scanner(path)
            s.scan()
            chains |= s.uses
            overrides |= s.overrides
        return chains, overrides


class Scanner:
    def __init__(self, project: Project, path: str, text: str) -> None:
        self.project, self.path = project, path
        self.tree = ast.parse(text, path)
        self.uses: set[Chain] = set()
        self.overrides: set[Override] = set()
        self.record = True
        self.env: dict[str, Any] = {}
        self.classes: dict[str, ClassCtx] = {}
        self.funcs: dict[str, ast.FunctionDef] = {}
        self._prepared = self._scanned = False
        self._returns: dict[int, Any] = {}

    # -- module level ---------------------------------------------------------------------------------
    def prepare(self) -> None:
        if self._prepared:
            return
        self._prepared = True
        self.bind_imports(self.tree.body, self.env, record=False)
        for st in self.tree.body:
            if isinstance(st, ast.FunctionDef):
                self.funcs[st.name] = st
                self.env[st.name] = PkgFunc(self, st)
        for st in self.tree.body:
            if isinstance(st, ast.ClassDef):
                self.classes[st.name] = self.make_ctx(st, self.env)
                self.env[st.name] = PkgClass(self.classes[st.name])

    def top_value(self, name: str) -> Any:
        self.prepare()
        return self.env.get(name)

    def scan(self) -> None:
        self.prepare()
        if self._scanned:
            return
        self._scanned = True
        self.bind_imports(self.tree.body, {}, record=True)  # the imports themselves are uses
        self.block(self.tree.body, self.env, None)

    def make_ctx(self, node: ast.ClassDef, env: dict[str, Any]) -> ClassCtx:
        ros_base: Chain | None = None
        parent: ClassCtx | None = None
        for b in node.bases:
            v = self.ev(b, env, record=False)
            if isinstance(v, Chain) and ros_base is None:
                ros_base = v
            elif isinstance(v, PkgClass) and parent is None:
                parent = v.ctx
                ros_base = ros_base or v.ctx.ros_base
        own = set(_class_body(DClass("", node.name, node)))
        if parent is not None:
            own |= parent.own
        return ClassCtx(self, node, ros_base, parent, own)

    def bind_imports(self, body: list[ast.stmt], env: dict[str, Any], record: bool) -> None:
        """The imports of one scope (not those of the functions inside it), bound in ``env``."""
        for st in _scope_statements(body):
            if isinstance(st, ast.Import):
                for a in st.names:
                    parts = a.name.split(".")
                    if is_ros(a.name):
                        chain = Chain(self.path, parts[0], at=st.lineno)
                        for p in parts[1:]:
                            chain = chain.add(Step("attr", p, line=st.lineno))
                        if record:
                            self.uses.add(chain)
                        env[a.asname or parts[0]] = chain if a.asname else Chain(self.path, parts[0], at=st.lineno)
                    else:
                        env[a.asname or parts[0]] = self.project.module_value(a.name if a.asname else parts[0], None)
            elif isinstance(st, ast.ImportFrom) and st.module and not st.level:
                for a in st.names:
                    if is_ros(st.module):
                        chain = Chain(self.path, st.module, (Step("attr", a.name, line=st.lineno),), st.lineno)
                        if record:
                            self.uses.add(chain)
                        env[a.asname or a.name] = chain
                    else:
                        env[a.asname or a.name] = self.project.module_value(st.module, a.name)

    # -- statements -----------------------------------------------------------------------------------
    def block(self, body: list[ast.stmt], env: dict[str, Any], ctx: ClassCtx | None) -> None:
        """Statements in order; the functions defined in the block afterwards, seeing its final names."""
        later: list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, ClassCtx | None]] = []
        self._statements(body, env, ctx, later)
        for fn, owner in later:
            self.function(fn, env, owner)

    def _statements(self, body: list[ast.stmt], env: dict[str, Any], ctx: ClassCtx | None, later: list[Any]) -> None:
        for st in body:
            if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for d in st.decorator_list:
                    self.ev(d, env)
                for d in [*st.args.defaults, *st.args.kw_defaults]:
                    if d is not None:
                        self.ev(d, env)
                later.append((st, ctx))
            elif isinstance(st, ast.ClassDef):
                for d in [*st.decorator_list, *st.bases]:
                    self.ev(d, env)
                inner = self.classes.get(st.name) if ctx is None else None
                if inner is None or inner.node is not st:
                    inner = self.make_ctx(st, env)
                env[st.name] = PkgClass(inner)
                if inner.ros_base is not None:
                    for m in st.body:
                        if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)) and not m.name.startswith("__"):
                            self.overrides.add(Override(self.path, m.lineno, inner.ros_base, m.name))
                class_env = dict(env)
                self.block(st.body, class_env, inner)
            elif isinstance(st, ast.Assign):
                v = self.ev(st.value, env)
                for t in st.targets:
                    self.assign(t, st.value, v, env)
            elif isinstance(st, ast.AnnAssign):
                v = self.ev(st.value, env) if st.value is not None else None
                typed = self.annotation(st.annotation, env)
                if isinstance(st.target, ast.Name):
                    if typed is not None or v is not None:
                        env[st.target.id] = typed if typed is not None else v
                    else:
                        env.pop(st.target.id, None)
                else:
                    self.ev(st.target, env)
            elif isinstance(st, ast.With | ast.AsyncWith):
                for item in st.items:
                    v = self.ev(item.context_expr, env)
                    if item.optional_vars is not None:
                        self.assign(item.optional_vars, item.context_expr, v, env)
                self._statements(st.body, env, ctx, later)
            elif isinstance(st, ast.If | ast.While):
                self.ev(st.test, env)
                self._statements(st.body, env, ctx, later)
                self._statements(st.orelse, env, ctx, later)
            elif isinstance(st, ast.For | ast.AsyncFor):
                self.ev(st.iter, env)
                for name in _target_names(st.target):
                    env.pop(name, None)
                self._statements(st.body, env, ctx, later)
                self._statements(st.orelse, env, ctx, later)
            elif isinstance(st, _TRY_NODES):
                self._statements(st.body, env, ctx, later)
                for h in st.handlers:
                    if h.type is not None:
                        self.ev(h.type, env)
                    self._statements(h.body, env, ctx, later)
                self._statements(st.orelse, env, ctx, later)
                self._statements(st.finalbody, env, ctx, later)
            elif isinstance(st, ast.Import | ast.ImportFrom):
                continue  # bound per scope beforehand
            else:
                for child in ast.iter_child_nodes(st):
                    if isinstance(child, ast.expr):
                        self.ev(child, env)

    def assign(self, target: ast.expr, value_node: ast.expr, value: Any, env: dict[str, Any]) -> None:
        if isinstance(target, ast.Name):
            if value is None:
                env.pop(target.id, None)
            else:
                env[target.id] = value
        elif isinstance(target, ast.Tuple | ast.List):
            values = value_node.elts if isinstance(value_node, ast.Tuple | ast.List) else None
            for i, t in enumerate(target.elts):
                if values is not None and len(values) == len(target.elts):
                    self.assign(t, values[i], self.ev(values[i], env, record=False), env)
                else:
                    for name in _target_names(t):
                        env.pop(name, None)
        else:
            self.ev(target, env)

    def function_env(
        self, fn: ast.FunctionDef | ast.AsyncFunctionDef, outer: dict[str, Any], ctx: ClassCtx | None
    ) -> dict[str, Any]:
        env = dict(outer)
        params = [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
        for extra in (fn.args.vararg, fn.args.kwarg):
            if extra is not None:
                env.pop(extra.arg, None)
        decorators = _decorator_names(fn)
        for i, p in enumerate(params):
            env.pop(p.arg, None)
            if i == 0 and ctx is not None and "staticmethod" not in decorators:
                env[p.arg] = PkgClass(ctx) if "classmethod" in decorators else SelfVal(ctx)
                continue
            if p.annotation is not None:
                typed = self.annotation(p.annotation, env)
                if typed is not None:
                    env[p.arg] = typed
        self.bind_imports(fn.body, env, record=self.record)
        return env

    def function(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, outer: dict[str, Any], ctx: ClassCtx | None) -> None:
        env = self.function_env(fn, outer, ctx)
        if ctx is not None:
            env["__method__"] = _Method(ctx)
        if fn.returns is not None:
            self.annotation(fn.returns, env)
        self.block(fn.body, env, None)

    def collect_attr_types(self, ctx: ClassCtx, found: dict[str, Any]) -> None:
        """``self.x = <a ROS object>`` in the class's methods: the type of ``self.x`` (the first seen)."""
        record = self.record
        self.record = False
        try:
            for m in ctx.node.body:
                if not isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                env = self.function_env(m, self.env, ctx)
                for st in _scope_statements(m.body):
                    if isinstance(st, ast.Assign | ast.AnnAssign) and st.value is not None:
                        targets = st.targets if isinstance(st, ast.Assign) else [st.target]
                        for t in targets:
                            self._attr_assign(t, st.value, env, found)
                    if isinstance(st, ast.Assign):
                        for t in st.targets:
                            if isinstance(t, ast.Name):
                                v = self.ev(st.value, env)
                                if v is not None:
                                    env[t.id] = v
        finally:
            self.record = record

    def _attr_assign(self, t: ast.expr, value: ast.expr, env: dict[str, Any], found: dict[str, Any]) -> None:
        if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
            v = self.ev(value, env)
            if v is not None and t.attr not in found:
                found[t.attr] = v
        elif isinstance(t, ast.Tuple) and isinstance(value, ast.Tuple) and len(t.elts) == len(value.elts):
            for a, b in zip(t.elts, value.elts, strict=True):
                self._attr_assign(a, b, env, found)

    # -- expressions ----------------------------------------------------------------------------------
    def annotation(self, ann: ast.expr, env: dict[str, Any]) -> Any:
        if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
            try:
                ann = ast.parse(ann.value, mode="eval").body
            except SyntaxError:
                return None
        if isinstance(ann, ast.BinOp):  # X | None only: a union of types makes no one type evident
            sides = [s for s in (ann.left, ann.right) if not (isinstance(s, ast.Constant) and s.value is None)]
            return self.annotation(sides[0], env) if len(sides) == 1 else None
        if isinstance(ann, ast.Subscript):
            head = ann.value
            name = head.attr if isinstance(head, ast.Attribute) else head.id if isinstance(head, ast.Name) else ""
            if name == "Optional":
                return self.annotation(ann.slice, env)
            return None
        v = self.ev(ann, env, record=False)
        if isinstance(v, Chain):
            return v.add(Step("inst", line=ann.lineno))
        if isinstance(v, PkgClass):
            return PkgInst(v.ctx)
        return None

    def ev(self, node: ast.expr | None, env: dict[str, Any], record: bool = True) -> Any:
        if node is None:
            return None
        keep = record and self.record
        if isinstance(node, ast.Name):
            return env.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.ev(node.value, env, record)
            return self.attribute(base, node.attr, node.lineno, keep)
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id == "super":
                method = env.get("__method__")
                return SelfVal(method.ctx, sup=True) if isinstance(method, _Method) else None
            f = self.ev(node.func, env, record)
            for a in node.args:
                self.ev(a, env, record)
            for k in node.keywords:
                self.ev(k.value, env, record)
            kws = tuple(k.arg for k in node.keywords if k.arg is not None)
            npos = None if any(isinstance(a, ast.Starred) for a in node.args) else len(node.args)
            if isinstance(f, Chain):
                c = f.add(Step("call", kws=kws, npos=npos, line=node.lineno))
                if keep:
                    self.uses.add(c)
                return c
            if isinstance(f, PkgClass):
                return PkgInst(f.ctx)
            if isinstance(f, PkgFunc):
                return f.scanner.returned_module(f.node)
            return None
        if isinstance(node, ast.IfExp):
            self.ev(node.test, env, record)
            a, b = self.ev(node.body, env, record), self.ev(node.orelse, env, record)
            return a if a is not None else b
        if isinstance(node, ast.Lambda):
            inner = dict(env)
            for p in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
                inner.pop(p.arg, None)
            for d in [*node.args.defaults, *node.args.kw_defaults]:
                self.ev(d, env, record)
            self.ev(node.body, inner, record)
            return None
        if isinstance(node, ast.NamedExpr):
            v = self.ev(node.value, env, record)
            if v is not None:
                env[node.target.id] = v
            return v
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            inner = dict(env)
            for gen in node.generators:
                self.ev(gen.iter, inner, record)
                for name in _target_names(gen.target):
                    inner.pop(name, None)
                for cond in gen.ifs:
                    self.ev(cond, inner, record)
            parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            for p in parts:
                self.ev(p, inner, record)
            return None
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.ev(child, env, record)
            elif isinstance(child, ast.keyword | ast.comprehension):
                for sub in ast.iter_child_nodes(child):
                    if isinstance(sub, ast.expr):
                        self.ev(sub, env, record)
        return None

    def attribute(self, base: Any, attr: str, line: int, keep: bool) -> Any:
        step = Step("attr", attr, line=line)
        chain: Chain | None = None
        if isinstance(base, Chain):
            chain = base.add(step)
        elif isinstance(base, SelfVal | PkgInst):
            ctx = base.ctx
            if not (isinstance(base, SelfVal) and base.sup):
                typed = ctx.attr_types().get(attr)
                if typed is not None:
                    return typed
                if attr in ctx.own:
                    return None
            if ctx.ros_base is not None:
                chain = ctx.ros_base.add(Step("inst", line=line)).add(step)
                chain = Chain(self.path, chain.root, chain.steps)
        elif isinstance(base, PkgClass):
            if attr in base.ctx.own or base.ctx.ros_base is None:
                return None
            chain = Chain(self.path, base.ctx.ros_base.root, base.ctx.ros_base.steps).add(step)
        elif isinstance(base, PkgMod):
            return self.project.module_value(base.name, attr)
        if chain is not None and keep:
            self.uses.add(chain)
        return chain

    def returned_module(self, fn: ast.FunctionDef) -> Any:
        """A package function that returns a ROS module (``optional.message_filters()``): that module."""
        key = id(fn)
        if key in self._returns:
            return self._returns[key]
        self._returns[key] = None  # recursion guard
        self.prepare()
        record = self.record
        self.record = False
        try:
            env = self.function_env(fn, self.env, None)
            found: Any = None
            for st in _scope_statements(fn.body):
                if isinstance(st, ast.Assign | ast.AnnAssign) and st.value is not None:
                    v = self.ev(st.value, env)
                    targets = st.targets if isinstance(st, ast.Assign) else [st.target]
                    for t in targets:
                        if isinstance(t, ast.Name) and v is not None:
                            env[t.id] = v
                elif isinstance(st, ast.Return) and st.value is not None:
                    v = self.ev(st.value, env)
                    if isinstance(v, Chain) and (not v.steps or v.steps[-1].kind == "attr"):
                        found = found or v
        finally:
            self.record = record
        if isinstance(found, Chain):
            found = Chain(found.file, found.root, found.steps)
        self._returns[key] = found
        return found


@dataclass(frozen=True)
class _Method:
    """Marks a method's statements (for super())."""

    ctx: ClassCtx


def _scope_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements of one scope, inside if/try/with/for blocks, not inside nested functions or classes."""
    for st in body:
        yield st
        if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for block in ("body", "orelse", "finalbody"):
            yield from _scope_statements(getattr(st, block, []))
        for h in getattr(st, "handlers", []):
            yield from _scope_statements(h.body)


# -- the check --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    spelled: str
    why: str
    unverifiable: bool

    def __str__(self) -> str:
        kind = "UNVERIFIABLE (not allow-listed)" if self.unverifiable else "MISSING"
        return f"{self.file}:{self.line}: {self.spelled}: {kind}: {self.why}"


def check(
    distro: Distro, chains: Iterable[Chain], overrides: Iterable[Override], allowed: dict[str, str]
) -> tuple[list[Problem], set[str]]:
    """Problems (missing names, keywords, overrides; unverifiable uses not in ``allowed``) and the
    allow-list entries that were needed."""
    problems: set[Problem] = set()
    used: set[str] = set()
    for chain in sorted(chains, key=lambda c: (c.file, c.line, c.spelled())):
        if not distro.covers(chain.root):
            continue
        v: Result = DMod(chain.root) if distro.module(chain.root) else Missing(f"module {chain.root} does not exist")
        if isinstance(v, Missing):
            problems.add(Problem(chain.file, chain.at, chain.root, v.why, False))
            continue
        for i, step in enumerate(chain.steps):
            spelled = chain.spelled(i + 1)
            if step.kind == "attr":
                r = distro.getattr(v, step.name) if not isinstance(v, Missing | Unknown) else v
            elif step.kind == "inst":
                r = DInst(v) if isinstance(v, DClass) else v
            else:
                for kw, p in distro.check_call(v, step.kws, step.npos):
                    where = f"{chain.spelled(i)}({kw}=)" if kw else spelled
                    _report(problems, used, allowed, chain.file, step.line, where, p)
                r = _call_result(distro, v)
            if isinstance(r, Missing | Unknown):
                _report(problems, used, allowed, chain.file, step.line, spelled, r)
                break
            if r is None:
                break
            v = r
    for o in overrides:
        if not distro.covers(o.base.root) or distro.reference is None:
            continue
        ref_base = _resolve_chain(distro.reference, o.base)
        if not isinstance(ref_base, DClass) or not isinstance(distro.reference.member(ref_base, o.name), DFunc):
            continue  # not an override: the package's own method
        base = _resolve_chain(distro, o.base)
        spelled = f"{o.base.spelled()}.{o.name} (overridden)"
        if not isinstance(base, DClass):
            continue  # the base itself is reported by the chains
        r = distro.member(base, o.name)
        if isinstance(r, Missing):
            r = Missing(f"the package overrides {o.name}, which {distro.name}'s {base.path} does not have")
        if isinstance(r, Missing | Unknown):
            _report(problems, used, allowed, o.file, o.line, spelled, r)
    return sorted(problems, key=lambda p: (p.file, p.line, p.spelled)), used


def _call_result(distro: Distro, v: Result) -> Value | None:
    if isinstance(v, DClass):
        return DInst(v)
    if isinstance(v, DFunc):
        return distro.returns(v)
    return None


def _resolve_chain(distro: Distro, chain: Chain) -> Result | None:
    if not distro.covers(chain.root) or distro.module(chain.root) is None:
        return None
    v: Result = DMod(chain.root)
    for s in chain.steps:
        if isinstance(v, Missing | Unknown):
            return v
        if s.kind == "attr":
            v = distro.getattr(v, s.name)
        elif s.kind == "inst":
            v = DInst(v) if isinstance(v, DClass) else v
        else:
            r = _call_result(distro, v)
            if r is None:
                return None
            v = r
    return v


def _report(
    problems: set[Problem], used: set[str], allowed: dict[str, str], file: str, line: int, spelled: str, r: Any
) -> None:
    if isinstance(r, Unknown):
        if r.absent:
            return  # a package this distribution's sources lack (rclpy on Jazzy): not checked here
        if spelled in allowed:
            used.add(spelled)
            return
    problems.add(Problem(file, line, spelled, r.why, isinstance(r, Unknown)))


# -- sources ----------------------------------------------------------------------------------------


def package_files(repo: Path) -> tuple[dict[str, str], dict[str, str]]:
    """bevfusion_ros/, launch/*.py and test/: path -> text, and module name -> path."""
    files: dict[str, str] = {}
    modules: dict[str, str] = {}
    for p in sorted(
        [*(repo / "bevfusion_ros").rglob("*.py"), *(repo / "launch").glob("*.py"), *(repo / "test").rglob("*.py")]
    ):
        rel = p.relative_to(repo)
        files[str(rel)] = p.read_text()
        parts = list(rel.with_suffix("").parts)
        if parts[0] == "test":
            parts = parts[1:]
        if parts and parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            modules[".".join(parts)] = str(rel)
    return files, modules


def scan_sources(files: dict[str, str], modules: dict[str, str] | None = None) -> tuple[set[Chain], set[Override]]:
    return Project(files, modules).uses()
