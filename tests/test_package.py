"""The package as a user installs it: honest dependencies, and a wheel that works outside the source checkout.

The wheel is built from a copy of the work tree (`pip wheel --no-deps --no-build-isolation`, no network) and
installed with `--no-deps --no-index` into a temporary venv whose only view of the dependencies is a .pth line
naming this venv's site-packages (a path line: the .pth files there, among them the editable install's finder,
are not run). The installed `assistant` command then runs from an empty temporary directory, so neither the
checkout nor its editable install can be imported.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tests.support.net import free_port
from tests.support.paths import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

# Declared distributions that no `import` names: pytest-timeout is a pytest plugin (pyproject's `timeout`), the
# types-* packages are stubs mypy reads (`make lint`).
PLUGINS = {"pytest-timeout", "pytest-xdist", "types-lxml", "types-python-dateutil", "types-tqdm"}

# Top-level work-tree entries a wheel build never reads (and the venv, VCS and build leftovers).
NOT_SOURCE = {".venv", ".git", ".pytest_cache", "build", "dist", "data", ".data", "corpus", "docs", "bench", "tests"}

ARTICLE = """---
title: Ferry to Orrin Island resumes after the Kestrel storm
source: Vellmar Gazette
published_at: 2026-02-03
url: https://vellmar.example/harbour/orrin-ferry-resumes
---
Ferry to Orrin Island resumes after the Kestrel storm

The ferry between Kestrel Point and Orrin Island will resume service on Monday, the Vellmar harbour office said,
after the storm damaged the landing pier last week.

Harbour master Tomas Quell said the repaired pier passed its safety inspection on Saturday.
"""
QUESTION = "When will the ferry to Orrin Island resume service?"
REPLY = "The ferry between Kestrel Point and Orrin Island will resume service on Monday [1]."


def _dist(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(requirements: list[str]) -> set[str]:
    return {_dist(re.match(r"[A-Za-z0-9._-]+", r).group()) for r in requirements}


def _imports(folder: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Distributions imported by the .py files under `folder`: (required, optional), each name -> files.

    Optional means inside a `try` whose handler catches ImportError (an extra's feature). `pytest.importorskip`
    counts as an optional import. Standard library and the repository's own modules are left out (bench/
    scripts import helpers from tests/).
    """
    local = {p.stem for d in ("assistant", "tests", "bench") for p in (ROOT / d).rglob("*.py")} | {"assistant", "tests", "bench"}
    names = packages_distributions()
    required: dict[str, set[str]] = {}
    optional: dict[str, set[str]] = {}

    def add(module: str, path: Path, guarded: bool) -> None:
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top in local:
            return
        for dist in names.get(top, [f"<{top}: no installed distribution>"]):
            (optional if guarded else required).setdefault(_dist(dist), set()).add(str(path.relative_to(ROOT)))

    def visit(node: ast.AST, path: Path, guarded: bool) -> None:
        if isinstance(node, ast.Try) and any(
                h.type is not None and "ImportError" in ast.unparse(h.type) for h in node.handlers):
            for child in node.body:
                visit(child, path, True)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, path, guarded)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, path, guarded)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            add(node.module, path, guarded)
        elif (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("importorskip") and node.args
              and isinstance(node.args[0], ast.Constant)):
            add(node.args[0].value, path, True)
        for child in ast.iter_child_nodes(node):
            visit(child, path, guarded)

    for path in sorted(folder.rglob("*.py")):
        visit(ast.parse(path.read_text(encoding="utf-8")), path, False)
    return required, optional


def test_dependencies_are_what_the_code_imports():
    """assistant/ imports only declared distributions and uses each one; tests/ and bench/ need only their extra."""
    core = _declared(PYPROJECT["project"]["dependencies"])
    extras = {name: _declared(reqs) for name, reqs in PYPROJECT["project"]["optional-dependencies"].items()}
    every_extra = set().union(*extras.values())
    problems = []

    required, optional = _imports(ROOT / "assistant")
    if undeclared := {d: sorted(f) for d, f in required.items() if d not in core}:
        problems.append(f"assistant/ imports distributions missing from [project] dependencies: {undeclared}")
    if undeclared := {d: sorted(f) for d, f in optional.items() if d not in core | every_extra}:
        problems.append(f"assistant/ optionally imports distributions no extra declares: {undeclared}")
    if unused := core - set(required) - set(optional):
        problems.append(f"[project] dependencies that assistant/ never imports: {sorted(unused)}")

    for folder, extra in (("tests", "dev"), ("bench", "bench")):
        required, optional = _imports(ROOT / folder)
        if undeclared := {d: sorted(f) for d, f in required.items() if d not in core | extras[extra]}:
            problems.append(f"{folder}/ imports distributions missing from the {extra} extra: {undeclared}")
        if unused := extras[extra] - set(required) - set(optional) - PLUGINS:
            problems.append(f"the {extra} extra declares distributions {folder}/ never imports: {sorted(unused)}")
    assert not problems, "\n".join(problems)


def copy_source(dest: Path) -> Path:
    """A copy of the work tree as a build sees it (the checkout itself gets no build/ or egg-info)."""
    dest.mkdir()
    for entry in ROOT.iterdir():
        if entry.name in NOT_SOURCE:
            continue
        if entry.is_dir():
            shutil.copytree(entry, dest / entry.name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif entry.is_file():
            shutil.copy2(entry, dest / entry.name)
    return dest


def make_venv(path: Path) -> Path:
    """A venv without pip whose dependencies (pip included) are this venv's site-packages; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=60)
    python = path / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "zz_dependencies.pth").write_text("".join(f"{p}\n" for p in ours), encoding="utf-8")
    return python


def pip_install(python: Path, *args: str, cwd: Path) -> None:
    """`pip install` offline into that venv, leaving this venv's editable install (seen through the .pth) alone."""
    editable = sorted(Path(sysconfig.get_paths()["purelib"]).glob("newsroom_assistant-*.dist-info"))
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--ignore-installed",
                    "--no-build-isolation", "--no-warn-script-location", *args], check=True, timeout=180, cwd=cwd)
    assert sorted(Path(sysconfig.get_paths()["purelib"]).glob("newsroom_assistant-*.dist-info")) == editable


PROBE = """import json, assistant, assistant.answering.prompts as p
names = ['answer_system', 'answer_user', 'condense']
print(json.dumps({'file': assistant.__file__, 'dir': str(p.PROMPTS_DIR),
                  'prompts': {n: str(p.load_prompt(n).path) for n in names}}))"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the work tree."""
    src = copy_source(tmp_path_factory.mktemp("src") / "newsroom-assistant")
    out = src.parent / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--wheel-dir", str(out), str(src)], check=True, timeout=180, cwd=src.parent)
    [built] = out.glob("newsroom_assistant-*.whl")
    return built


@pytest.mark.subprocess
def test_wheel_carries_the_prompts_the_widget_and_every_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    with zipfile.ZipFile(wheel) as whl:
        for prompt in sorted((ROOT / "prompts").iterdir()):
            assert whl.read(f"assistant/prompt_files/{prompt.name}") == prompt.read_bytes()
        for asset in sorted((ROOT / "assistant" / "web" / "widget").iterdir()):
            if asset.is_file():
                assert whl.read(f"assistant/web/widget/{asset.name}") == asset.read_bytes()
    # A subpackage left out of pyproject's explicit package list would be missing here.
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "assistant").rglob("*.py")}
    assert modules <= names, f"not in the wheel: {sorted(modules - names)}"
    assert {"assistant/prompt_files/answer_system.md", "assistant/prompt_files/answer_user.md",
            "assistant/prompt_files/condense.md", "assistant/web/widget/widget.js"} <= names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "corpus/", "prompts/"))]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A temporary venv with the wheel installed; yields (venv, run) where run(args, **env) runs in an empty cwd."""
    base = tmp_path_factory.mktemp("installed")
    venv, cwd = base / "venv", base / "cwd"
    cwd.mkdir()
    pip_install(make_venv(venv), str(wheel), cwd=cwd)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}")

    def run(args: list[str], timeout: float = 240, **settings: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=cwd, env={**env, **settings}, capture_output=True, text=True,
                              timeout=timeout)

    yield venv, run


@pytest.mark.subprocess
def test_installed_package_is_the_wheel_and_finds_its_prompts(installed):
    venv, run = installed
    probe = run([str(venv / "bin" / "python"), "-c", PROBE])
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    package = venv.resolve() / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / \
        "site-packages" / "assistant"
    assert Path(found["file"]).resolve() == package / "__init__.py"
    assert Path(found["dir"]).resolve() == package / "prompt_files"
    for name, path in found["prompts"].items():
        assert Path(path).resolve() == package / "prompt_files" / f"{name}.md"


@pytest.mark.subprocess
def test_editable_install_reads_the_checkouts_prompts(tmp_path):
    """`pip install -e` (what `make setup` does) maps the package onto the checkout: prompts/ is read in place."""
    src = copy_source(tmp_path / "checkout")
    python = make_venv(tmp_path / "venv")
    pip_install(python, "--editable", str(src), cwd=tmp_path)
    probe = subprocess.run([python, "-c", PROBE], cwd=tmp_path / "venv", capture_output=True, text=True, timeout=60,
                           env={k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ASSISTANT_"))})
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert Path(found["file"]).resolve() == src.resolve() / "assistant" / "__init__.py"
    assert Path(found["dir"]).resolve() == src.resolve() / "prompts"
    for name, path in found["prompts"].items():
        assert Path(path).resolve() == src.resolve() / "prompts" / f"{name}.md"


@pytest.fixture(scope="module")
def archive(installed, tmp_path_factory) -> Path:
    """A data dir holding one fictional article, ingested by the installed command."""
    venv, run = installed
    base = tmp_path_factory.mktemp("archive")
    article = base / "orrin-ferry.md"
    article.write_text(ARTICLE, encoding="utf-8")
    ingest = run(["assistant", "ingest", "--json", str(article)], ASSISTANT_DATA_DIR=str(base / "data"))
    assert ingest.returncode == 0, ingest.stderr
    assert json.loads(ingest.stdout)["added"] == 1
    return base / "data"


@pytest.mark.slow
@pytest.mark.subprocess
def test_installed_cli_asks_the_scripted_server_with_the_packaged_prompts(installed, archive, llm):
    venv, run = installed
    llm.enqueue(REPLY)
    ask = run(["assistant", "ask", "--json", "--engine", "openai", QUESTION], ASSISTANT_DATA_DIR=str(archive),
              ASSISTANT_LLM__BASE_URL=llm.base_url, ASSISTANT_LLM__TIMEOUT="10", ASSISTANT_LLM__MAX_RETRIES="0")
    assert ask.returncode == 0, ask.stderr
    answer = json.loads(ask.stdout)
    assert answer["refused"] is False
    assert answer["answer"] == REPLY
    [cited] = answer["citations"]
    assert cited["n"] == 1 and cited["title"] == "Ferry to Orrin Island resumes after the Kestrel storm"
    assert cited["source"] == "Vellmar Gazette" and cited["url"] == "https://vellmar.example/harbour/orrin-ferry-resumes"
    assert "resume service on Monday" in cited["quote"]

    # The model got the packaged prompts: the system prompt verbatim, the user prompt around the passage.
    [request] = llm.history
    system, user = request["messages"]
    assert system == {"role": "system", "content": (ROOT / "prompts" / "answer_system.md").read_text().strip()}
    assert f"Question: {QUESTION}" in user["content"] and "<passage n=\"1\">" in user["content"]


@pytest.mark.slow
@pytest.mark.subprocess
def test_installed_ollama_engine_builds_and_falls_back_when_its_server_is_down(installed, archive):
    """Before the prompts were packaged this exited 1 with ConfigError (prompt file not found)."""
    venv, run = installed
    ask = run(["assistant", "ask", "--engine", "ollama", QUESTION], ASSISTANT_DATA_DIR=str(archive),
              ASSISTANT_LLM__OLLAMA_BASE_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens there
              ASSISTANT_LLM__TIMEOUT="5")
    assert ask.returncode == 0, ask.stderr
    assert "note:" in ask.stderr  # the model-server notice
    assert "resume service on Monday" in ask.stdout and "Vellmar Gazette" in ask.stdout  # the extractive answer
