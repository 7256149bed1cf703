"""Every setting is documented in README.md (as datasette tests its own docs).

The rule: walk `assistant.config.Settings`; a field whose type is a settings section (a pydantic model) is
walked in turn, every other field is a setting. A setting is documented when README.md names its env var,
`ASSISTANT_<SECTION>__<FIELD>` (top-level fields `ASSISTANT_<FIELD>`), as a whole word. A setting whose value
is a dict or a list is written in the TOML file rather than in one env var, so its TOML name counts too:
`section.field` in backticks (`server.widget_tokens`), or for a list of tables its header (`[[sources]]`).
A list of tables also documents each of its keys: every field of the item model appears as `key = ...` under
that header in one of README's ```toml examples.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from assistant.config import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _args(annotation) -> tuple:
    """The members of a union (X | None), else the annotation itself."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(a for a in typing.get_args(annotation) if a is not type(None))
    return (annotation,)


def _section(annotation) -> type[BaseModel] | None:
    [arg, *rest] = _args(annotation)
    return arg if not rest and isinstance(arg, type) and issubclass(arg, BaseModel) else None


def _container(annotation) -> str | None:
    """'dict', 'list' or None; for a list of models, the item model travels along in `_items`."""
    for arg in _args(annotation):
        origin = typing.get_origin(arg) or arg
        if origin in (dict, typing.Mapping):
            return "dict"
        if origin in (list, tuple, set, typing.Sequence):
            return "list"
    return None


def _items(annotation) -> type[BaseModel] | None:
    for arg in _args(annotation):
        if (typing.get_origin(arg) or arg) is list:
            [item] = typing.get_args(arg) or (None,)
            if isinstance(item, type) and issubclass(item, BaseModel):
                return item
    return None


def settings(model: type[BaseModel] = Settings, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], FieldInfo]]:
    """(path, field) for every setting, sections walked."""
    for name, field in model.model_fields.items():
        section = _section(field.annotation)
        if section is not None:
            yield from settings(section, (*path, name))
        else:
            yield (*path, name), field


def env_var(path: tuple[str, ...]) -> str:
    return "ASSISTANT_" + "__".join(path).upper()


def toml_keys(header: str) -> set[str]:
    """Keys written under `header` (e.g. `[[sources]]`) in README's ```toml blocks."""
    keys: set[str] = set()
    for block in re.findall(r"```toml\n(.*?)```", README, re.S):
        current = None
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("["):
                current = line.split("#")[0].strip()
            elif current == header and (m := re.match(r"([A-Za-z_][A-Za-z0-9_]*)\s*=", line)):
                keys.add(m.group(1))
    return keys


def documented(path: tuple[str, ...], field: FieldInfo) -> bool:
    if re.search(rf"\b{env_var(path)}\b", README):
        return True
    if _container(field.annotation) is None:
        return False
    dotted = ".".join(path)
    return f"`{dotted}`" in README or (_items(field.annotation) is not None and f"[[{dotted}]]" in README)


def test_the_walk_finds_sections_fields_and_tables():
    """Guards the rule itself: a few known settings, by the name each is checked under."""
    paths = {path: field for path, field in settings()}
    assert ("data_dir",) in paths and ("store", "host") in paths and ("llm", "prompts_dir") in paths
    assert ("store",) not in paths  # sections are walked, not settings
    assert env_var(("store", "host")) == "ASSISTANT_STORE__HOST" and env_var(("data_dir",)) == "ASSISTANT_DATA_DIR"
    assert _container(paths[("server", "widget_tokens")].annotation) == "dict"
    assert _container(paths[("store", "host")].annotation) is None


def test_every_setting_is_documented_in_readme():
    missing = [env_var(path) for path, field in settings() if not documented(path, field)]
    assert not missing, f"settings missing from README.md (see this test's docstring for the rule): {missing}"


def test_every_list_of_tables_documents_its_keys():
    missing = {}
    for path, field in settings():
        item = _items(field.annotation)
        if item is not None:
            header = f"[[{'.'.join(path)}]]"
            absent = sorted(set(item.model_fields) - toml_keys(header))
            if absent:
                missing[header] = absent
    assert not missing, f"keys of a list of tables missing from README's TOML examples: {missing}"


def test_every_setting_has_a_description():
    """The README table is short; config.py's description is where a setting is explained in full."""
    missing = [".".join(path) for path, field in settings() if not (field.description or "").strip()]
    assert not missing, f"settings without Field(description=...) in assistant/config.py: {missing}"
