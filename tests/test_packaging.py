"""The install story stays consistent: pyproject is the one source, conda mirrors it, entry points work."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()


def test_environment_yml_installs_the_project_with_every_extra():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip section"
    editable = [line for line in pip_sections[0] if line.startswith("-e ")]
    assert len(editable) == 1 and editable[0].split()[1].startswith(".")
    extras = set(re.search(r"\[(.*)\]", editable[0]).group(1).split(","))
    assert extras == set(_pyproject()["project"]["optional-dependencies"])


def test_environment_yml_adds_no_python_dependency_of_its_own():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_names = {_requirement_name(d) for d in env["dependencies"] if isinstance(d, str)}
    assert conda_names == {"python", "pip"}, "Python packages belong in pyproject.toml only"
    python_spec = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python_spec.removeprefix("python") == _pyproject()["project"]["requires-python"]


def test_pyproject_declares_the_required_dependencies():
    names = {_requirement_name(r) for r in _pyproject()["project"]["dependencies"]}
    required = {"torch", "torchvision", "numpy", "scikit-learn", "matplotlib", "seaborn", "tqdm", "pyyaml",
                "papermill", "jupyterlab", "ipykernel"}
    assert required <= names
    for requirement in _pyproject()["project"]["dependencies"]:
        if _requirement_name(requirement) in {"torch", "torchvision"}:
            assert "==" not in requirement and "<" not in requirement, "torch/torchvision: lower bounds only"
    test_names = {_requirement_name(r) for r in _pyproject()["project"]["optional-dependencies"]["test"]}
    assert {"pytest", "nbval"} <= test_names


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make demo" in readme
    assert re.search(r"^make test$", ci, flags=re.M)


def test_module_entry_point_and_console_script_work():
    for command in ([sys.executable, "-m", "nbn_tutorial", "--help"],
                    [str(Path(sys.executable).with_name("nbn-tutorial")), "--help"]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "notebooks" in result.stdout and "train" in result.stdout


def _third_party_imports(folder: Path) -> set[str]:
    """Top-level names imported anywhere under ``folder`` that are neither stdlib nor this project."""
    import ast

    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    local = {"nbn_tutorial"} | {path.stem for folder in ("benchmarks", "tests") for path in (ROOT / folder).glob("*.py")}
    return {name for name in names if name not in sys.stdlib_module_names and name not in local}


def _distributions(import_names: set[str]) -> set[str]:
    from importlib.metadata import packages_distributions

    mapping = packages_distributions()
    missing = sorted(name for name in import_names if name not in mapping)
    assert not missing, f"imported but not installed: {missing}"
    return {_requirement_name(mapping[name][0]).replace("_", "-") for name in import_names}


def _declared(*sections: list[str]) -> set[str]:
    return {_requirement_name(r).replace("_", "-") for section in sections for r in section}


def test_every_package_the_code_imports_is_declared():
    project = _pyproject()["project"]
    used = _distributions(_third_party_imports(ROOT / "nbn_tutorial"))
    assert used <= _declared(project["dependencies"]), used - _declared(project["dependencies"])


def test_every_package_the_tests_import_is_declared():
    project = _pyproject()["project"]
    used = _distributions(_third_party_imports(ROOT / "tests"))
    declared = _declared(project["dependencies"], project["optional-dependencies"]["test"])
    assert used <= declared, used - declared
