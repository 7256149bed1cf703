"""What every command of the command line shares: the settings of the run, who runs it (for the audit trail)
and the --data-dir option each command accepts after its name."""

from __future__ import annotations

import getpass
import os

import click

from assistant.config import load_settings


def _actor() -> str:
    """Who runs this command, as the audit trail names them: "cli:<login name>"."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name and no passwd entry (a bare container)
        return f"cli:uid {os.getuid()}"


def _settings(ctx: click.Context, **overrides):
    obj = ctx.obj or {}
    settings = load_settings(obj.get("config"), data_dir=obj.get("data_dir"), **overrides)
    _process_threads(settings)
    return settings


def _process_threads(settings) -> None:
    """torch's thread count is the whole process's: set here, at the edge, never by the library."""
    if settings.embedding.backend == "torch" and settings.embedding.threads > 0:
        import torch

        torch.set_num_threads(settings.embedding.threads)


def _data_dir_option(f):
    """Every command also accepts --data-dir after its name."""
    def callback(ctx, param, value):
        if value:
            ctx.find_root().obj["data_dir"] = value
        return value
    return click.option("--data-dir", type=click.Path(file_okay=False), expose_value=False, callback=callback,
                        is_eager=True, help="Where the store lives (env ASSISTANT_DATA_DIR).")(f)
