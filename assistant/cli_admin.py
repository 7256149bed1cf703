"""The administration commands: users (add, list, remove), audit, backup and restore; cli.py registers them
on its one `cli` group."""

from __future__ import annotations

import json

import click

from assistant.cli_common import _actor, _data_dir_option, _settings
from assistant.errors import AssistantError
from assistant.terminal import print_audit


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@_data_dir_option
@click.pass_context
def backup(ctx, file) -> None:
    """Back up the archive (store and state files) to FILE (.jsonl.gz) while it serves and ingests go on."""
    from assistant.ingest.backup import backup as run_backup

    info = run_backup(_settings(ctx), file)
    click.echo(f"backed up {info['articles']} articles ({info['chunks']} chunks, change {info['head'] or 0}) "
               f"to {info['file']}")


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@_data_dir_option
@click.pass_context
def restore(ctx, file) -> None:
    """Load a backup FILE into this data dir's store, then rebuild its keyword index."""
    from assistant.ingest.backup import restore as run_restore

    info = run_restore(_settings(ctx), file, actor=_actor())
    click.echo(f"restored {info['chunks']} chunks; keyword index rebuilt ({info['keyword_index']} chunks)")


@click.group()
def users() -> None:
    """Personal keys: who may read the archive (reader) and change it (admin)."""


def _archive(ctx):
    from assistant.index.archive import Archive

    return Archive(_settings(ctx))


@users.command(name="add")
@click.argument("name")
@click.option("--role", type=click.Choice(["reader", "admin"]), default="reader", show_default=True,
              help="reader: ask, stream, read articles and quotes; admin: also ingest, delete, sources, /metrics.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_data_dir_option
@click.pass_context
def users_add(ctx, name, role, as_json) -> None:
    """Add user NAME and print their new key, once (only its hash is kept)."""
    archive = _archive(ctx)
    key = archive.users.add(name, role)
    archive.audit.record(_actor(), "user.add", name, f"role {role}")
    if as_json:
        click.echo(json.dumps({"name": name, "role": role, "key": key}))
    else:
        click.echo(f"added {name} ({role}); their key, shown only now:\n{key}")


@users.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_data_dir_option
@click.pass_context
def users_list(ctx, as_json) -> None:
    """The users and their roles (never their keys)."""
    found = _archive(ctx).users.all()
    if as_json:
        click.echo(json.dumps({"users": [u.to_json() for u in found]}))
    elif not found:
        click.echo("no users (add one: assistant users add NAME --role reader)")
    else:
        for u in found:
            click.echo(f"{u.name}\t{u.role.value}\t{u.created}")


@users.command(name="remove")
@click.argument("name")
@_data_dir_option
@click.pass_context
def users_remove(ctx, name) -> None:
    """Remove user NAME: their key stops working at the next request, on every worker."""
    archive = _archive(ctx)
    if not archive.users.remove(name):
        raise AssistantError(f"no user named {name!r}", "assistant users list shows who there is")
    archive.audit.record(_actor(), "user.remove", name)
    click.echo(f"removed {name}; their key no longer works")


@click.command()
@click.option("--json", "as_json", is_flag=True, help='Print one JSON object: {"entries": [...]}, newest first.')
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="Show the N most recent entries.")
@_data_dir_option
@click.pass_context
def audit(ctx, as_json, limit) -> None:
    """Who ingested, deleted, restored, added or removed sources (or users), and when; newest first. Questions
    appear only when server.log_questions records them."""
    from assistant.index.archive import Archive

    trail = Archive(_settings(ctx)).audit
    trail.prune()
    print_audit(trail.entries(limit), as_json)
