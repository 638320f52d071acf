"""The layering the README states, checked on every module's imports (lazy ones included):
the core imports nothing above it, connectors import only the core, jobs import connectors
and the core (batch jobs the shared transforms too), and only the application on top (CLI,
demo, local stack, produce) and the benchmark import jobs."""

from __future__ import annotations

import ast
from pathlib import Path

from streamlake.paths import checkout_root

PACKAGES = ("streamlake", "connectors", "streaming", "batch", "bench")
APPLICATION = (
    "streamlake.cli",
    "streamlake.local",
    "streamlake.produce",
    "streamlake.deploy",
    "streamlake.__main__",
)

# What each layer may import from the project, by module prefix.
ALLOWED = {
    "core": ("streamlake",),
    "connectors": ("streamlake", "connectors"),
    # The transforms are shared with batch jobs, so they reach no job module.
    "streaming.transforms": ("streamlake", "connectors", "streaming.transforms"),
    "streaming": ("streamlake", "connectors", "streaming"),
    "batch": ("streamlake", "connectors", "streaming.transforms", "batch"),
    "local, produce and deploy": ("streamlake", "connectors"),
    "cli and bench": PACKAGES,
}


def layer_of(module: str) -> str:
    if module.startswith(("streamlake.cli", "streamlake.__main__", "bench")):
        return "cli and bench"
    if module.startswith(("streamlake.local", "streamlake.produce", "streamlake.deploy")):
        return "local, produce and deploy"
    if module.startswith("streaming.transforms"):
        return "streaming.transforms"
    top = module.split(".")[0]
    return "core" if top == "streamlake" else top


def is_core(module: str) -> bool:
    return module.split(".")[0] == "streamlake" and not module.startswith(APPLICATION)


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def project_imports(path: Path, module: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package upwards
                package = module.split(".")[: -node.level]
                base = ".".join([*package, base] if base else package)
            found.add(base)
            # `from streamlake import cli` imports the module streamlake.cli.
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in PACKAGES}


def modules() -> dict[str, Path]:
    root = checkout_root()
    found = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(p for p in parts if p != "__init__")] = path
    return found


def violations() -> list[str]:
    broken = []
    for module, path in sorted(modules().items()):
        layer = layer_of(module)
        for imported in sorted(project_imports(path, module)):
            allowed = within(imported, ALLOWED[layer])
            if layer in ("core", "connectors") and imported.startswith("streamlake"):
                allowed = is_core(imported)
            if not allowed:
                broken.append(f"{module} ({layer}) imports {imported}")
    return broken


def test_no_module_imports_above_its_layer() -> None:
    assert violations() == []


def test_the_check_sees_a_broken_edge(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text(
        "from streaming.process import process_job\n"
        "import streamlake.local.stack\n"
        "from streamlake import cli\n"
        "from ..kinesis import kind\n"
    )
    imported = project_imports(bad, "connectors.kafka.m")
    assert {"streaming.process", "streamlake.local.stack", "streamlake.cli"} <= imported
    assert "connectors.kinesis.kind" in imported
    assert not within("streaming.process", ALLOWED["connectors"])
    assert not is_core("streamlake.local.stack") and not is_core("streamlake.cli")
    assert layer_of("streamlake.lake.tables") == "core"
    assert layer_of("batch.quarantine_replay") == "batch"
    assert not within("streaming.process", ALLOWED[layer_of("streaming.transforms.check")])
