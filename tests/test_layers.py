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


# The trainer's floors, lowest first (docs/architecture.md, "The trainer"): a module imports only its own
# floor and the floors below it. The commands and their parsers are the top floor.
TRAINER_FLOORS = (
    ("text", ("trainer.text",)),
    ("modeling", ("trainer.modeling",)),
    ("checkpoints", ("trainer.checkpoints",)),
    ("core", ("trainer.core",)),
    ("evaluation", ("trainer.evaluation",)),
    ("export", ("trainer.export",)),
    ("experiments", ("trainer.experiments",)),
    ("plan", ("trainer.plan",)),
    ("launch", ("trainer.launch",)),
    ("commands", tuple(f"trainer.{c}" for c in ("cli", "task", "export_tfhub", "convert_checkpoint", "evaluate",
                                                "similarity", "submit"))),
)


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules_imported(path: pathlib.Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``path`` imports: ``from P import m`` imports the module ``P.m``
    where there is one, else ``P`` (for a name ``P`` defines)."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in known:
                    out.add(full)
                elif base in known:
                    out.add(base)
    return out


def _graph(*folders: str) -> dict[str, set[str]]:
    """Module -> the modules of ``folders`` it imports (function-local imports included: a circle held
    together by an import inside a function is still a circle)."""
    files = {_module_name(p): p for folder in folders for p in (ROOT / folder).rglob("*.py")}
    known = set(files)
    return {name: _modules_imported(path, known) - {name} for name, path in files.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("folder", ["trainer", "transforms", "specs", "pipelines"])
def test_no_import_circle(folder):
    assert _circles(_graph(folder)) == []


def _floor(module: str) -> int:
    for level, (_, prefixes) in enumerate(TRAINER_FLOORS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    raise AssertionError(f"{module} is on no floor of TRAINER_FLOORS: add it to one")


def test_every_trainer_module_is_on_a_floor():
    for module in _graph("trainer"):
        if module != "trainer":
            _floor(module)


def test_a_trainer_floor_imports_only_the_floors_below_it():
    upward = sorted(f"{m} ({TRAINER_FLOORS[_floor(m)][0]}) imports {i} ({TRAINER_FLOORS[_floor(i)][0]})"
                    for m, imported in _graph("trainer").items() if m != "trainer"
                    for i in imported if i != "trainer" and _floor(i) > _floor(m))
    assert upward == []


def test_the_data_side_imports_only_the_trainers_text_floor():
    # transforms/translation/tft.py tokenises inside a tensorflow-transform graph with the trainer's
    # own tokenisation: trainer/text is the one trainer floor the data side may use
    reached = sorted(f"{path.relative_to(ROOT)}: {name}" for folder in ("transforms", "pipelines")
                     for path in (ROOT / folder).rglob("*.py") for name in _imports(path)
                     if name.startswith("trainer") and not name.startswith("trainer.text"))
    assert reached == []
