"""dvc.yaml cannot go stale: every stage depends on the code its script imports, and on nothing it does not."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from pipelines.catalog import DATASETS

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("features", "models", "pipelines")  # the in-repo code a stage can import
RESOURCES = {"pipelines/templates"}  # code deps that are read, not imported (report's Jinja templates)
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def module_file(name: str) -> Path | None:
    """The repo file of a dotted module name (a package's __init__.py), or None outside the repo's packages."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def imported(path: Path) -> set[str]:
    """Dotted names a file imports (top level and inside functions; `from a import b` gives a and a.b)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parent = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            stem = ".".join([*parent, node.module] if node.module else parent)
            names.add(stem)
            names.update(f"{stem}.{alias.name}" for alias in node.names)
    return names


@cache
def has_code(path: Path) -> bool:
    """False for a file holding only a docstring (a package marker: editing it changes nothing a stage runs)."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return any(not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)) for n in body)


@cache
def closure(module: str) -> frozenset[Path]:
    """Every repo file a module runs when imported: its own, its imports', transitively, with parent packages."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:i]))
            if path is None or path in seen:
                continue
            seen.add(path)
            todo.extend(imported(path))
    return frozenset(p for p in seen if has_code(p))


def covered(path: Path, deps: list[str]) -> bool:
    """True when path or one of its folders is a dep."""
    rel = path.relative_to(ROOT)
    return any(Path(dep) == rel or Path(dep) in rel.parents for dep in deps)


def suggested(path: Path) -> str:
    """The dep line to add: the package for features/ and models/<sub>/, the file for a pipelines/ module."""
    parts = path.relative_to(ROOT).parts
    if parts[0] == "features":
        return "features"
    if parts[0] in ("models", "pipelines") and len(parts) > 2:
        return "/".join(parts[:2])
    return "/".join(parts)


def script(stage: dict) -> str | None:
    """The module a `python -m pipelines.x` stage runs."""
    words = stage["cmd"].split()
    return words[2] if words[:2] == ["python", "-m"] else None


def code_deps(stage: dict) -> list[str]:
    """The stage's deps inside the code packages."""
    return [d for d in stage.get("deps", []) if Path(d).parts[0] in PACKAGES]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_imported_module_is_a_dep(name):
    stage = STAGES[name]
    deps = code_deps(stage)
    missing = sorted({suggested(p) for p in closure(script(stage)) if not covered(p, deps)})
    assert not missing, f"dvc.yaml stage {name}: add deps {missing} (its script imports them)"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_no_code_dep_is_stale(name):
    stage = STAGES[name]
    files = closure(script(stage))
    stale = [d for d in code_deps(stage) if d not in RESOURCES and not any(covered(p, [d]) for p in files)]
    assert not stale, f"dvc.yaml stage {name}: deps {stale} are not imported by {script(stage)}; remove them"
    assert all((ROOT / d).exists() for d in code_deps(stage)), f"dvc.yaml stage {name}: a dep does not exist"
    deps = stage.get("deps", [])
    assert len(set(deps)) == len(deps), f"dvc.yaml stage {name}: a dep is listed twice"


def test_every_output_is_a_catalog_dataset_of_its_stage():
    by_location = {d.location: d for d in DATASETS.values()}
    for name, stage in STAGES.items():
        for out in [*stage.get("outs", []), *stage.get("metrics", [])]:
            location = next(iter(out)) if isinstance(out, dict) else out
            assert location in by_location, f"dvc.yaml stage {name}: out {location} is not in pipelines/catalog.py"
            assert by_location[location].writer == name, f"{location}: catalog says {by_location[location].writer}"


def test_every_data_dep_is_a_catalog_dataset_or_a_user_input():
    locations = {d.location for d in DATASETS.values()}
    for name, stage in STAGES.items():
        data = [d for d in stage.get("deps", []) if Path(d).parts[0] not in PACKAGES and not d.startswith("${")]
        unknown = [d for d in data if d not in locations]
        assert not unknown, f"dvc.yaml stage {name}: deps {unknown} are neither code nor catalog datasets"


def test_engine_dependent_stages_rerun_when_the_engine_changes():
    for name in ("ingest", "features", "train_churn", "train_clv", "score"):
        assert "engine" in STAGES[name]["params"], f"dvc.yaml stage {name}: add `engine` to its params"


def test_the_closure_follows_imports_inside_functions_and_relative_ones():
    tree = imported(ROOT / "pipelines" / "catalog.py")
    assert "pipelines.io" in tree and "pipelines.spark" in tree  # both imported inside functions
    assert ROOT / "pipelines" / "spark.py" in closure("pipelines.catalog")
    assert not has_code(ROOT / "pipelines" / "__init__.py")


def rewrite(text: str) -> str:
    """dvc.yaml with each stage's code deps replaced by what its script imports (comments of kept lines kept)."""
    out, stage, in_deps, comments = [], None, False, {}
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        dep = stripped[2:].split("#")[0].strip() if stripped.startswith("- ") else ""
        if "#" in stripped and dep:
            comments[(stage, dep)] = "  #" + stripped.split("#", 1)[1]
        header = re.match(r"^  (\w+):", line)
        if header:
            stage, in_deps = header.group(1), False
        elif in_deps and not stripped.startswith("- "):
            in_deps = False
        if stage in STAGES and stripped == "deps:":
            in_deps = True
            out.append(line)
            out.append(f"<<code {stage}>>")
            continue
        if in_deps and Path(dep).parts and Path(dep).parts[0] in PACKAGES:
            continue
        out.append(line)
    result = "".join(out)
    for stage, spec in STAGES.items():
        own = script(spec).replace(".", "/") + ".py"
        wanted = [own] + sorted({suggested(p) for p in closure(script(spec))} - {own},
                                key=lambda d: (not d.startswith(("features", "models")), d))
        wanted += [d for d in code_deps(spec) if d in RESOURCES]
        lines = "".join(f"      - {d}{comments.get((stage, d), '')}\n" for d in wanted)
        result = result.replace(f"<<code {stage}>>", lines)
    return result


if __name__ == "__main__":  # `python tests/unit/test_dvc_deps.py`: rewrite dvc.yaml's code deps from the imports
    target = ROOT / "dvc.yaml"
    target.write_text(rewrite(target.read_text(encoding="utf-8")), encoding="utf-8")
