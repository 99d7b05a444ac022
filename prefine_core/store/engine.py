"""Engines, transactions, bounded retries and automatic migration for the store.

SQLite (the zero-setup default): WAL journal, ``synchronous=FULL`` (a committed label survives a
power cut, not only a crash of the app), foreign keys on, and write transactions that start with
``BEGIN IMMEDIATE`` so that concurrent writers queue on the busy timeout instead of failing on a
lock upgrade. PostgreSQL: a pre-ping pool; migrations serialised by an advisory lock.
Every transaction function is re-run from the start (bounded) when the database is locked or the
connection dropped, so a write is either committed or raises — never silently dropped.
"""
from __future__ import annotations

import fcntl
import functools
import json
import os
import random
import time
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

MIGRATIONS = Path(__file__).with_name("migrations")
#: Attempts of one transaction before giving up, and the first back-off (doubles, jittered).
RETRIES, BACKOFF_S = 8, 0.05
#: SQLite's wait for a lock per attempt. With RETRIES this bounds a write under a lock that is
#: never released to ~1 minute before the caller gets a clear error (30 s made it ~4 minutes).
SQLITE_BUSY_S = 7
_MIGRATION_LOCK = 72_410_001  # PostgreSQL advisory lock key for migrations


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


#: The key under which a JSON column's value that is not a JSON object is handed out (:func:`_stored_json`).
UNREADABLE_JSON = "unreadable_json"


def _stored_json(text):
    """A JSON column's value as stored. Every JSON column holds an object (provenance, a run's config, a receipt), but
    a hand edit or another tool can make it something else: text that is not JSON (SQLite keeps it as text), or JSON
    that is no object (``[1]``, ``null``, ``"abc"``, on either database). Either is read as ``{UNREADABLE_JSON:
    text}`` that one row is refused where it is used (a run resumed, say), instead of failing every listing of its
    table (callers read these columns with ``.get``)."""
    if isinstance(text, (bytes, bytearray, memoryview)):  # psycopg hands the bytes it received
        text = bytes(text).decode("utf-8", "replace")
    elif not isinstance(text, str):  # SQLite's JSON column keeps a number a hand edit stores as a number
        text = str(text)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = None
    return value if isinstance(value, dict) else {UNREADABLE_JSON: text[:200]}


def database_url(url: str) -> URL:
    """``url`` parsed, or a ValueError saying what a store's URL looks like (the text itself is not repeated: it may
    hold a password). ``postgres://``, a common spelling SQLAlchemy no longer takes, is read as PostgreSQL."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError("the database URL (PREFINE_DB_URL) is not a URL: give sqlite:///PATH or "
                         "postgresql+psycopg://USER@HOST/DATABASE") from None
    except ValueError:  # SQLAlchemy reads the port with int(): "[::1" said "invalid literal for int() with base 10"
        raise ValueError("the database URL (PREFINE_DB_URL) has a host and port that cannot be read: write HOST:PORT "
                         "with a port of digits, an IPv6 address in brackets ([::1]:5432)") from None
    if parsed.drivername == "postgres":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"the database URL {parsed.render_as_string(hide_password=True)} names the database kind "
                         f"{parsed.drivername!r}; the store runs on SQLite or PostgreSQL: give sqlite:///PATH or "
                         "postgresql+psycopg://USER@HOST/DATABASE")
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        # each connection, and each job's process, would have a store of its own, gone when it closes: clips kept as
        # files with no rows naming them
        raise ValueError("the database URL (PREFINE_DB_URL) names a SQLite database in memory, which keeps nothing; "
                         "give a file: sqlite:////ABSOLUTE/PATH.db")
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database).is_absolute():
        raise ValueError(f"the database URL {parsed} names the SQLite file {parsed.database!r} relative to the folder "
                         "a command runs in (the app and each of its jobs may run in another); give its absolute path: "
                         f"sqlite:///{Path(parsed.database).resolve()}")
    return parsed


def sqlite_url(path: str | os.PathLike) -> str:
    """The URL of the SQLite file at ``path``, whatever its name holds (a folder named ``a?b`` or ``50%20`` was read as
    a URL's query or escape: the store went to another file)."""
    return URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)


def _check_driver(parsed: URL) -> None:
    """Refuse a URL whose driver is not installed here (``postgresql+psycopg2://``) in words, naming the one that is;
    SQLAlchemy's import of it failed with a ModuleNotFoundError traceback."""
    try:
        parsed.get_dialect().import_dbapi()
    except (ImportError, NoSuchModuleError):
        raise ValueError(f"the database URL {parsed.render_as_string(hide_password=True)} asks for the driver "
                         f"{parsed.drivername}, which is not installed here: give postgresql+psycopg://USER@HOST/DATABASE "
                         "(the driver requirements.txt installs) or sqlite:///PATH") from None


def make_engine(url: str) -> Engine:
    parsed = database_url(url)
    _check_driver(parsed)
    if parsed.get_backend_name() == "sqlite":
        if not Path(parsed.database).parent.is_dir():  # a typo in PREFINE_DB_URL, not a place to make
            raise ValueError(f"the database URL {parsed} names a SQLite file in {Path(parsed.database).parent}, which "
                             "is not a folder here; give the path of one that is")
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_S}, json_deserializer=_stored_json)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_S * 1000}")
            cursor.execute("PRAGMA synchronous=FULL")  # a committed label survives a power cut too
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("prefine_write") else "BEGIN")

        return engine
    engine = create_engine(parsed, pool_pre_ping=True, json_deserializer=_stored_json)
    if parsed.get_driver_name() == "psycopg":  # the driver requirements.txt installs (another has no such loaders)

        @event.listens_for(engine, "connect")
        def _postgres_times(dbapi_conn, _record):
            dbapi_conn.adapters.register_loader("timestamp", _time_or_unreadable())

    return engine


@functools.cache
def _time_or_unreadable():
    """psycopg's loader of a ``timestamp``, which reads one Python cannot hold (``'infinity'``, a year past 9999: a
    hand edit, as nothing here writes one) as :data:`~prefine_core.store.schema.UNREADABLE_TIME`, as
    :class:`~prefine_core.store.schema.StoredTime` reads SQLite's malformed times; psycopg's own raised, failing every
    listing of the table (on PostgreSQL the driver parses times before StoredTime sees them)."""
    from psycopg import DataError
    from psycopg.types.datetime import TimestampLoader

    from prefine_core.store.schema import UNREADABLE_TIME

    class TimeOrUnreadable(TimestampLoader):
        def load(self, data):
            try:
                return super().load(data)
            except DataError:
                return UNREADABLE_TIME

    return TimeOrUnreadable


def transient(exc: BaseException) -> bool:
    """A locked database or a dropped connection: worth running the transaction again."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        text = str(exc.orig).lower()
        return any(s in text for s in ("database is locked", "database is busy", "connection", "server closed",
                                       "could not serialize", "deadlock", "terminating"))
    return False


def outage_reason(exc: DBAPIError) -> str:
    """What the database said when it stayed locked or unreachable through the retries, in a few words: the first line
    of the driver's message (SQLAlchemy's own adds the statement and a link), as the app's pages and the CLI say it."""
    said = str(exc.orig or exc).strip().splitlines()
    return said[0] if said else type(exc.orig or exc).__name__


def run_transaction(engine: Engine, fn, write: bool = True):
    """Run ``fn(conn)`` in one transaction; retry it whole on a transient error (bounded)."""
    delay = BACKOFF_S
    for attempt in range(RETRIES):
        try:
            with engine.connect() as conn:
                conn.execution_options(prefine_write=write)
                with conn.begin():
                    return fn(conn)
        except (OperationalError, DBAPIError) as exc:
            if not transient(exc) or attempt == RETRIES - 1:
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 2.0)


def _alembic_config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def head_revision() -> str:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def _migration_lock(engine: Engine):
    """One process migrates at a time: a file lock beside a SQLite file, an advisory lock on PostgreSQL."""
    if is_sqlite(engine):
        database = engine.url.database
        if not database or database == ":memory:":
            yield
            return
        with open(f"{database}.migrate.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({_MIGRATION_LOCK})")
            try:
                yield
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK})")
                conn.commit()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: the newest); a no-op when it is there already. A store this version
    cannot bring there is refused in words (ValueError), nothing changed: one whose recorded revision it does not know
    (written by a newer PREFINE Studio), or one whose upgrade fails (its tables are not those of the revision it
    records); Alembic's own errors said neither what was wrong nor that the store was untouched."""
    scripts = ScriptDirectory(str(MIGRATIONS))
    target = scripts.get_current_head() if revision == "head" else revision
    store = engine.url.database if is_sqlite(engine) else engine.url.render_as_string(hide_password=True)
    try:
        current = current_revision(engine)
    except CommandError as exc:  # e.g. alembic_version holds two rows
        raise ValueError(f"the schema revision of the store {store} cannot be read ({exc}); nothing was changed") from None
    if current == target:
        return
    if current is not None and current not in {script.revision for script in scripts.walk_revisions()}:
        raise ValueError(f"the store {store} was written by a newer PREFINE Studio: its schema revision {current!r} is "
                         f"unknown here (this version knows up to {scripts.get_current_head()!r}); nothing was changed: "
                         "open it with the PREFINE Studio that wrote it")
    with _migration_lock(engine):
        with engine.connect() as conn:
            conn.execution_options(prefine_write=True)
            raw = conn.connection.dbapi_connection if is_sqlite(engine) else None
            if raw is not None:  # a table rebuild (0005) drops a table others refer to: SQLite's procedure turns
                raw.execute("PRAGMA foreign_keys=OFF")  # foreign keys off, outside the transaction, and checks them
            try:
                with conn.begin():
                    command.upgrade(_alembic_config(conn), revision)
                    if raw is not None and (broken := conn.exec_driver_sql("PRAGMA foreign_key_check").first()):
                        raise RuntimeError(f"the schema upgrade would break a reference ({tuple(broken)}); nothing changed")
            except DBAPIError as exc:
                if transient(exc):  # a locked or unreachable database: an outage, retried or said by the caller
                    raise
                said = str(exc.orig).strip()
                # only a schema error says the tables are not the revision's (a read-only file or a full disk does not)
                mismatch = any(s in said.lower() for s in ("no such table", "no such column", "no such index",
                                                            "has no column named", "already exists", "does not exist",
                                                            "duplicate column"))
                raise ValueError(f"upgrading the schema of the store {store} from revision {current or 'none'} to {target} failed "
                                 f"({said}); nothing was changed" + (
                                     ". Its tables are not those of the revision it records (alembic_version edited, or "
                                     "the tables changed by another tool?): restore it from a backup" if mismatch else
                                     "")) from None
            finally:
                if raw is not None:
                    raw.execute("PRAGMA foreign_keys=ON")
