"""Where a sweep's Optuna study lives, and opening it.

By default the study is SQLite in the sweep directory (SWEEP_DIR/optuna.db): right for one
machine and a local disk. A spec's `study: postgresql://USER@HOST:PORT/DB` keeps it in a
PostgreSQL database instead, which Optuna recommends for studies used from several nodes and
which a sweep in a bucket needs (SQLite cannot live in one); many sweeps can share a database,
each under its own study name. sweep.json records the URL so resume and report find it again.

A URL with a password in it is refused. A command line is visible to every user of the machine
(`ps`) and, for a Ray driver, to every client of the cluster (the job table records the
driver's entrypoint); a spec is copied into the sweep directory. The password comes from where
PostgreSQL users keep it, which libpq reads itself when psycopg connects: PGPASSWORD, or
~/.pgpass (or the file PGPASSFILE names). That is also how a sweep submitted on one machine is
resumed or reported on another.
"""
from __future__ import annotations

from pathlib import Path

from gansweep.analysis import layout
from gansweep.analysis.records import SweepMeta
from gansweep.trainers.errors import ConfigError

DEFAULT = "sqlite"  # `study: sqlite`, or no `study`: the SQLite file in the sweep directory
BACKENDS = ("postgresql",)
FORM = "postgresql://USER@HOST:PORT/DATABASE"
WHERE_PASSWORDS_GO = ("give the password in PGPASSWORD or in ~/.pgpass (or the file PGPASSFILE "
                      "names), as for psql")


def bare(value: str, where: str = "study") -> str:
    """A database URL gansweep can use and may write down: one without a password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except ArgumentError:
        url = None
    if url is None or url.get_backend_name() not in BACKENDS or not url.database:
        raise ConfigError(f"{where}: {redact(value)!r} is not a database URL gansweep can use; "
                          f"write {FORM} (or `sqlite`, the default, for a study file in the "
                          "sweep directory)")
    if url.password or "password" in url.query:
        # redact(): the message itself must not carry what it refuses
        raise ConfigError(f"{where}: {redact(value)} has a password in it, which would be "
                          f"readable in `ps`, Ray's job table or the spec; write {FORM} and "
                          f"{WHERE_PASSWORDS_GO}")
    return value


def parse(value, storage: str) -> str | None:
    """A spec's `study`: None for the default SQLite file, else the URL (without password)."""
    if value is None or value == DEFAULT:
        if layout.is_uri(storage):
            raise ConfigError(f"study: a sweep in {storage} cannot keep its Optuna study in "
                              f"SQLite (that needs a local disk); give study: {FORM}")
        return None
    if not isinstance(value, str):
        raise ConfigError(f"study: write `sqlite` or {FORM}")
    return bare(value)


def redact(url: str) -> str:
    """A URL fit to print: any password replaced by ***."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
    except ArgumentError:
        return "<a URL that could not be parsed>"
    if "password" in u.query:
        u = u.update_query_dict({"password": "***"})
    return u.render_as_string(hide_password=True)


def open_storage(url: str):
    """An Optuna RDBStorage on the URL (created on first use)."""
    import optuna

    if url.startswith("sqlite"):
        # A reader (dashboard, report) may hold the file a moment: wait rather than fail.
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    # pool_pre_ping: a connection the server dropped (restart, idle timeout) is replaced
    return optuna.storages.RDBStorage(layout.driver_url(bare(url)),
                                      engine_kwargs={"pool_pre_ping": True})


def check(url: str | None, where: str = "study"):
    """Open the study's database before any Ray process starts; a clear message if it cannot
    be reached. Returns the storage (None for the default SQLite file, made with the sweep)."""
    if url is None:
        return None
    import sqlalchemy.exc

    try:
        return open_storage(url)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(
            f"{where}: cannot open the Optuna study database {redact(url)} ({reason}). Check "
            f"the host and port; {WHERE_PASSWORDS_GO}") from None


def url_of(root, meta: SweepMeta) -> str:
    url = layout.study_url(root, meta)
    if url is None:
        raise ConfigError(f"{root}: sweep.json records no study database; give it with "
                          f"--study {FORM}")
    return url


def open_for(root: Path | layout.UriPath):
    """The storage of the study the sweep directory records."""
    return open_storage(url_of(root, layout.read_meta(root)))


def attach(root, meta: SweepMeta, given: str | None, log=print) -> None:
    """On resume, before Ray starts: the study's database can be opened and holds this sweep's
    study. `given` (resume --study URL) moves the record to that database, e.g. after the
    server moved."""
    if given is not None:
        given = bare(given, "--study")
        if given != meta.study_storage:
            log(f"[gansweep] the study is now looked for in {given}")
            meta.study_storage = given
    url = url_of(root, meta)
    if url.startswith("sqlite"):  # the file in the sweep directory, checked with it
        return
    storage = check(url, "--study" if given else "study")
    if not layout.TrialStore.of(root).keys():
        return
    try:
        storage.get_study_id_from_name(meta.study_name)
    except KeyError:
        raise ConfigError(f"the Optuna study {meta.study_name} is not in {redact(url)}, "
                          f"yet {root} holds trials it searched; give the database it lives "
                          f"in with --study {FORM}") from None


def describe(root, meta: SweepMeta) -> str:
    """Where the study is, fit to print: the SQLite file, or the database URL."""
    url = layout.study_url(root, meta)
    if url is None:
        return "(no study database recorded)"
    return str(root / layout.OPTUNA_DB) if url.startswith("sqlite") else redact(url)
