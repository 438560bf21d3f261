"""The house's layers, read from the import statements (docs/architecture.md, "Layers"): each layer
imports only the layers below it, so a job package never reaches into another job's, the shared core
knows no job, and the formats and text rules load without Beam or TensorFlow's trainer."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
JOBS = ("dedup", "finetune", "pretraining", "stackexchange", "translation", "vocab")


def _imports(path: pathlib.Path) -> list[str]:
    """Absolute module names ``path`` imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names += [module] + [f"{module}.{a.name}" for a in node.names]
    return names


def _offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{path.relative_to(ROOT)}: {name}" for path in (ROOT / folder).rglob("*.py")
                  for name in _imports(path) if name.startswith(forbidden))


@pytest.mark.parametrize("folder, forbidden", [
    # formats and the text rules load anywhere: no Beam, no trainer, no job
    ("specs", ("apache_beam", "pipelines", "transforms", "trainer")),
    ("transforms/text", ("apache_beam", "pipelines", "trainer", *(f"transforms.{j}" for j in JOBS))),
    # the shared core knows no job and no command, and reads command lines without the trainer
    # (specs.command_line is the policy both sides share)
    ("transforms/core", ("pipelines", "trainer", *(f"transforms.{j}" for j in JOBS), "transforms.text")),
    # the trainer runs without Beam and without the data side
    ("trainer", ("apache_beam", "pipelines", "transforms")),
])
def test_a_layer_imports_only_the_layers_below_it(folder, forbidden):
    assert _offenders(folder, forbidden) == []


@pytest.mark.parametrize("job", [j for j in JOBS if (ROOT / "transforms" / j).is_dir()])
def test_a_job_package_imports_no_other_job_package(job):
    others = tuple(f"transforms.{j}" for j in JOBS if j != job)
    # translation and stackexchange reuse dedup's public transforms (Decontaminate, ExactDedup):
    # dedup is the one job that is also a library, imported through its package's public names
    allowed = ("transforms.dedup",) if job in ("translation", "stackexchange", "finetune") else ()
    assert [o for o in _offenders(f"transforms/{job}", others) if not o.split(": ")[1].startswith(allowed)] == []
