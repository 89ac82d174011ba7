"""The house rules of /work/shared/ARCHITECTURE.md ("Imports point one way"), checked on the
source: every file under python/inferd/ is parsed (nothing of the package is imported), and
each import, at any depth (in functions and under ``if TYPE_CHECKING`` too), is resolved to
an absolute module name.

- the engine side (all but server/, client/, cli.py and the generated v1/ and oip/) never
  imports grpc (grpc, grpc_*, generated *_pb2_grpc) nor inferd.server;
- a module under workflows/ never imports a public workflow module other than itself (the
  private helpers, ``_params``, ``_remote``, ``_loading``, ..., are shared);
- the client imports from the package only ``_proto``, ``errors``, the generated code and
  itself (grpc it may: like server/, it is a transport front);
- no hand-written Python file under python/, tests/, benches/, service/ is over 450 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "python"
PACKAGE = SOURCE / "inferd"
GENERATED = ("v1", "oip")  # `make proto` writes these
MAX_LINES = 450


def module_name(path: Path) -> str:
    """``python/inferd/server/app.py`` -> ``inferd.server.app`` (a package: its __init__)."""
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(module: str) -> bool:
    return (SOURCE.joinpath(*module.split(".")) / "__init__.py").is_file()


def imports_of(source: str, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, absolute module) for each import in ``source``, the text of ``module``. ``from M
    import a`` names M, and M.a too where M is a package (a may be a submodule: ``from . import
    server``)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if node.module:
                yield node.lineno, target
            if not node.module or _is_package(target):
                for alias in node.names:
                    yield node.lineno, f"{target}.{alias.name}"


def _files() -> list[Path]:
    return sorted(
        path
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] not in GENERATED and "__pycache__" not in path.parts
    )


def _imports() -> Iterator[tuple[Path, int, str]]:
    for path in _files():
        name = module_name(path)
        for line, target in imports_of(path.read_text(), name, path.name == "__init__.py"):
            yield path, line, target


def _within(target: str, module: str) -> bool:
    return target == module or target.startswith(module + ".")


def _report(rule: str, offences: list[tuple[Path, int, str]]) -> str:
    lines = "\n".join(f"  {path.relative_to(ROOT)}:{line}: {target}" for path, line, target in sorted(set(offences)))
    return f"{rule} ({len(set(offences))}):\n{lines}"


def _engine_side(path: Path) -> bool:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] not in ("server", "client", *GENERATED) and relative != Path("cli.py")


def _grpc(target: str) -> bool:
    top = target.split(".")[0]
    return top == "grpc" or top.startswith("grpc_") or target.rpartition(".")[2].endswith("_pb2_grpc")


def test_the_engine_side_imports_neither_grpc_nor_the_server() -> None:
    offences = [
        (path, line, target)
        for path, line, target in _imports()
        if _engine_side(path) and (_grpc(target) or _within(target, "inferd.server"))
    ]
    if offences:
        pytest.fail(_report("the engine side imports grpc or inferd.server", offences), pytrace=False)


def test_workflows_do_not_import_each_other() -> None:
    folder = PACKAGE / "workflows"
    public = {f"inferd.workflows.{path.stem}" for path in folder.glob("*.py") if not path.name.startswith("_")}
    offences = [
        (path, line, target)
        for path, line, target in _imports()
        if path.parent == folder
        for other in public
        if other != module_name(path) and _within(target, other)
    ]
    if offences:
        pytest.fail(_report("a workflow module imports another workflow module", offences), pytrace=False)


CLIENT_MAY_IMPORT = ("inferd._proto", "inferd.errors", "inferd.v1", "inferd.oip", "inferd.client")


def test_the_client_imports_only_the_wire_code() -> None:
    offences = [
        (path, line, target)
        for path, line, target in _imports()
        if path.relative_to(PACKAGE).parts[0] == "client"
        and _within(target, "inferd")
        and target != "inferd"  # `from .. import _proto` names the package, then _proto
        and not any(_within(target, allowed) for allowed in CLIENT_MAY_IMPORT)
    ]
    if offences:
        pytest.fail(_report("the client imports more of the package than the wire code", offences), pytrace=False)


def _hand_written() -> Iterator[Path]:
    for folder in ("python", "tests", "benches", "service"):
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT).parts
            if "_pb2" in path.name or any(part.startswith(".") or part in ("__pycache__", "site-packages") for part in parts):
                continue
            yield path


def test_no_file_is_over_450_lines() -> None:
    counts = {path: len(path.read_text().splitlines()) for path in _hand_written()}
    offences = sorted(f"  {path.relative_to(ROOT)}: {count} lines" for path, count in counts.items() if count > MAX_LINES)
    assert counts, "no Python files found"
    if offences:
        pytest.fail(f"files over {MAX_LINES} lines ({len(offences)}):\n" + "\n".join(offences), pytrace=False)


@pytest.mark.parametrize(
    ("source", "module", "is_package", "expected"),
    [
        ("import grpc.aio", "inferd.engine", False, ["grpc.aio"]),
        ("from .server import app", "inferd.cli", False, ["inferd.server", "inferd.server.app"]),
        ("from ..server.app import run", "inferd.workflows.echo", False, ["inferd.server.app"]),
        ("from . import server", "inferd.engine", False, ["inferd.server"]),
        ("from .._proto import Blob", "inferd.client", True, ["inferd._proto"]),
        ("from .onnx import X", "inferd.workflows.torch", False, ["inferd.workflows.onnx"]),
        ("def f():\n    from grpc_health.v1 import health_pb2", "inferd.engine", False, ["grpc_health.v1"]),
    ],
)
def test_imports_are_resolved(source: str, module: str, is_package: bool, expected: list[str]) -> None:
    assert [target for _, target in imports_of(source, module, is_package)] == expected
