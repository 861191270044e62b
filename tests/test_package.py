"""The package's public face and its import-time promises."""
import subprocess
import sys


def test_import_fnn_loads_no_optional_or_peer_library():
    code = (
        "import sys, fnn\n"
        "bad = [m for m in ('optax', 'flax', 'equinox', 'haiku', 'torch', 'matplotlib', "
        "'tqdm', 'sklearn', 'mlxtend') if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_no_optax_anywhere_in_the_package():
    import pathlib

    import fnn

    root = pathlib.Path(fnn.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert "import optax" not in text and "from optax" not in text, path


def test_import_fnn_gives_every_module_api_md_names():
    """API.md spells `fnn.train.fit`, `fnn.data.batches`, ...: a bare `import fnn` must do."""
    code = (
        "import fnn\n"
        "for name in ('train.fit', 'train.EarlyStopping', 'train.make_train_step', "
        "'data.batches', 'fused.make_fused_step', 'checkpoint.save', 'optim.adam', "
        "'losses.mse', 'gradcheck.check_grads', 'distributed.make_mesh', 'per_example_grads'):\n"
        "    obj = fnn\n"
        "    for part in name.split('.'):\n"
        "        obj = getattr(obj, part)\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# ---------------------------------------------------------------------------
# the import graph: no cycle, no private name taken from another module
#
# Walked with `ast` over fnn/'s source. Every import counts, those inside functions too
# (a lazy import that closes a cycle is still a cycle between the two ideas; only
# `if TYPE_CHECKING:` blocks, which never run, are left out). `from fnn import x` is an
# edge to the module `fnn.x`, not to the package's `__init__`.

import ast  # noqa: E402
import pathlib  # noqa: E402

import fnn  # noqa: E402

_ROOT = pathlib.Path(fnn.__file__).parent


def _modules() -> dict[str, ast.Module]:
    """Every module of the package by dotted name, parsed."""
    out = {}
    for path in sorted(_ROOT.rglob("*.py")):
        parts = ("fnn", *path.relative_to(_ROOT).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(), str(path))
    return out


def _runtime_nodes(tree: ast.AST):
    """The nodes of `tree` outside `if TYPE_CHECKING:` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _imports(name: str, tree: ast.Module, modules) -> list[tuple[str, str, int]]:
    """`(module imported, name taken or "", line)` for each fnn import in `tree`."""
    package = name if name in modules and _is_package(name) else name.rpartition(".")[0]
    found = []
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == "fnn"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            if base.split(".")[0] != "fnn":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub, "", node.lineno) if sub in modules
                             else (base, alias.name, node.lineno))
    return found


def _is_package(name: str) -> bool:
    return (_ROOT.joinpath(*name.split(".")[1:]) / "__init__.py").exists()


def test_no_import_cycle_among_fnn_modules():
    modules = _modules()
    graph = {name: sorted({m for m, _, _ in _imports(name, tree, modules)
                           if m in modules and m != name})
             for name, tree in modules.items()}
    cycles, state = [], {}   # state: 1 on the DFS stack, 2 done

    def visit(node, path):
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _private(attr: str) -> bool:
    return attr.startswith("_") and not (attr.startswith("__") and attr.endswith("__"))


def test_no_private_cross_module_import():
    """`from fnn.x import _y` takes a private name of another module (private *modules*,
    such as `fnn._checks` or `fnn.layers._fast_conv`, are the shared internals and may be
    imported, their public names used); so does `x._y` on a module bound by an import."""
    modules = _modules()
    found = []
    for name, tree in modules.items():
        bound = {}   # local name -> the fnn module it is bound to
        for module, taken, line in _imports(name, tree, modules):
            if taken and _private(taken):
                found.append(f"{name}:{line} from {module} import {taken}")
        for node in _runtime_nodes(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "fnn":
                        bound[a.asname or a.name.split(".")[0]] = a.asname and a.name or "fnn"
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fnn"):
                for a in node.names:
                    if f"{node.module}.{a.name}" in modules:
                        bound[a.asname or a.name] = f"{node.module}.{a.name}"
        for node in _runtime_nodes(tree):
            if not isinstance(node, ast.Attribute):
                continue
            chain, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                chain.insert(0, value.attr)
                value = value.value
            if not (isinstance(value, ast.Name) and value.id in bound):
                continue
            module = bound[value.id]
            for attr in chain:           # follow submodules, stop at the first other name
                if f"{module}.{attr}" in modules:
                    module = f"{module}.{attr}"
                    continue
                if _private(attr) and module != name:
                    found.append(f"{name}:{node.lineno} {module}.{attr}")
                break
    assert not sorted(set(found)), "private cross-module imports:\n" + "\n".join(
        sorted(set(found)))


# ---------------------------------------------------------------------------
# clean namespaces (issue 29, point 7): every public module has `__all__`, its star-import
# gives exactly those names, and they are fnn's own (no `np`, `jax`, `os`, typing names)

import importlib  # noqa: E402
import pkgutil  # noqa: E402
import types  # noqa: E402

import pytest  # noqa: E402

_STRAY = {"np", "jax", "jnp", "os", "sys", "math", "time", "json", "functools", "collections",
          "annotations", "Any", "Callable", "NamedTuple", "Iterable", "Mapping", "Sequence"}


def _public_module_names() -> list[str]:
    found = {"fnn"} | {info.name for info in pkgutil.walk_packages(fnn.__path__, "fnn.")}
    return sorted(n for n in found if not any(p.startswith("_") for p in n.split(".")))


@pytest.mark.parametrize("name", _public_module_names())
def test_star_import_gives_exactly_the_modules_all(name):
    module = importlib.import_module(name)
    assert isinstance(getattr(module, "__all__", None), list), f"{name} has no __all__"
    assert len(module.__all__) == len(set(module.__all__)), f"{name}.__all__ has duplicates"
    namespace: dict = {}
    exec(f"from {name} import *", namespace)
    del namespace["__builtins__"]
    assert set(namespace) == set(module.__all__)
    assert not set(module.__all__) & _STRAY, f"{name} exports {set(module.__all__) & _STRAY}"
    for public in module.__all__:
        obj = getattr(module, public)
        if isinstance(obj, types.ModuleType):
            assert obj.__name__.startswith("fnn."), f"{name} exports the module {obj.__name__}"
        elif isinstance(obj, (type, types.FunctionType)):
            assert obj.__module__.startswith("fnn"), f"{name}.{public} is {obj.__module__}'s"
    defined = [n for n, obj in vars(module).items()
               if not n.startswith("_") and isinstance(obj, (type, types.FunctionType))
               and obj.__module__ == name]
    assert not set(defined) - set(module.__all__), (
        f"{name} defines {sorted(set(defined) - set(module.__all__))} outside its __all__")
