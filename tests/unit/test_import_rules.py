"""The layout's import rules (DESIGN.md section 5), checked over chariotd/ with the
standard library's `ast`: every `import`/`from ... import` anywhere in a module, lazy
ones inside functions included (they load the same code in the same process).

- a role (any folder of chariotd/ that is not kernel, ipc, shadow, formats, aws or sim:
  broker_link, watchers, services, provisioning, and jobs or defender when they come)
  never imports another role; what two roles share is an IPC message kind (ipc/) or a
  kernel piece;
- the pure packages shadow/, formats/ and aws/ import only each other and the standard
  library;
- kernel/ and ipc/ import no role;
- cli.py is imported only by the entry point (main.py);
- nothing in the daemon imports sim/, and sim/ imports no role;
- nothing but main.py imports a role (the supervisor, config, certstore neither);
- the top level holds only main, cli, config, supervisor and certstore: a role's own
  module lives in its folder.

A failure names each offending import as file:line.
"""

import ast
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest

import chariotd

ROOT = Path(chariotd.__file__).resolve().parent
SHARED = {"kernel", "ipc", "shadow", "formats", "aws", "sim"}
PURE = {"shadow", "formats", "aws"}
ENTRY = {"main"}  # the entry point: the only importer of cli, and of roles outside them
TOP_LEVEL = {"__init__", "__main__", "main", "cli", "config", "supervisor", "certstore"}


def _stdlib() -> set:
    names = getattr(sys, "stdlib_module_names", None)  # Python >= 3.10
    if names is not None:
        return set(names)
    import sysconfig  # Python 3.9: the names in the standard library's directory
    lib = Path(sysconfig.get_paths()["stdlib"])
    found = [p.name for d in (lib, lib / "lib-dynload") if d.is_dir() for p in d.iterdir()]
    return {name.split(".")[0] for name in found} | set(sys.builtin_module_names)


STDLIB = _stdlib() | {"__future__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> Iterator[Tuple[int, str]]:
    """(line, absolute module name) of every import in PATH; `from X import y` yields
    X.y instead of X when y is a module of ours, so `from chariotd import cli` is seen."""
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            submodules = [f"{name}.{alias.name}" for alias in node.names
                          if _is_ours(f"{name}.{alias.name}")]
            for imported in submodules or [name]:
                yield node.lineno, imported


def _is_ours(module: str) -> bool:
    if module.split(".")[0] != "chariotd":
        return False
    path = ROOT.parent.joinpath(*module.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def area(module: str) -> Optional[str]:
    """The folder (or top-level module) of chariotd a module belongs to; None if not ours."""
    parts = module.split(".")
    if parts[0] != "chariotd":
        return None
    return parts[1] if len(parts) > 1 else ""


def is_role(name: Optional[str]) -> bool:
    return bool(name) and (ROOT / name).is_dir() and name not in SHARED


def problem(importer: str, imported: str) -> Optional[str]:
    """Why IMPORTER may not import IMPORTED, or None when it may."""
    src, dst = area(importer), area(imported)
    if dst is None:
        top = imported.split(".")[0]
        if src in PURE and top not in STDLIB:
            return f"pure {src}/ imports {top}, which is not the standard library"
        return None
    if src == dst:
        return None
    if src in PURE and dst not in PURE:
        return f"pure {src}/ imports {imported}"
    if dst == "cli" and src not in ENTRY:
        return "only the entry point (main.py) imports cli"
    if dst == "sim" and src != "sim":
        return "the daemon imports the simulator"
    if is_role(dst) and src not in ENTRY:
        return f"{src or importer} imports the role {dst}"
    return None


def violations() -> List[str]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        importer = module_name(path)
        for line, imported in imports(path):
            why = problem(importer, imported)
            if why:
                found.append(f"{path.relative_to(ROOT.parent)}:{line}: "
                             f"{imported} ({why})")
    return found


def test_the_layout_rules_hold():
    found = violations()
    assert not found, "imports that break DESIGN.md section 5:\n" + "\n".join(found)


def test_the_top_level_holds_only_the_entry_point_and_shared_modules():
    extra = sorted(p.name for p in ROOT.glob("*.py") if p.stem not in TOP_LEVEL)
    assert not extra, f"modules that belong in a folder: {extra}"


@pytest.mark.parametrize("importer, imported", [
    ("chariotd.supervisor", "chariotd.watchers.main"),
    ("chariotd.watchers.messages", "chariotd.broker_link.backoff"),
    ("chariotd.services.main", "chariotd.watchers.message_file"),
    ("chariotd.broker_link.main", "chariotd.provisioning"),
    ("chariotd.shadow.patch", "chariotd.kernel.backoff"),
    ("chariotd.formats.json", "msgpack"),
    ("chariotd.kernel.runtime", "chariotd.cli"),
    ("chariotd.supervisor", "chariotd.cli"),
    ("chariotd.kernel.spawn", "chariotd.services.notify"),
    ("chariotd.ipc.messages", "chariotd.watchers"),
    ("chariotd.supervisor", "chariotd.sim.store"),
    ("chariotd.sim.cloud", "chariotd.broker_link.session"),
])
def test_each_rule_catches_its_break(importer, imported):
    assert problem(importer, imported)


@pytest.mark.parametrize("importer, imported", [
    ("chariotd.main", "chariotd.cli"),
    ("chariotd.main", "chariotd.provisioning.claim"),
    ("chariotd.broker_link.main", "chariotd.kernel.mqtt.session"),
    ("chariotd.services.tunnels", "chariotd.aws.tunnel_request"),
    ("chariotd.formats.json", "chariotd.shadow.values"),
    ("chariotd.sim.shadow.request", "chariotd.shadow.values"),
    ("chariotd.sim.store", "chariotd.kernel.fsutil"),
    ("chariotd.watchers.messages", "json"),
])
def test_what_the_rules_allow(importer, imported):
    assert problem(importer, imported) is None


def test_relative_imports_are_resolved(tmp_path, monkeypatch):
    role = ROOT / "watchers" / "x.py"
    monkeypatch.setattr(Path, "read_text", lambda self: "from ..services import main\n")
    assert (1, "chariotd.services.main") in list(imports(role))
