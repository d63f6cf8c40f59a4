"""Where a sweep's Optuna study lives, and opening it.

By default the study is SQLite in the sweep directory (SWEEP_DIR/optuna.db): right for one
machine and a local disk. A spec's `study: postgresql://USER@HOST:PORT/DB` keeps it in a
PostgreSQL database instead, which Optuna recommends for studies used from several nodes and
which a sweep in a bucket needs (SQLite cannot live in one); many sweeps can share a database,
each under its own study name. sweep.json records the URL so resume and report find it again.

Passwords are never written anywhere: a URL's password is taken out when it is read and kept
in this process's memory, keyed by (host, port, user, database), and handed to the driver
when SQLAlchemy connects. Without one, libpq's own sources apply (PGPASSWORD, ~/.pgpass), which
is how a sweep submitted on one machine is resumed or reported on another.
"""
from __future__ import annotations

from pathlib import Path

from gansweep.analysis import layout
from gansweep.trainers.errors import ConfigError

DEFAULT = "sqlite"  # `study: sqlite`, or no `study`: the SQLite file in the sweep directory
BACKENDS = ("postgresql",)

_PASSWORDS: dict[tuple, str] = {}  # (host, port, user, database) -> password, memory only
_HOOKED = False


def _url(value: str, where: str):
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except ArgumentError:
        url = None
    if url is None or url.get_backend_name() not in BACKENDS or not url.database:
        raise ConfigError(f"{where}: {redact(value)!r} is not a database URL gansweep can use; "
                          "write postgresql://USER@HOST:PORT/DATABASE (or `sqlite`, the "
                          "default, for a study file in the sweep directory)")
    return url


def _key(host, port, user, database) -> tuple:
    return (str(host or ""), str(port or ""), str(user or ""), str(database or ""))


def without_password(value: str, where: str = "study") -> str:
    """The URL as it may be written down: its password (in the URL or as ?password=) taken out
    and remembered for this process."""
    url = _url(value, where)
    password = url.password or url.query.get("password")
    bare = url._replace(password=None).difference_update_query(["password"])
    if password:
        _PASSWORDS[_key(bare.host, bare.port, bare.username, bare.database)] = str(password)
    return bare.render_as_string(hide_password=False)


def parse(value, storage: str) -> str | None:
    """A spec's `study`: None for the default SQLite file, else the URL without password."""
    if value is None or value == DEFAULT:
        if layout.is_uri(storage):
            raise ConfigError(f"study: a sweep in {storage} cannot keep its Optuna study in "
                              "SQLite (that needs a local disk); give study: "
                              "postgresql://USER@HOST:PORT/DATABASE")
        return None
    if not isinstance(value, str):
        raise ConfigError("study: write `sqlite` or postgresql://USER@HOST:PORT/DATABASE")
    return without_password(value)


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


def _supply_password(dialect, conn_rec, cargs, cparams) -> None:
    """SQLAlchemy's do_connect hook: the remembered password of this server and user. Nothing
    that pickles (Ray Tune saves its searcher's state, storage included) ever holds it."""
    if cparams.get("password"):
        return
    key = _key(cparams.get("host"), cparams.get("port"), cparams.get("user"),
               cparams.get("dbname") or cparams.get("database"))
    if key in _PASSWORDS:
        cparams["password"] = _PASSWORDS[key]


def _hook() -> None:
    global _HOOKED
    if not _HOOKED:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "do_connect", _supply_password)
        _HOOKED = True


def open_storage(url: str):
    """An Optuna RDBStorage on the URL (created on first use)."""
    import optuna

    if url.startswith("sqlite"):
        # A reader (dashboard, report) may hold the file a moment: wait rather than fail.
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    _hook()
    # pool_pre_ping: a connection the server dropped (restart, idle timeout) is replaced
    return optuna.storages.RDBStorage(layout.driver_url(without_password(url)),
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
            "the host and port; give the password in PGPASSWORD or ~/.pgpass (or in the URL "
            "you pass; it is never written down)") from None


def url_of(root, meta: dict) -> str:
    url = layout.study_url(root, meta)
    if url is None:
        raise ConfigError(f"{root}: sweep.json records no study database; give it with "
                          "--study postgresql://USER@HOST:PORT/DATABASE")
    return url


def open_for(root: Path | layout.UriPath):
    """The storage of the study the sweep directory records."""
    import json

    meta = json.loads((root / layout.META).read_text())
    return open_storage(url_of(root, meta))


def attach(root, meta: dict, given: str | None, log=print) -> None:
    """On resume, before Ray starts: the study's database can be opened and holds this sweep's
    study. `given` (resume --study URL) moves the record to that database, e.g. after the
    server moved; its password is used, never written."""
    if given is not None:
        bare = without_password(given, "--study")
        if bare != meta.get(layout.STUDY_STORAGE):
            log(f"[gansweep] the study is now looked for in {redact(bare)}")
            meta[layout.STUDY_STORAGE] = bare
    url = url_of(root, meta)
    if url.startswith("sqlite"):  # the file in the sweep directory, checked with it
        return
    storage = check(url, "--study" if given else "study")
    if not layout.TrialStore.of(root).keys():
        return
    try:
        storage.get_study_id_from_name(meta["study_name"])
    except KeyError:
        raise ConfigError(f"the Optuna study {meta['study_name']} is not in {redact(url)}, "
                          f"yet {root} holds trials it searched; give the database it lives "
                          "in with --study postgresql://USER@HOST:PORT/DATABASE") from None


def describe(root, meta: dict) -> str:
    """Where the study is, fit to print: the SQLite file, or the database URL."""
    url = layout.study_url(root, meta)
    if url is None:
        return "(no study database recorded)"
    return str(root / layout.OPTUNA_DB) if url.startswith("sqlite") else redact(url)
