"""The preference store: every judgement lands here and is never lost.

One :class:`Store` per database URL. Every public write runs in one transaction (retried whole on a
locked database or a dropped connection); :meth:`Store.batch` groups several writes into one.
Labels are append-only: a change of mind or an undo is a new row that supersedes the old one.
"""
from __future__ import annotations

import math
import numbers
import os
import uuid
from collections.abc import Collection
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import and_, case, delete, func, insert, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DatabaseError, OperationalError

from prefine_core.entry import counted, is_finite_number, is_printable, quoted
from prefine_core.store import schema as S
from prefine_core.store.engine import is_sqlite, make_engine, run_transaction, upgrade
from prefine_core.store.paths import PATH_FIELDS, FilePaths
from prefine_core.store.records import (
    LABEL_CHOICES, MAX_NAME, POLICY_KINDS, RETRACT, RUN_STATUSES, LabelRecord, PairRecord, PolicyRecord,
    RunRecord, TrajectoryRecord,
)
from prefine_core.teachers import CHOICES

if TYPE_CHECKING:  # the store imports neither torch (rollout does) nor pandas up front: workers start fast
    import pandas as pd

    from prefine_core.rollout import Trajectory

#: How long a pair handed to an annotator counts as taken by them (for overlap) before it is freed.
LEASE = timedelta(minutes=10)
#: The most annotators one pair can be handed to (agreement needs 2; more is rarely worth the labels).
MAX_OVERLAP = 10
_RUN_FIELDS = {"status", "pid", "host", "error", "output_policy_id", "log_path", "heartbeat", "config"}
_MAX_SECONDS = 24 * 3600.0


class NotFound(ValueError):
    """A row named by its id is not in the store (never was, or deleted meanwhile): callers that hold an id a person
    saw (a page showing a pair, a job rendering it) catch this one without asking the store again."""


class AlreadyAnswered(ValueError):
    """A label asked to be an annotator's first answer on a pair (``only_new``) found one standing there."""


def _receipt(result) -> dict:
    """A write's result as stored in its receipt (JSON): a plain value, or the id of the pair record it returned."""
    if isinstance(result, PairRecord):
        return {"pair_id": result.id}
    if result is None or isinstance(result, (bool, int, float, str)):
        return {"value": result}
    raise TypeError(f"a store write returned {type(result).__name__}, which its receipt cannot hold")


def _text(field: str, value, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} must be a non-empty string, got {quoted(value)}")
    value = value.strip()
    if len(value) > max_len:
        raise ValueError(f"{field} is {len(value)} characters long, at most {max_len} allowed: {value[:40]!r}…")
    if not is_printable(value):
        raise ValueError(f"{field} holds control characters: {quoted(value)}")
    return value


#: The highest sampling temperature a clip may be collected at (a scale of the policy's action std; far past it every
#: action is noise clipped at the action bounds).
MAX_TEMPERATURE = 100.0
#: The largest id a SQL INTEGER column holds (SQLite and PostgreSQL BIGINT alike): a larger one names no row.
MAX_ID = 2**63 - 1


def is_id(value) -> bool:
    """Whether ``value`` can name a row: a positive integer up to :data:`MAX_ID`; numpy integers (from a DataFrame)
    are welcome, bools, floats and text are not. The one rule for ids the store takes and files hold."""
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and 0 < value <= MAX_ID


def _int_id(field: str, value) -> int:
    """:func:`is_id`'s id as an int; an integer past :data:`MAX_ID` names no row (NotFound), anything else is not an
    id (ValueError)."""
    if is_id(value):
        return int(value)
    if not isinstance(value, bool) and isinstance(value, numbers.Integral) and value > MAX_ID:
        raise NotFound(f"{field} {value} does not exist (ids stop at {MAX_ID})")
    raise ValueError(f"{field} must be a positive integer id, got {value!r}")


def _overlap(value) -> int:
    """How many annotators a pair may go to, as an int: a count, not an id, though a SQL integer bounds it alike (one
    past :data:`MAX_ID` was said to be an overlap that "does not exist")."""
    if is_id(value):
        return int(value)
    raise ValueError(f"overlap must be a whole number from 1 to {MAX_ID}, got {quoted(value)}")


def _finite(field: str, value, low: float = -math.inf, high: float = math.inf) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{field} must be a number, got {value!r}") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise ValueError(f"{field} must be a finite number in [{low}, {high}], got {value!r}")
    return number


def _insert_or_find(conn: Connection, table, keys: tuple[str, ...], **values):
    """The id of the row with these ``keys``, inserted unless it exists: looked up first, since an insert that does
    nothing still uses up an id (SQLite AUTOINCREMENT, a PostgreSQL sequence), then inserted safe against a
    concurrent insert (which the second lookup then finds)."""
    find = select(table.c.id).where(and_(*(table.c[key] == values[key] for key in keys)))
    if (found := conn.execute(find).scalar()) is not None:
        return found
    conn.execute(_insert(conn, table).values(**values).on_conflict_do_nothing(index_elements=list(keys)))
    return conn.execute(find).scalar_one()


def _insert(conn: Connection, table):
    """An INSERT of the connection's own dialect, which can say what to do on a conflict (ON CONFLICT …)."""
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


#: PostgreSQL advisory lock keys (:meth:`_Writer.one_at_a_time`): handing out pairs, importing an export, and adding
#: to a task's pool or its pairs (two ``pairs`` commands at once each added what the other was adding).
SERVING_LOCK, IMPORT_LOCK, POOL_LOCK = 72_410_002, 72_410_003, 72_410_004


class _Writer:
    """The writes of one transaction; files it wrote are removed if the transaction fails."""

    def __init__(self, conn: Connection, paths: FilePaths):
        self.conn, self.paths = conn, paths
        self.written: list[Path] = []

    def one_at_a_time(self, key: int) -> None:
        """Hold the rest of this transaction until no other one holds ``key``. SQLite's writes queue already (a
        write transaction begins IMMEDIATE); on PostgreSQL an advisory lock, released at commit."""
        if self.conn.dialect.name == "postgresql":
            self.conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({int(key)})")

    def has_clips(self, task_id: str, source: str, seed: int) -> bool:
        """Whether ``task_id``'s pool holds clips of ``source`` on ``seed``."""
        T = S.trajectories
        return self.conn.execute(select(T.c.id).where(T.c.task_id == task_id, T.c.source == source, T.c.seed == seed)
                                 .limit(1)).first() is not None

    def pair_keys(self, task_id: str) -> set[tuple[int, int]]:
        """The task's pairs as (smaller clip id, larger clip id), whichever side each clip is on."""
        P = S.pairs
        rows = self.conn.execute(select(P.c.left_id, P.c.right_id).where(P.c.task_id == task_id))
        return {(min(left, right), max(left, right)) for left, right in rows}

    def ensure_task(self, task_id: str) -> str:
        task_id = _text("task_id", task_id, 128)
        return _insert_or_find(self.conn, S.tasks, ("id",), id=task_id, created_at=S.utcnow())

    def annotator_id(self, name: str) -> int:
        name = _text("annotator", name, MAX_NAME)
        return _insert_or_find(self.conn, S.annotators, ("name",), name=name, created_at=S.utcnow())

    def _policy_row(self, policy_id: int):
        row = self.conn.execute(select(S.policies).where(S.policies.c.id == policy_id)).first()
        if row is None:
            raise NotFound(f"policy_id {policy_id} does not exist")
        return row

    def add_policy(self, name, path, task_id, kind, parent_id=None, provenance=None) -> int:
        name = _text("name", name, 200)
        path = _text("path", self.paths.to_row(path), 4096)
        if kind not in POLICY_KINDS:
            raise ValueError(f"kind must be one of {POLICY_KINDS}, got {kind!r}")
        if provenance is not None and not isinstance(provenance, dict):
            raise ValueError(f"provenance must be a dict, got {type(provenance).__name__}")
        task_id = self.ensure_task(task_id)
        if parent_id is not None:
            self._policy_row(_int_id("parent_id", parent_id))
        return _insert_or_find(self.conn, S.policies, ("task_id", "path"), name=name, path=path, task_id=task_id,
                               kind=kind, parent_id=parent_id, provenance=provenance or {}, created_at=S.utcnow())

    def add_trajectory(self, trajectory, policy_id, source, folder, temperature=None, video_path=None) -> int:
        from prefine_core.rollout import Trajectory, save_trajectory

        if not isinstance(trajectory, Trajectory):
            raise ValueError(f"trajectory must be a rollout.Trajectory, got {type(trajectory).__name__}")
        if trajectory.length == 0:
            raise ValueError("trajectory is empty (length 0)")
        source = _text("source", source, 200)
        task_id = self.ensure_task(trajectory.task_id)
        if policy_id is not None:
            row = self._policy_row(_int_id("policy_id", policy_id))
            if row.task_id != task_id:
                raise ValueError(f"policy_id {policy_id} is a policy for {row.task_id}, the trajectory is from {task_id}")
        if temperature is not None:
            temperature = _finite("temperature", temperature, 0.0, MAX_TEMPERATURE)
        path = save_trajectory(trajectory, folder, f"traj-{uuid.uuid4().hex[:16]}")
        self.written.append(path)
        return self.conn.execute(insert(S.trajectories).values(
            task_id=task_id, policy_id=policy_id, source=source, path=self.paths.to_row(path.resolve()), seed=trajectory.seed,
            start=trajectory.start, length=trajectory.length, total_return=trajectory.total_return,
            total_cost=trajectory.total_cost, fell=trajectory.fell, terminated=bool(trajectory.terminated),
            truncated=bool(trajectory.truncated), temperature=temperature,
            video_path=self.paths.to_row(video_path), created_at=S.utcnow(),
        ).returning(S.trajectories.c.id)).scalar_one()

    def add_pair(self, left_id, right_id, strategy, score, reason, video_path=None) -> int:
        left_id, right_id = _int_id("left_id", left_id), _int_id("right_id", right_id)
        if left_id == right_id:
            raise ValueError(f"left_id and right_id must differ, both are {left_id}")
        strategy = _text("strategy", strategy, 64)
        score = _finite("score", score)
        reason = _text("reason", reason, 2000)
        rows = {r.id: r.task_id for r in self.conn.execute(
            select(S.trajectories.c.id, S.trajectories.c.task_id).where(S.trajectories.c.id.in_([left_id, right_id])))}
        for field, value in (("left_id", left_id), ("right_id", right_id)):
            if value not in rows:
                raise ValueError(f"{field} {value}: no such trajectory")
        if rows[left_id] != rows[right_id]:
            raise ValueError(f"left_id {left_id} ({rows[left_id]}) and right_id {right_id} ({rows[right_id]}) are from different tasks")
        D = S.deleted_pairs  # the same two clips paired again: no longer a deleted pair
        self.conn.execute(delete(D).where(and_(D.c.left_id == left_id, D.c.right_id == right_id)))
        return self.conn.execute(insert(S.pairs).values(
            task_id=rows[left_id], left_id=left_id, right_id=right_id, strategy=strategy, score=score, reason=reason,
            video_path=self.paths.to_row(video_path), created_at=S.utcnow(),
        ).returning(S.pairs.c.id)).scalar_one()

    def _latest_label(self, pair_id: int, annotator_id: int):
        return self.conn.execute(select(S.labels).where(and_(
            S.labels.c.pair_id == pair_id, S.labels.c.annotator_id == annotator_id)).order_by(S.labels.c.id.desc()).limit(1)).first()

    def add_label(self, pair_id, annotator, choice, seconds=None, created_at: datetime | None = None,
                  allow_retract: bool = False, only_new: bool = False) -> int:
        """``created_at`` and ``allow_retract`` serve imports, which replay another store's history; ``only_new``
        refuses a pair the annotator already answered (their standing label would be superseded)."""
        pair_id = _int_id("pair_id", pair_id)
        if choice not in LABEL_CHOICES and not (allow_retract and choice == RETRACT):
            raise ValueError(f"choice must be one of {LABEL_CHOICES}, got {choice!r}")
        if seconds is not None:
            seconds = _finite("seconds", seconds, 0.0, _MAX_SECONDS)
        annotator_id = self.annotator_id(annotator)
        if self.conn.execute(select(S.pairs.c.id).where(S.pairs.c.id == pair_id)).first() is None:
            raise NotFound(f"pair_id {pair_id} does not exist")
        previous = self._latest_label(pair_id, annotator_id)
        if only_new and previous is not None and previous.choice in LABEL_CHOICES:
            raise AlreadyAnswered(f"{annotator} already answered pair {pair_id} ('{previous.choice}'), in another tab "
                                  "or window perhaps; that answer stands and nothing was changed (Undo takes it back)")
        label_id = self.conn.execute(insert(S.labels).values(
            pair_id=pair_id, annotator_id=annotator_id, choice=choice, seconds=seconds,
            supersedes_id=None if previous is None else previous.id, created_at=created_at or S.utcnow(),
        ).returning(S.labels.c.id)).scalar_one()
        if choice == "skip":
            self.release(pair_id, annotator_id)
        else:
            self.hold(pair_id, annotator_id, judged=choice != RETRACT)
        return label_id

    def hold(self, pair_id: int, annotator_id: int, judged: bool) -> None:
        """The annotator holds a slot on the pair: a fresh lease, or for good once judged."""
        values = {"served_at": S.utcnow(), "judged": judged}
        self.conn.execute(_insert(self.conn, S.assignments).values(pair_id=pair_id, annotator_id=annotator_id, **values)
                          .on_conflict_do_update(index_elements=["pair_id", "annotator_id"], set_=values))

    def release(self, pair_id: int, annotator_id: int) -> None:
        table = S.assignments
        self.conn.execute(delete(table).where(and_(table.c.pair_id == pair_id, table.c.annotator_id == annotator_id)))


#: A label row's choice as read: one it may hold (:data:`LABEL_CHOICES` or a retraction) as it is, any other (a hand
#: edit, another tool: ``'LEFT!'``) as a retraction. The annotator's answer there is unknown, so none stands: no
#: judgement is counted (agreement, counts, a fine-tune), the pair is theirs to answer again, and an export carries a
#: row its import takes. :meth:`Store.counts` says how many rows are read so (``unreadable_labels``).
_CHOICE_READ = case((S.labels.c.choice.in_([*LABEL_CHOICES, RETRACT]), S.labels.c.choice), else_=literal(RETRACT))


def _effective_rows():
    """Latest label row per (pair, annotator), as a subquery of ids."""
    return (select(func.max(S.labels.c.id).label("id"))
            .group_by(S.labels.c.pair_id, S.labels.c.annotator_id).subquery())


def _starts_with(column, prefix: str):
    """``column`` begins with ``prefix``, literally (in LIKE, ``_`` and ``%`` would be wildcards)."""
    return func.substr(column, 1, len(prefix)) == prefix


def _open_to(me: int, task_id: str | None, overlap: int) -> list:
    """Conditions on ``pairs`` of a pair annotator ``me`` may be handed: no standing label of theirs on it, and fewer
    than ``overlap`` others have labelled it or hold it within :data:`LEASE` (see :meth:`Store.next_pair`)."""
    L, A, P = S.labels, S.assignments, S.pairs
    my_latest = select(func.max(L.c.id)).where(L.c.annotator_id == me).group_by(L.c.pair_id)
    my_done = select(L.c.pair_id).where(L.c.id.in_(my_latest), L.c.choice.in_(LABEL_CHOICES))
    full = (select(A.c.pair_id).where(A.c.annotator_id != me, or_(A.c.judged, A.c.served_at >= S.utcnow() - LEASE))
            .group_by(A.c.pair_id).having(func.count() >= overlap))
    return [P.c.id.not_in(my_done), P.c.id.not_in(full)] + ([P.c.task_id == task_id] if task_id is not None else [])


class Store:
    """The preference store at ``url`` (any SQLAlchemy URL: ``sqlite:///…`` or ``postgresql+psycopg://…``).

    Opening it migrates the schema to the newest version.
    """

    def __init__(self, url: str, migrate: bool = True, root: str | os.PathLike | None = None):
        self.url = url
        self.paths = FilePaths(root)  # a workspace's store keeps its files' paths relative (store/paths.py)
        self.engine = make_engine(url)
        if migrate:
            try:
                upgrade(self.engine)
            except DatabaseError as exc:  # a locked or unreachable database is an outage, retried or said elsewhere
                if not is_sqlite(self.engine) or isinstance(exc, OperationalError):
                    raise
                raise ValueError(f"{self.engine.url.database} is not a readable PREFINE store ({exc.orig}); nothing "
                                 "was changed: restore it from a backup, or move it aside to start afresh") from None

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    def keep_paths_relative(self) -> int:
        """Rewrite absolute paths that lie inside the workspace's parent folder in the relative form new rows
        get (rows written before paths were kept relative); returns how many changed. Nothing without a root."""
        home = self.paths.home
        if home is None:
            return 0
        columns = [(table, column.name) for table in (S.policies, S.trajectories, S.pairs, S.runs)
                   for column in table.columns if column.name in PATH_FIELDS]

        def write(w: _Writer) -> int:
            changed = 0
            for table, name in columns:
                column = table.c[name]
                for row_id, stored in w.conn.execute(select(table.c.id, column).where(column.like(f"{home}/%"))).all():
                    relative = self.paths.to_row(stored)
                    if relative != stored:
                        w.conn.execute(update(table).where(table.c.id == row_id).values({name: relative}))
                        changed += 1
            return changed

        return self._write(write)

    def close(self) -> None:
        self.engine.dispose()

    def _record(self, cls, row):
        """A record of ``cls`` from a row, its file paths absolute (store/paths.py)."""
        return self.paths.located(cls(**row._mapping))

    # -- transactions -------------------------------------------------------------------------
    def _write(self, fn):
        """Run ``fn(writer)`` in a write transaction, retried on transient errors; remove the array files of the
        attempts that certainly did not commit.

        An attempt that failed inside ``fn`` never reached its commit: its files go. One that failed at the
        commit itself (a connection dropped just then) may have committed on the server with its
        acknowledgement lost; its files stay, so that a row can never point at a deleted file (at worst a
        file nothing points at remains).

        Each write leaves a receipt (a random key and its result) in its own transaction. A retry first looks
        for its key: found, the earlier attempt did commit, and its result is returned instead of writing the
        rows a second time."""
        attempts: list[tuple[list[Path], list[bool]]] = []
        key = uuid.uuid4().hex
        receipts = S.write_receipts

        def attempt(conn):
            if attempts:  # a retry: did an earlier attempt commit after all?
                done = conn.execute(select(receipts.c.result).where(receipts.c.key == key)).first()
                if done is not None:
                    return self._from_receipt(conn, done.result)
            writer, reached_commit = _Writer(conn, self.paths), [False]
            attempts.append((writer.written, reached_commit))
            result = fn(writer)
            conn.execute(insert(receipts).values(key=key, result=_receipt(result), created_at=S.utcnow()))
            reached_commit[0] = True
            return result

        try:
            return run_transaction(self.engine, attempt, write=True)
        finally:
            for files, reached_commit in attempts:
                if not reached_commit[0]:  # the committed attempt, and any that may have, keep theirs
                    for path in files:
                        path.unlink(missing_ok=True)

    def _from_receipt(self, conn: Connection, receipt: dict):
        """What a committed write returned, from its receipt (records are read again)."""
        if "pair_id" in receipt:
            return self._record(PairRecord, conn.execute(select(S.pairs).where(S.pairs.c.id == receipt["pair_id"])).one())
        return receipt["value"]

    def prune_receipts(self, older_than: timedelta = timedelta(days=1)) -> int:
        """Forget write receipts older than ``older_than`` (a retry comes within seconds); returns how many."""
        cutoff = S.utcnow() - older_than
        return run_transaction(self.engine, lambda c: c.execute(
            delete(S.write_receipts).where(S.write_receipts.c.created_at < cutoff)).rowcount)

    def _read(self, fn):
        return run_transaction(self.engine, fn, write=False)

    @contextmanager
    def batch(self):
        """Several writes in one transaction: ``with store.batch() as b: b.add_trajectory(…); b.add_pair(…)``.

        If the block raises, nothing is written and the array files it wrote are removed.
        """
        with self.engine.connect() as conn:
            conn.execution_options(prefine_write=True)
            writer = _Writer(conn, self.paths)
            try:
                with conn.begin():
                    yield writer
            except BaseException:
                for path in writer.written:
                    path.unlink(missing_ok=True)
                raise

    # -- policies -----------------------------------------------------------------------------
    def add_policy(self, name: str, path: str | os.PathLike, task_id: str, kind: str, parent_id: int | None = None,
                   provenance: dict | None = None) -> int:
        """Register a checkpoint; idempotent per (task, path): registering it again returns the same id."""
        return self._write(lambda w: w.add_policy(name, path, task_id, kind, parent_id, provenance))

    def get_policy(self, policy_id: int) -> PolicyRecord:
        policy_id = _int_id("policy_id", policy_id)
        row = self._read(lambda c: c.execute(select(S.policies).where(S.policies.c.id == policy_id)).first())
        if row is None:
            raise NotFound(f"policy_id {policy_id} does not exist")
        return self._record(PolicyRecord, row)

    def list_policies(self, task_id: str | None = None, kind: str | None = None) -> list[PolicyRecord]:
        query = select(S.policies).order_by(S.policies.c.id)
        if task_id is not None:
            query = query.where(S.policies.c.task_id == task_id)
        if kind is not None:
            query = query.where(S.policies.c.kind == kind)
        return [self._record(PolicyRecord, r) for r in self._read(lambda c: c.execute(query).all())]

    def delete_policy(self, policy_id: int) -> PolicyRecord:
        """Delete the row of a policy nothing in the store refers to (a wrong upload, a checkpoint registered by
        mistake) and return what it was; its file is the caller's (:meth:`prefine_core.workspace.Workspace.delete_policy`).

        Refused, with what still uses it and nothing deleted, while any clip was rolled out with it, any run started
        from it, made it or compared it, or any policy was made from it: their records would lose the policy they
        name."""
        policy = self.get_policy(policy_id)
        policy_id = policy.id

        def write(w: _Writer):
            P, T, R = S.policies, S.trajectories, S.runs
            w._policy_row(policy_id)  # deleted meanwhile: NotFound
            clips = w.conn.execute(select(func.count()).select_from(T).where(T.c.policy_id == policy_id)).scalar_one()
            children = w.conn.execute(select(func.count()).select_from(P).where(P.c.parent_id == policy_id)).scalar_one()
            runs = [r.id for r in w.conn.execute(select(R.c.id, R.c.policy_id, R.c.output_policy_id, R.c.config)
                                                 .where(R.c.task_id == policy.task_id))
                    if policy_id in (r.policy_id, r.output_policy_id)
                    or policy_id in ((r.config or {}).get("policy_a"), (r.config or {}).get("policy_b"))]
            uses = [counted(n, noun, plural) for n, noun, plural in
                    ((clips, "clip", None), (len(runs), "run", None), (children, "policy made from it", "policies made from it"))
                    if n]
            if uses:
                raise ValueError(f"policy {policy_id} ('{policy.name}') is still used by {', '.join(uses)}"
                                 + (f" (run{'s' if len(runs) > 1 else ''} {', '.join(map(str, sorted(runs)))})" if runs else "")
                                 + "; nothing was deleted")
            return w.conn.execute(delete(P).where(P.c.id == policy_id)).rowcount

        self._write(write)
        return policy

    # -- trajectories -------------------------------------------------------------------------
    def add_trajectory(self, trajectory: "Trajectory", policy_id: int | None, source: str, folder: str | os.PathLike,
                       temperature: float | None = None, video_path: str | None = None) -> int:
        """Write the arrays to ``<folder>/traj-<uuid>.npz`` and register them; returns the trajectory id."""
        return self._write(lambda w: w.add_trajectory(trajectory, policy_id, source, folder, temperature, video_path))

    def trajectory_record(self, trajectory_id: int) -> TrajectoryRecord:
        trajectory_id = _int_id("trajectory_id", trajectory_id)
        row = self._read(lambda c: c.execute(select(S.trajectories).where(S.trajectories.c.id == trajectory_id)).first())
        if row is None:
            raise NotFound(f"trajectory_id {trajectory_id} does not exist")
        return self._record(TrajectoryRecord, row)

    def get_trajectory(self, trajectory_id: int) -> "Trajectory":
        """The arrays of clip ``trajectory_id``; NotFound without its row, else as :meth:`clip_arrays`."""
        return self.clip_arrays(self.trajectory_record(trajectory_id))

    @staticmethod
    def clip_arrays(record: TrajectoryRecord) -> "Trajectory":
        """The arrays of the clip whose row ``record`` a caller has read already (so that it is not read again); a
        ValueError that names the clip when its file is gone or damaged since (removed, cut short, edited): callers
        add only what to do about it."""
        from prefine_core.rollout import load_trajectory

        try:
            return load_trajectory(record.path)
        except ValueError as exc:
            raise ValueError(f"clip {record.id} cannot be read ({exc})") from None

    def list_trajectories(self, task_id: str | None = None, source: str | None = None) -> list[TrajectoryRecord]:
        query = select(S.trajectories).order_by(S.trajectories.c.id)
        if task_id is not None:
            query = query.where(S.trajectories.c.task_id == task_id)
        if source is not None:
            query = query.where(S.trajectories.c.source == source)
        return [self._record(TrajectoryRecord, r) for r in self._read(lambda c: c.execute(query).all())]

    def set_trajectory_video(self, trajectory_id: int, video_path: str | os.PathLike) -> None:
        self._set(S.trajectories, "trajectory_id", trajectory_id, video_path=self.paths.to_row(video_path))

    # -- pairs --------------------------------------------------------------------------------
    def add_pair(self, left_id: int, right_id: int, strategy: str, score: float, reason: str,
                 video_path: str | None = None) -> int:
        """A pair of two trajectories of one task, with the strategy, score and reason that chose it."""
        return self._write(lambda w: w.add_pair(left_id, right_id, strategy, score, reason, video_path))

    def set_pair_video(self, pair_id: int, video_path: str | os.PathLike) -> None:
        self._set(S.pairs, "pair_id", pair_id, video_path=self.paths.to_row(video_path))

    def _set(self, table, field: str, row_id: int, only_if: tuple = (), **values) -> bool:
        """Update one row; with ``only_if`` (conditions on the row), only while they hold, checked and set in one
        statement. Returns whether the row was updated; a row that does not exist is NotFound either way."""
        row_id = _int_id(field, row_id)

        def write(w: _Writer) -> bool:
            if w.conn.execute(update(table).where(table.c.id == row_id, *only_if).values(**values)).rowcount == 1:
                return True
            if only_if and w.conn.execute(select(table.c.id).where(table.c.id == row_id)).first() is not None:
                return False
            raise NotFound(f"{field} {row_id} does not exist")

        return self._write(write)

    def delete_pairs(self, pair_ids: list[int]) -> int:
        """Delete pairs together with all their label rows and assignments (one transaction); returns how many.

        An explicit clean-up by a person (a badly chosen or broken pair): the only way label rows
        ever leave the store. Their trajectories stay, and the store remembers each pair by its two clips
        (:meth:`deleted_pairs`), so that an import of an export made before does not bring it back. Every id must
        exist, else nothing is deleted.
        """
        ids = sorted({_int_id("pair_id", i) for i in pair_ids})

        def write(w: _Writer):
            found = w.conn.execute(select(S.pairs.c.id, S.pairs.c.task_id, S.pairs.c.left_id, S.pairs.c.right_id)
                                   .where(S.pairs.c.id.in_(ids))).all()
            missing = [i for i in ids if i not in {row.id for row in found}]
            if missing:
                raise NotFound(f"pair_id {missing[0]} does not exist" + (f" (nor {missing[1:]})" if missing[1:] else ""))
            for row in found:  # the same two clips deleted again (re-added meanwhile): the newest deletion is kept
                values = {"task_id": row.task_id, "pair_id": row.id, "deleted_at": S.utcnow()}
                w.conn.execute(_insert(w.conn, S.deleted_pairs).values(left_id=row.left_id, right_id=row.right_id, **values)
                               .on_conflict_do_update(index_elements=["left_id", "right_id"], set_=values))
            w.conn.execute(delete(S.assignments).where(S.assignments.c.pair_id.in_(ids)))
            w.conn.execute(update(S.labels).where(S.labels.c.pair_id.in_(ids)).values(supersedes_id=None))
            w.conn.execute(delete(S.labels).where(S.labels.c.pair_id.in_(ids)))
            return w.conn.execute(delete(S.pairs).where(S.pairs.c.id.in_(ids))).rowcount

        return self._write(write) if ids else 0

    def deleted_pairs(self, task_id: str) -> dict[tuple[int, int], int]:
        """The task's deleted pairs: (left clip id, right clip id) -> the id the pair had (see :meth:`delete_pairs`)."""
        D = S.deleted_pairs
        return {(row.left_id, row.right_id): row.pair_id for row in self._read(lambda c: c.execute(
            select(D.c.left_id, D.c.right_id, D.c.pair_id).where(D.c.task_id == task_id)).all())}

    def get_pair(self, pair_id: int) -> PairRecord:
        pair_id = _int_id("pair_id", pair_id)
        row = self._read(lambda c: c.execute(select(S.pairs).where(S.pairs.c.id == pair_id)).first())
        if row is None:
            raise NotFound(f"pair_id {pair_id} does not exist")
        return self._record(PairRecord, row)

    def list_pairs(self, task_id: str | None = None, without_video: bool = False) -> list[PairRecord]:
        """The pairs (of a task), oldest first; ``without_video``: only those whose video is not there to play
        (never rendered, or its file gone since: :attr:`PairRecord.video_ready`)."""
        query = select(S.pairs).order_by(S.pairs.c.id)
        if task_id is not None:
            query = query.where(S.pairs.c.task_id == task_id)
        pairs = [self._record(PairRecord, r) for r in self._read(lambda c: c.execute(query).all())]
        return [p for p in pairs if not p.video_ready] if without_video else pairs

    def next_pair(self, annotator: str, task_id: str | None = None, overlap: int = 1,
                  passing_over: Collection[int] = ()) -> PairRecord | None:
        """The next pair for ``annotator``, or None when there is none left for them.

        A pair qualifies if this annotator has no standing label on it (a retracted one does not count)
        and fewer than ``overlap`` other annotators have labelled it or were handed it within the last
        :data:`LEASE`, and it is not one of ``passing_over`` (pairs the caller cannot judge now, e.g. a clip file
        gone: passed over without a label, so that they are served again once mended; the annotator's hold on them is
        let go, as a skip lets it go, so that others are served them meanwhile). A pair already handed to this
        annotator and not yet labelled comes first (a reloaded page shows the same pair), then pairs whose video is
        ready, then the oldest.
        """
        overlap = _overlap(overlap)
        passing_over = [_int_id("pair_id", pair_id) for pair_id in passing_over]

        def serve(w: _Writer):
            w.one_at_a_time(SERVING_LOCK)  # one server at a time
            me = w.annotator_id(annotator)
            A, P = S.assignments, S.pairs
            if passing_over:
                w.conn.execute(delete(A).where(A.c.annotator_id == me, A.c.pair_id.in_(passing_over), ~A.c.judged))
            my_lease = select(A.c.pair_id).where(A.c.annotator_id == me, ~A.c.judged, A.c.served_at >= S.utcnow() - LEASE)
            query = (select(P).where(*_open_to(me, task_id, overlap), P.c.id.not_in(passing_over))
                     .order_by(case((P.c.id.in_(my_lease), 0), else_=1), case((P.c.video_path.is_(None), 1), else_=0), P.c.id)
                     .limit(1))
            row = w.conn.execute(query).first()
            if row is None:
                return None
            w.hold(row.id, me, judged=False)
            return self._record(PairRecord, row)

        return self._write(serve)

    def task_overlap(self, task_id: str) -> int:
        """How many annotators the Label page hands each pair of ``task_id`` to: 1 for a task not set, and for a
        stored value that is no whole number from 1 to :data:`MAX_OVERLAP` (only a hand edit or another tool
        writes one: -3, 'two', 1e20), so that labelling goes on, one person per pair, until the Data page sets it
        again."""
        value = self._read(lambda c: c.execute(select(S.tasks.c.overlap).where(S.tasks.c.id == task_id)).scalar())
        return value if is_id(value) and value <= MAX_OVERLAP else 1

    def set_task_overlap(self, task_id: str, overlap: int) -> None:
        """Hand each pair of ``task_id`` to ``overlap`` annotators from now on (1 to :data:`MAX_OVERLAP`); pairs
        judged already keep their labels, and a raised overlap offers them to more people."""
        if isinstance(overlap, bool) or not isinstance(overlap, int) or not 1 <= overlap <= MAX_OVERLAP:
            raise ValueError(f"people per pair must be a whole number from 1 to {MAX_OVERLAP}, got {overlap!r}")

        def write(w: _Writer):
            w.ensure_task(task_id)
            w.conn.execute(update(S.tasks).where(S.tasks.c.id == task_id).values(overlap=overlap))

        self._write(write)

    def pairs_open_to(self, annotator: str, task_id: str | None = None, overlap: int = 1) -> int:
        """How many pairs :meth:`next_pair` could still hand ``annotator`` (none handed out by asking)."""
        overlap, name = _overlap(overlap), _text("annotator", annotator, MAX_NAME)

        def count(c):
            me = c.execute(select(S.annotators.c.id).where(S.annotators.c.name == name)).scalar()
            return c.execute(select(func.count()).select_from(S.pairs).where(*_open_to(me or -1, task_id, overlap))).scalar_one()

        return int(self._read(count))

    def pair_open_to(self, annotator: str, pair_id: int, task_id: str | None = None, overlap: int = 1) -> bool:
        """Whether pair ``pair_id`` (of ``task_id``, if given) exists and :meth:`next_pair` could hand it to
        ``annotator`` now: e.g. a page showing it may keep it while it is theirs to judge."""
        overlap, name, pair_id = _overlap(overlap), _text("annotator", annotator, MAX_NAME), _int_id("pair_id", pair_id)

        def count(c):
            me = c.execute(select(S.annotators.c.id).where(S.annotators.c.name == name)).scalar()
            return c.execute(select(func.count()).select_from(S.pairs)
                             .where(S.pairs.c.id == pair_id, *_open_to(me or -1, task_id, overlap))).scalar_one()

        return bool(self._read(count))

    # -- labels -------------------------------------------------------------------------------
    def add_label(self, pair_id: int, annotator: str, choice: str, seconds: float | None = None,
                  only_new: bool = False) -> int:
        """Append a label; returns its id.

        ``choice`` is one of :data:`LABEL_CHOICES`: ``left``/``right`` (that clip was safer), ``equal``,
        ``cant_tell``, or ``skip`` (passed on the pair: kept, never served to this annotator again,
        never a preference). Labelling a pair again supersedes the annotator's earlier label, unless
        ``only_new``: then it raises :class:`AlreadyAnswered` (checked in the same transaction as the write).
        """
        return self._write(lambda w: w.add_label(pair_id, annotator, choice, seconds, only_new=only_new))

    def undo_last_label(self, annotator: str, task_id: str | None = None) -> int | None:
        """Retract this annotator's most recent standing label (on a pair of ``task_id``, if given) by appending a
        ``retract`` row.

        Returns the **pair id** whose label was retracted (so the page can show that pair again; it
        is also what :meth:`next_pair` serves next), or None if nothing is left to undo.
        """
        name = _text("annotator", annotator, MAX_NAME)
        of_task = [S.pairs.c.task_id == task_id] if task_id is not None else []

        def undo(w: _Writer):
            me = w.conn.execute(select(S.annotators.c.id).where(S.annotators.c.name == name)).scalar()
            if me is None:
                return None
            latest = _effective_rows()
            row = w.conn.execute(select(S.labels.c.id, S.labels.c.pair_id).join(latest, S.labels.c.id == latest.c.id)
                                 .join(S.pairs, S.pairs.c.id == S.labels.c.pair_id)
                                 .where(and_(S.labels.c.annotator_id == me, S.labels.c.choice.in_(LABEL_CHOICES), *of_task))
                                 .order_by(S.labels.c.id.desc()).limit(1)).first()
            if row is None:
                return None
            w.conn.execute(insert(S.labels).values(pair_id=row.pair_id, annotator_id=me, choice=RETRACT,
                                                   supersedes_id=row.id, created_at=S.utcnow()))
            w.hold(row.pair_id, me, judged=False)  # served to them again first
            return row.pair_id

        return self._write(undo)

    def label_history(self, task_id: str | None = None) -> list[LabelRecord]:
        """Every label row ever written, oldest first (retractions and skips included; a choice it may not hold is
        read as a retraction: :data:`_CHOICE_READ`)."""
        query = (select(S.labels, _CHOICE_READ.label("choice_read"), S.annotators.c.name.label("annotator"))
                 .join(S.annotators, S.annotators.c.id == S.labels.c.annotator_id)
                 .join(S.pairs, S.pairs.c.id == S.labels.c.pair_id).order_by(S.labels.c.id))
        if task_id is not None:
            query = query.where(S.pairs.c.task_id == task_id)
        rows = self._read(lambda c: c.execute(query).all())
        return [LabelRecord(id=r.id, pair_id=r.pair_id, annotator=r.annotator, choice=r.choice_read, seconds=r.seconds,
                            supersedes_id=r.supersedes_id, created_at=r.created_at) for r in rows]

    def effective_labels(self, task_id: str | None = None) -> "pd.DataFrame":
        """The standing judgement per (pair, annotator): the latest row, if it is a judgement (not a retraction, a
        skip, or a choice it may not hold: :data:`_CHOICE_READ`).

        Columns: label_id, pair_id, task_id, left_id, right_id, annotator, choice, seconds, created_at.
        """
        latest = _effective_rows()
        query = (select(S.labels.c.id.label("label_id"), S.labels.c.pair_id, S.pairs.c.task_id, S.pairs.c.left_id,
                        S.pairs.c.right_id, S.annotators.c.name.label("annotator"), S.labels.c.choice,
                        S.labels.c.seconds, S.labels.c.created_at)
                 .join(latest, S.labels.c.id == latest.c.id)
                 .join(S.pairs, S.pairs.c.id == S.labels.c.pair_id)
                 .join(S.annotators, S.annotators.c.id == S.labels.c.annotator_id)
                 .where(S.labels.c.choice.in_(CHOICES)).order_by(S.labels.c.id))
        if task_id is not None:
            query = query.where(S.pairs.c.task_id == task_id)
        rows = self._read(lambda c: c.execute(query).all())
        import pandas as pd

        columns = ["label_id", "pair_id", "task_id", "left_id", "right_id", "annotator", "choice", "seconds", "created_at"]
        return pd.DataFrame([tuple(r) for r in rows], columns=columns)

    def decided_pairs(self, task_id: str) -> list[tuple[int, int]]:
        """(winner id, loser id) per pair by majority of its left/right labels; ties, equal and cant_tell skipped."""
        labels = self.effective_labels(task_id)
        decided = labels[labels.choice.isin(["left", "right"])]
        result = []
        for (pair_id, left, right), group in decided.groupby(["pair_id", "left_id", "right_id"], sort=True):
            votes = (group.choice == "left").sum() - (group.choice == "right").sum()
            if votes:
                result.append((int(left), int(right)) if votes > 0 else (int(right), int(left)))
        return result

    def preference_pairs(self, task_id: str, on_progress=None) -> list[tuple["Trajectory", "Trajectory"]]:
        """(winner, loser) trajectories of every decided pair (see :meth:`decided_pairs`); ``on_progress(done,
        total)`` after each pair's clips are read (thousands of pairs take a while)."""
        decided = self.decided_pairs(task_id)
        pairs = []
        for winner, loser in decided:
            clips = []
            for clip_id in (winner, loser):
                try:
                    clips.append(self.get_trajectory(clip_id))
                except ValueError as exc:  # its file removed or cut short since: said with the pair it belongs to
                    raise ValueError(f"{exc}; it is a clip of a labelled pair of {task_id}: delete that pair "
                                     "(Data › Delete) or restore the file") from None
                if clips[-1].task_id != task_id:  # a pair's row edited: a clip of another robot would train this one
                    raise ValueError(f"clip {clip_id} is a clip of {clips[-1].task_id}, but a labelled pair of {task_id} "
                                     "names it (its row was edited?); delete that pair (Data › Delete)")
            pairs.append(tuple(clips))
            if on_progress is not None:
                on_progress(len(pairs), len(decided))
        return pairs

    # -- runs and metrics ---------------------------------------------------------------------
    def create_run(self, task_id: str, policy_id: int | None, kind: str, config: dict) -> int:
        """A background run in status ``queued``; returns its id."""
        kind = _text("kind", kind, 64)
        if not isinstance(config, dict):
            raise ValueError(f"config must be a dict, got {type(config).__name__}")

        def create(w: _Writer):
            task = w.ensure_task(task_id)
            if policy_id is not None:
                w._policy_row(_int_id("policy_id", policy_id))
            now = S.utcnow()
            return w.conn.execute(insert(S.runs).values(
                task_id=task, policy_id=policy_id, kind=kind, config=config, status="queued", created_at=now,
                updated_at=now).returning(S.runs.c.id)).scalar_one()

        return self._write(create)

    def update_run(self, run_id: int, only_if_status: str | None = None, only_if_process: tuple[int, str] | None = None,
                   **fields) -> bool:
        """Set any of status, pid, host, error, output_policy_id, log_path, heartbeat (a datetime, or True for now), config.
        With ``only_if_status``, only while the run's status is that one, checked and set in one statement (a queued
        run cancelled by the app and claimed by its starting process at the same moment: one of the two wins); with
        ``only_if_process`` (pid, host), only while the run is that process's (not resumed by another since);
        returns whether the run was updated."""
        run_id = _int_id("run_id", run_id)
        unknown = set(fields) - _RUN_FIELDS
        if unknown:
            raise ValueError(f"unknown run fields {sorted(unknown)}; allowed: {sorted(_RUN_FIELDS)}")
        if "status" in fields and fields["status"] not in RUN_STATUSES:
            raise ValueError(f"status must be one of {RUN_STATUSES}, got {fields['status']!r}")
        if fields.get("heartbeat") is True:
            fields["heartbeat"] = S.utcnow()
        if "heartbeat" in fields and not (fields["heartbeat"] is None or isinstance(fields["heartbeat"], datetime)):
            raise ValueError(f"heartbeat must be a datetime or True, got {fields['heartbeat']!r}")
        if fields.get("output_policy_id") is not None:
            self.get_policy(_int_id("output_policy_id", fields["output_policy_id"]))
        if fields.get("log_path") is not None:
            fields["log_path"] = self.paths.to_row(fields["log_path"])
        only_if = () if only_if_status is None else (S.runs.c.status == only_if_status,)
        if only_if_process is not None:
            only_if += (S.runs.c.pid == only_if_process[0], S.runs.c.host == only_if_process[1])
        return self._set(S.runs, "run_id", run_id, only_if, updated_at=S.utcnow(), **fields)

    def get_run(self, run_id: int) -> RunRecord:
        run_id = _int_id("run_id", run_id)
        row = self._read(lambda c: c.execute(select(S.runs).where(S.runs.c.id == run_id)).first())
        if row is None:
            raise NotFound(f"run_id {run_id} does not exist")
        return self._record(RunRecord, row)

    def list_runs(self, task_id: str | None = None, kinds: tuple[str, ...] | None = None,
                  statuses: tuple[str, ...] | None = None, limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first: of ``task_id``, of one of ``kinds``, in one of ``statuses``, at most ``limit``
        (each None: any)."""
        query = select(S.runs).order_by(S.runs.c.id.desc()).limit(limit)
        if task_id is not None:
            query = query.where(S.runs.c.task_id == task_id)
        if kinds is not None:
            query = query.where(S.runs.c.kind.in_(kinds))
        if statuses is not None:
            query = query.where(S.runs.c.status.in_(statuses))
        return [self._record(RunRecord, r) for r in self._read(lambda c: c.execute(query).all())]

    def add_metrics(self, run_id: int, step: int, metrics: dict[str, float]) -> None:
        """One row per metric name (``group/name``) at ``step``; all in one transaction."""
        run_id = _int_id("run_id", run_id)
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an integer ≥ 0, got {step!r}")
        rows = [{"name": _text("metric name", name, 128), "value": _finite(f"metric {name!r}", value)}
                for name, value in metrics.items()]
        if not rows:
            return

        def write(w: _Writer):
            if w.conn.execute(select(S.runs.c.id).where(S.runs.c.id == run_id)).first() is None:
                raise NotFound(f"run_id {run_id} does not exist")
            now = S.utcnow()
            w.conn.execute(insert(S.metrics), [dict(r, run_id=run_id, step=step, time=now) for r in rows])

        self._write(write)

    def run_metrics(self, run_id: int) -> "pd.DataFrame":
        """Columns step, name, value, time; ordered by step. A row whose value is no finite number or whose step is
        no whole number ≥ 0 (only a hand edit or another tool writes one: SQLite keeps 'lots' in a number column,
        PostgreSQL 'NaN') is left out, as a metric not reported: its text reached the figures and ``--json``."""
        query = (select(S.metrics.c.step, S.metrics.c.name, S.metrics.c.value, S.metrics.c.time)
                 .where(S.metrics.c.run_id == run_id, *self._readable_step()).order_by(S.metrics.c.step, S.metrics.c.id))
        rows = self._read(lambda c: c.execute(query).all())
        import pandas as pd

        readable = [tuple(r) for r in rows if is_finite_number(r.value)]  # SQLite keeps any text a hand edit puts there
        return pd.DataFrame(readable, columns=["step", "name", "value", "time"])

    def _readable_step(self) -> list:
        """Conditions on ``metrics`` of a row whose step can be read: a whole number ≥ 0. SQLite keeps whatever a hand
        edit stores (its text sorted above every number, its 1.5 is no step); PostgreSQL's column holds integers."""
        step = S.metrics.c.step
        return [step >= 0] + ([func.typeof(step) == "integer"] if self.is_sqlite else [])

    def delete_metrics_after(self, run_id: int, step: int, prefix: str = "", keep_prefixed: bool = False) -> int:
        """Drop the run's metric rows of steps after ``step`` (a run resumed from its checkpoint of ``step`` reports
        them again): those whose name starts with ``prefix``, or with ``keep_prefixed`` all others; returns how many
        rows went."""
        run_id, step, m = _int_id("run_id", run_id), int(step), S.metrics.c
        where = [m.run_id == run_id, m.step > step, *self._readable_step()]  # an unreadable row is no report: kept
        if prefix:
            where.append(~_starts_with(m.name, prefix) if keep_prefixed else _starts_with(m.name, prefix))
        return self._write(lambda w: w.conn.execute(delete(S.metrics).where(*where)).rowcount)

    def latest_steps(self, run_ids: list[int], except_prefix: str = "") -> dict[int, tuple[int | None, int | None]]:
        """run id -> (its highest step among metrics whose name does not start with ``except_prefix``, its highest
        step over all of them); None where there is none. One query, without reading the metrics themselves."""
        if not run_ids:
            return {}
        m = S.metrics.c
        others = case((_starts_with(m.name, except_prefix), None), else_=m.step) if except_prefix else m.step
        query = (select(m.run_id, func.max(others), func.max(m.step))
                 .where(m.run_id.in_([_int_id("run_id", r) for r in run_ids]), *self._readable_step()).group_by(m.run_id))
        found = {int(r[0]): (r[1], r[2]) for r in self._read(lambda c: c.execute(query).all())}
        return {r: found.get(r, (None, None)) for r in run_ids}

    # -- summary ------------------------------------------------------------------------------
    def counts(self, task_id: str | None = None) -> dict:
        """trajectories, pairs, videos_ready, labelled (pairs with ≥ 1 judgement), pending (pairs with none),
        labels (standing judgements), label_rows (all rows ever), unreadable_labels (rows whose choice is none a label
        may hold, read as retractions: :data:`_CHOICE_READ`), annotators (who judged)."""
        def count(conn, table, *where):
            query = select(func.count()).select_from(table)
            for clause in where:
                query = query.where(clause)
            return conn.execute(query).scalar_one()

        def read(conn):
            tf = (lambda t: [t.c.task_id == task_id]) if task_id is not None else (lambda t: [])
            return {
                "trajectories": count(conn, S.trajectories, *tf(S.trajectories)),
                "pairs": count(conn, S.pairs, *tf(S.pairs)),
                "label_rows": count(conn, S.labels.join(S.pairs, S.pairs.c.id == S.labels.c.pair_id), *tf(S.pairs)),
                "unreadable_labels": count(conn, S.labels.join(S.pairs, S.pairs.c.id == S.labels.c.pair_id), *tf(S.pairs),
                                           S.labels.c.choice.not_in([*LABEL_CHOICES, RETRACT])),
            }

        result = self._read(read)
        result["videos_ready"] = result["pairs"] - len(self.list_pairs(task_id, without_video=True))  # files there
        labels = self.effective_labels(task_id)
        result["labels"] = len(labels)
        result["labelled"] = int(labels.pair_id.nunique())
        result["pending"] = result["pairs"] - result["labelled"]
        result["annotators"] = int(labels.annotator.nunique())
        return result

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.engine)
