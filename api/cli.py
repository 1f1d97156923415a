"""The `railsea` command: a Flask CLI group over `api.create_app`."""

from __future__ import annotations

import gc
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from api import create_app
from api.bulk import import_group
from api.extensions import db
from fixtures import REFERENCE_DIR
from routing.errors import DomainError
from routing.reference import read_reference
from routing.service import load_network
from tracking import containers, jobs
from tracking.access import ADMIN, create_key, revoke_key
from tracking.clock import utcnow
from tracking.evidence import verify_chain


@click.group(cls=FlaskGroup, create_app=create_app, add_default_commands=False, add_version_option=False)
def cli() -> None:
    """RailSea: multimodal freight under 'declare once, inspect once, release once'."""


@cli.command("init")
@with_appcontext
def init_command() -> None:
    """Create or upgrade the schema and load the reference network (idempotent)."""
    # Imported here: Alembic (with Mako, Pygments) costs ~8 MB, and `railsea serve` workers inherit the CLI's imports.
    import migrations

    migrations.upgrade(db.engine)
    reference = read_reference(REFERENCE_DIR)
    with db.new_session() as session:
        result = load_network(session, reference.network, reference.node_extras, reference.leg_sources)
        session.commit()
    click.echo(
        f"schema at head; reference network: {len(reference.network.nodes)} nodes, "
        f"{len(reference.network.legs)} legs ({result.created} created, {result.updated} updated, "
        f"{result.unchanged} unchanged)"
    )


@cli.command("demo")
@with_appcontext
def demo_command() -> None:
    """Load a demo scenario (declarations, transfers, one seal break) for a first look; once."""
    from fixtures.demo import load_demo

    with db.new_session() as session:
        demo = load_demo(session, utcnow())
        session.commit()
    if not demo.loaded:
        click.echo("demo: already loaded")
        return
    path = Path(current_app.instance_path) / "demo-tokens.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(demo.tokens, indent=2) + "\n", encoding="utf-8")
    path.chmod(0o600)
    click.echo(f"demo: loaded; keys (also in {path}):")
    for role, token in demo.tokens.items():
        click.echo(f"  {role:10} {token}")


@cli.group("keys")
def keys_group() -> None:
    """API keys."""


@keys_group.command("create")
@click.option("--role", required=True, type=click.Choice(["admin", "supervisor", "operator", "forwarder"]))
@click.option("--name", required=True)
@click.option("--party", default=None, help="a forwarder's party identifier")
@click.option("--nodes", default="", help="comma-separated node codes (operators)")
@click.option("--offices", default="", help="comma-separated customs offices (supervisors)")
@with_appcontext
def keys_create(role: str, name: str, party: str | None, nodes: str, offices: str) -> None:
    """Create a key and print its token, alone, on stdout."""
    with db.new_session() as session:
        try:
            _, token = create_key(
                session, name=name, role=role, party=party, nodes=_split(nodes), offices=_split(offices)
            )
        except DomainError as exc:
            details = "; ".join(f"{k}: {', '.join(v)}" for k, v in exc.errors.items())
            raise click.ClickException(f"{exc.detail} {details}".strip()) from exc
        session.commit()
    click.echo(token)


@keys_group.command("revoke")
@click.argument("key_id", type=int)
@with_appcontext
def keys_revoke(key_id: int) -> None:
    """Revoke a key: refused by every API worker within RAILSEA_AUTH_CACHE_S (1 s by default)."""
    with db.new_session() as session:
        try:
            revoke_key(session, key_id, utcnow())
        except DomainError as exc:
            raise click.ClickException(exc.detail) from exc
        session.commit()
    click.echo(f"key {key_id} revoked")


@cli.command("scheduler")
@with_appcontext
def scheduler_command() -> None:
    """The periodic-job process (one per deployment; a second one on PostGIS does no harm)."""
    from tracking.scheduler import build

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # APScheduler logs every run at INFO; RailSea logs the runs that raised something.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    click.echo(f"scheduler: jobs {', '.join(sorted(jobs.JOBS))}")
    build(lambda: db.new_session(app=app)).start()


@cli.group("jobs")
def jobs_group() -> None:
    """Periodic jobs."""


@jobs_group.command("run")
@click.argument("name")
@with_appcontext
def jobs_run(name: str) -> None:
    """Run one periodic job once, now."""
    if name not in jobs.JOBS:
        raise click.BadParameter(f"one of {', '.join(sorted(jobs.JOBS))}", param_hint="NAME")
    with db.new_session() as session:
        raised = jobs.run(session, name, utcnow())
        session.commit()
    if raised is None:
        click.echo(f"{name}: skipped, another scheduler holds its lock")
    else:
        click.echo(f"{name}: {raised} alerts raised")


@cli.group("evidence")
def evidence_group() -> None:
    """Evidence chains of containers."""


@evidence_group.command("verify")
@click.argument("number", required=False)
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False), help="a saved /evidence response")
@with_appcontext
def evidence_verify(number: str | None, path: str | None) -> None:
    """Recompute a container's chain from its records alone (from the database, or from a saved file)."""
    if (number is None) == (path is None):
        raise click.UsageError("give a container NUMBER or --file, not both")
    if path is not None:
        with open(path, encoding="utf-8") as fh:
            published = json.load(fh)
        entries = published.get("entries", published) if isinstance(published, dict) else published
        label = path
    else:
        assert number is not None
        with db.new_session(write=False) as session:
            try:
                container = containers.get_container(session, ADMIN, number)
            except DomainError as exc:
                raise click.ClickException(exc.detail) from exc
            entries = containers.evidence(session, container)["entries"]
        label = number
    result = verify_chain(entries)
    click.echo(
        f"{label}: {len(entries)} entries, head {result.head or '-'}: "
        + ("valid" if result.valid else f"INVALID at entry {result.first_bad_index}")
    )
    if not result.valid:
        sys.exit(1)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int, help="threads per worker (SSE needs them)")
@with_appcontext
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Production server: gunicorn with threaded workers."""
    from gunicorn.app.base import BaseApplication

    config = {k: v for k, v in current_app.config.items() if k in {"DATABASE_URL", "ADMIN_TOKEN", "REDIS_URL"}}
    # A connection for every thread of a worker, so that none opens its own per request.
    config["DATABASE_POOL_SIZE"] = current_app.config.get("DATABASE_POOL_SIZE") or threads

    class Server(BaseApplication):
        def load_config(self) -> None:
            settings = {
                "bind": f"{host}:{port}",
                "workers": workers,
                "threads": threads,
                "worker_class": "gthread",
                "timeout": 60,
                "graceful_timeout": 10,
                "accesslog": "-",
                # gunicorn's control socket is one path per user: two servers on a host would share it.
                "control_socket_disable": True,
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            # Each worker builds its own app, engine and pool after the fork.
            app = create_app(config)
            # What start-up built lives as long as the worker: kept out of the cyclic collector's full passes,
            # which would otherwise walk it all (some 100 ms, every thread stopped) now and then under load.
            gc.freeze()
            return app

    Server().run()


cli.add_command(import_group)


def main() -> None:
    sys.exit(cli.main(prog_name="railsea"))
