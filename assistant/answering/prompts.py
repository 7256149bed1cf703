"""Prompt templates for the generative engine, loaded by name from the `prompts/` folder."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from assistant.errors import ConfigError


def default_prompts_dir() -> Path:
    """Where the bundled prompts are: `assistant/prompt_files/` in an installed wheel, else the checkout's `prompts/`.

    The repository keeps the prompts at its top level, where a newsroom edits them; pyproject.toml maps that
    folder onto the package `assistant.prompt_files`, so a wheel carries them inside the package. An editable
    install (or a plain checkout) has no such folder and reads `prompts/` next to `assistant/`.
    """
    packaged = resources.files("assistant") / "prompt_files"
    if packaged.is_dir():
        return Path(str(packaged))  # pip always unpacks wheels, so this is a real folder
    return Path(__file__).resolve().parents[2] / "prompts"


PROMPTS_DIR = default_prompts_dir()

# The {variables} each prompt must contain; a prompt edited without one would silently drop the passages.
REQUIRED: dict[str, tuple[str, ...]] = {
    "answer_system": (),
    "answer_user": ("passages", "question"),
    "condense": ("history", "question"),
}

_VARIABLE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


@dataclass(frozen=True)
class Prompt:
    """One template file; `render` fills its {variables} (other braces are left as they are)."""

    name: str
    path: Path
    template: str

    @property
    def variables(self) -> set[str]:
        return set(_VARIABLE.findall(self.template))

    def render(self, **values: str) -> str:
        """The template with each {name} replaced in one pass (values are never re-scanned)."""
        missing = self.variables - set(values)
        if missing:
            raise ConfigError(f"prompt {self.path} needs values for {sorted(missing)}",
                              "this is a bug in the caller; report it")
        return _VARIABLE.sub(lambda m: values[m.group(1)], self.template)


def load_prompt(name: str, folder: str | Path | None = None) -> Prompt:
    """Read `prompts/<name>.md` and check it contains the {variables} the code fills in.

    Args:
        name: prompt name, e.g. "answer_system".
        folder: where the prompt files live (llm.prompts_dir); default `default_prompts_dir()`.
    """
    base = Path(folder) if folder else PROMPTS_DIR
    path = base / f"{name}.md"
    if not path.is_file():
        raise ConfigError(f"prompt file {path} not found", "restore it from the repository or set llm.prompts_dir")
    template = path.read_text(encoding="utf-8").strip()
    missing = [v for v in REQUIRED.get(name, ()) if "{" + v + "}" not in template]
    if missing:
        raise ConfigError(f"prompt file {path} lacks the variable(s) {', '.join('{' + v + '}' for v in missing)}",
                          "put them back where the passages/question/history belong")
    return Prompt(name, path, template)
