"""``surveillance user``: manage the console's local users."""

from __future__ import annotations

import sys

import click

from surveillance.cli.commands.console import store_url_of


@click.group("user")
def command() -> None:
    """Local users of the compliance console (roles: analyst, supervisor, admin)."""


def _workflow(store: str | None, store_url: str | None):
    from alerts.store import AlertStore
    from alerts.workflow import Workflow

    s = AlertStore(store_url_of(store, store_url))
    s.create_schema()
    return s, Workflow(s.engine)


_store = click.option("--store", default=None, help="Alert store file (SQLite).")
_store_url = click.option("--store-url", default=None, help="Alert store URL [env SURV_STORE_URL].")


@command.command("add")
@click.argument("name")
@click.option(
    "--role", type=click.Choice(["analyst", "supervisor", "admin"]), required=True, help="Role."
)
@_store
@_store_url
def add(name: str, role: str, store: str | None, store_url: str | None) -> None:
    """Add user NAME; the password is asked for (twice), or read from standard input when it
    is not a terminal (one line)."""
    from alerts.workflow import WorkflowError

    if sys.stdin.isatty():
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    s, wf = _workflow(store, store_url)
    try:
        wf.add_user(name, role, password, actor="cli")
    except WorkflowError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        s.close()
    click.echo(f"added {role} {name}")


@command.command("list")
@_store
@_store_url
def list_users(store: str | None, store_url: str | None) -> None:
    """List the users with their role and state."""
    s, wf = _workflow(store, store_url)
    try:
        for u in wf.users():
            click.echo(f"{u['name']}\t{u['role']}\t{'active' if u['active'] else 'inactive'}")
    finally:
        s.close()


@command.command("deactivate")
@click.argument("name")
@_store
@_store_url
def deactivate(name: str, store: str | None, store_url: str | None) -> None:
    """Deactivate user NAME (their sessions end; tokens stop working)."""
    from alerts.workflow import WorkflowError

    s, wf = _workflow(store, store_url)
    try:
        wf.set_active(name, False, actor="cli")
    except WorkflowError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        s.close()
    click.echo(f"deactivated {name}")
