"""CLI commands over the preference store: pairs, label-synthetic, export, import, runs, policies, agreement,
checkpoints."""
from __future__ import annotations

import argparse
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

from prefine_core.cli.args import (MAX_FRAME_SIZE, MIN_FRAME_SIZE, Progress, folder_to_write, frame_size, non_negative_float,
                                   non_negative_int, number_between, open_workspace, positive_int, seed, synthetic_name,
                                   whole_number_between)


def _workspace(args: argparse.Namespace, existing: bool = True):
    """The workspace of ``--workspace`` (:func:`prefine_core.cli.args.open_workspace`)."""
    return open_workspace(args.workspace, existing)


@contextmanager
def _new_workspace(args: argparse.Namespace):
    """The workspace of ``--workspace``, made if it is not there (``import``, ``pairs --collect``). One made here (in
    new folders, or in an empty one) goes again when the command does not finish, whatever stopped it, while it holds
    no work: a junk zip, found out only once read, left a whole empty workspace behind, and so did a policy file that
    failed with a TypeError. It stays when a command interrupted (Ctrl-C) keeps what it finishes (``args.kept`` says
    what), and when it holds whole rows of work, this command's (clips collected before an error) or another's (a
    ``pairs --collect`` into it while an import failed: the import took its clips with it). The flags are checked
    before this is entered."""
    from prefine_core.workspace import Workspace

    root = Workspace.folder(args.workspace)
    missing = [folder for folder in (root, *root.parents) if not folder.exists()]  # innermost first
    empty = root.is_dir() and not any(root.iterdir())  # what it holds after this is the command's
    ws = None
    try:
        ws = _workspace(args, existing=False)
        yield ws
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt) and getattr(args, "kept", None) or ws is not None and _holds_work(ws):
            raise
        if missing:
            shutil.rmtree(missing[-1], ignore_errors=True)
        elif empty:
            for entry in root.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        raise


def _holds_work(ws) -> bool:
    """Whether a workspace holds anything a command wrote: clips, pairs, runs or a policy not shipped (whole rows; an
    import that fails writes none). A store that cannot be read is taken to hold some: it is not removed unseen."""
    try:
        counts = ws.store.counts()
        return bool(counts["trajectories"] or counts["pairs"] or ws.store.list_runs(limit=1)
                    or any(policy.kind == "imported" for policy in ws.store.list_policies()))
    except Exception:  # noqa: BLE001 (a locked or damaged store: kept, whatever the reason)
        return True


def _task(text: str) -> str:
    from prefine_core.envs import UnknownTaskError, validate_task_id

    try:
        return validate_task_id(text)
    except UnknownTaskError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: The fastest video frame rate ``pairs --fps`` makes (a video player shows no more).
MAX_FPS = 120

#: ``label-synthetic --overlap`` that labels every pair: more annotators than any pair has.
EVERY_PAIR = 1_000_000

#: The most pairs one ``pairs`` command adds (each wants a video and a person's time; 10 000 is weeks of labelling).
MAX_NEW_PAIRS = 10_000


def _listed(text: str, parse, example: str) -> tuple:
    """Comma-separated values, each read by ``parse``; an empty one is refused (``1,,2`` was taken as 1,2, and an
    empty list of temperatures dropped the reference)."""
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated {example}, got {text!r}")
    return tuple(map(parse, parts))


def _seeds(text: str) -> tuple[int, ...]:
    """Comma-separated episode seeds, each one as ``--seed`` takes it (digits 0-9, 0 to the largest seed)."""
    return _listed(text, seed, "seeds such as 0,1,2")


def _temperatures(text: str) -> tuple[float, ...]:
    """Comma-separated sampling temperatures, each from 0 to the store's :data:`MAX_TEMPERATURE` (one past it was
    refused only by the store, after the clips before it were written)."""
    from prefine_core.store import MAX_TEMPERATURE

    return _listed(text, number_between(0.0, MAX_TEMPERATURE), "temperatures such as 0.5,1")


def _pairs(args: argparse.Namespace) -> dict:
    from prefine_core import pair_videos, pool

    if not args.render_only and args.task is None:
        raise ValueError("--task is required (except with --render-only)")
    if args.render_only and args.collect:  # the advice said the workspace "is made by pairs --collect"
        raise ValueError("--render-only renders the videos of the pairs there already, so it does not go with "
                         "--collect: leave out --render-only to collect, make pairs and render them")
    result: dict = {}
    if args.collect and not args.render_only:
        config = pool.PoolConfig(args.task, seeds=args.seeds, reference_temperatures=args.temperatures,
                                 clip_length=args.clip_length, max_steps=args.max_steps)
        with _new_workspace(args) as ws:
            result["workspace"] = str(ws.root)
            rollouts = len(pool.pool_sources(ws.store, config)) * len(config.seeds)
            bar = Progress(rollouts, "pool")
            clips_before = ws.store.counts(args.task)["trajectories"]
            # what is kept is counted in the store, not by the bar: a stop between a write and the bar's step
            args.kept = lambda: (f"{ws.store.counts(args.task)['trajectories'] - clips_before} new clips are kept; "
                                 "the same command goes on from there (a clip here is not added again)")
            try:
                result["clips_added"] = len(pool.collect_pool(ws, config, on_progress=lambda d, t: bar.update_to(d)))
            finally:
                bar.close()
            args.kept = None
    else:
        ws = _workspace(args)
        result["workspace"] = str(ws.root)
    if not args.render_only:
        result["pool"] = pool.pool_summary(ws.store, args.task).to_dict("records")
        added = pool.generate_pairs(ws.store, args.task, args.n, args.strategy, seed=args.seed,
                                    include_datasets=args.include_datasets)
        result["pairs_added"] = added
        result["strategy"] = args.strategy
        if len(added) < args.n:  # it said nothing when the pool had fewer new pairs than asked for
            more = "--collect more episodes (more --seeds)" + ("" if args.include_datasets else
                                                              ", or --include-datasets for imported clips")
            result["note"] = (f"{len(added)} of the {args.n} pairs asked for were added: the pool's clips make no "
                              f"more new pairs ({more})")
    if args.background:  # a run per task, shown by the app like any job (and not started twice)
        tasks = sorted({p.task_id for p in ws.store.list_pairs(args.task, without_video=True)})  # a run with nothing
        result["render_runs"] = [pair_videos.render_missing(ws, task, size=args.size) for task in tasks]  # to do: none
        if not tasks:
            result["note"] = "; ".join(filter(None, [result.get("note"), "no pair video is missing: nothing to render"]))
    elif args.render or args.render_only:
        pending = len(ws.store.list_pairs(args.task, without_video=True))
        bar = Progress(pending, "render")
        args.kept = lambda: (f"{pending - len(ws.store.list_pairs(args.task, without_video=True))} of {pending} "
                             "videos are made and kept; --render-only makes the rest")
        try:
            result["render"] = pair_videos.render_pending(ws, args.task, size=args.size, fps=args.fps,
                                                          on_progress=lambda d, t: bar.update_to(d))
        finally:
            bar.close()
    result["counts"] = ws.store.counts(args.task)
    return result


def _label_synthetic(args: argparse.Namespace) -> dict:
    from prefine_core.teachers import SyntheticTeacher, TeacherConfig, label_pending

    ws = _workspace(args)
    config = TeacherConfig(mistake_rate=args.mistake_rate, equal_margin=args.equal_margin, skip_rate=args.skip_rate,
                           myopic_discount=args.myopic_discount, seed=args.seed)
    teacher = SyntheticTeacher(config, name=args.name)
    open_now = ws.store.pairs_open_to(teacher.name, args.task, overlap=args.overlap)
    bar = Progress(open_now if args.limit is None else min(args.limit, open_now), f"label ({teacher.name})")
    args.kept = lambda: (f"{open_now - ws.store.pairs_open_to(teacher.name, args.task, overlap=args.overlap)} labels "
                         f"by {teacher.name} are stored; the same command labels the rest")
    unreadable: list[str] = []  # pairs whose clips are gone or damaged: passed over, and said
    with bar:
        written = label_pending(ws.store, teacher, task_id=args.task, limit=args.limit, overlap=args.overlap,
                                on_label=bar.update_to, unreadable=unreadable)
    return {"annotator": teacher.name, "labels_written": written, "counts": ws.store.counts(args.task),
            **({"skipped_unreadable": unreadable} if unreadable else {})}


def _export(args: argparse.Namespace) -> dict:
    from prefine_core.exchange import export_bundle

    ws = _workspace(args)
    return export_bundle(ws, args.out or _next_export(ws.exports_dir), task_id=args.task,
                         include_policies=not args.no_policies, include_videos=not args.no_videos)


def _next_export(exports: Path) -> Path:
    """``exports/export-N``, N one past the largest in use: counting the folder's entries named one taken already
    once an older export had been deleted ("export-2 is not empty")."""
    taken = [int(match[1]) for path in exports.iterdir() if (match := re.fullmatch(r"export-([0-9]+)", path.name))]
    return exports / f"export-{max(taken, default=0) + 1}"


def _import(args: argparse.Namespace) -> dict:
    """The same imports as the Data page's uploader, from a path."""
    from prefine_core import transfer
    from prefine_core.datasets import HDF5_SIGNATURE, dataset_source, import_hdf5
    from prefine_core.exchange import import_bundle

    path = Path(args.path)
    what = "an export folder or .zip, a .safetensors policy, or an .hdf5/.h5 dataset"
    if not path.exists():
        raise ValueError(f"{path} does not exist; give {what}")
    if not (path.is_dir() or path.is_file()):  # a pipe waited for a writer forever, /dev/zero filled the memory
        raise ValueError(f"{path} is not a regular file or folder; give {what}")
    if path.suffix.lower() == ".safetensors" and path.stat().st_size > transfer.MAX_POLICY_BYTES:
        raise ValueError(transfer.too_big_for_a_policy(path.name, path.stat().st_size))
    suffix = "folder" if path.is_dir() else path.suffix.lower()
    if suffix != "folder" and suffix.lstrip(".") not in transfer.ACCEPTED:  # the Data page's uploader takes the same
        raise ValueError(f"{path} is not a file PREFINE Studio can import; give {what}")
    if args.restore_deleted and suffix not in ("folder", ".zip"):
        raise ValueError(f"--restore-deleted adds back pairs of an export (a folder or .zip), not of {path.name}")
    if suffix in HDF5_SUFFIXES:  # refused before the progress bar opens
        if args.task is None:
            raise ValueError("--task is required to import an HDF5 dataset (which task recorded it?)")
        dataset_source(args.source, path)
        with open(path, "rb") as handle:
            if handle.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
                raise ValueError(f"{path.name} is not an HDF5 file (its first bytes are wrong); give {what}")
    with _new_workspace(args) as ws:
        if suffix == "folder":
            return {"kind": "bundle", **import_bundle(ws, path, args.restore_deleted)}
        if suffix == ".zip":
            return {"kind": "bundle", **transfer.import_zip(ws, path.name, path, args.restore_deleted)}
        if suffix == ".safetensors":
            policy, added = transfer.register_policy(ws, path.name, path.read_bytes())
            return {"kind": "policy", "policy_id": policy.id, "name": policy.name, "task_id": policy.task_id,
                    "added": added}
        with Progress(None, f"import {path.name}") as bar:
            return {"kind": "hdf5", **import_hdf5(ws, path, args.task, clip_length=args.clip_length,
                                                  max_episodes=args.max_episodes, source=args.source,
                                                  on_progress=lambda done, total: bar.update_to(done, total=total))}


#: The file names ``import`` reads as an HDF5 dataset.
HDF5_SUFFIXES = (".hdf5", ".h5")


class _HDF5Flag(argparse.Action):
    """A flag of ``import`` that only an HDF5 dataset takes: stored, and noted as typed (its default may be typed too)
    for :func:`_import_of_its_kind`."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.hdf5_flags = [*namespace.hdf5_flags, option_string]


def _import_of_its_kind(args: argparse.Namespace) -> dict:
    """:func:`_import`, once the flags typed are ones its file takes: --task, --clip-length, --max-episodes and
    --source with an export or a policy were ignored without a word."""
    path = Path(args.path)
    if args.hdf5_flags and (path.is_dir() or path.suffix.lower() not in HDF5_SUFFIXES):
        raise ValueError(f"{', '.join(args.hdf5_flags)}: only an HDF5 dataset (.hdf5, .h5) takes "
                         f"{'this flag' if len(args.hdf5_flags) == 1 else 'these flags'}, not {path.name}; drop "
                         f"{'it' if len(args.hdf5_flags) == 1 else 'them'}")
    return _import(args)


def _agreement(args: argparse.Namespace) -> dict:
    """Agreement, and the task's people per pair (set with ``--people-per-pair``, as on the Data page's Agreement tab)."""
    from prefine_core.agreement import report
    from prefine_core.labelling import set_people_per_pair
    from prefine_core.teachers import SyntheticTeacher, TeacherConfig

    ws = _workspace(args)
    result = {}
    if args.people_per_pair is not None:
        if args.task is None:
            raise ValueError("--people-per-pair needs --task (each task has its own)")
        result["set"] = set_people_per_pair(ws.store, args.task, args.people_per_pair)
    if args.task is not None:
        result["people_per_pair"] = ws.store.task_overlap(args.task)
    return {**result, **report(ws.store, args.task, SyntheticTeacher(TeacherConfig(equal_margin=args.equal_margin)))}


def _checkpoints(args: argparse.Namespace) -> dict:
    from prefine_core import jobs
    from prefine_core.checkpoints import checkpoint_frame, register_checkpoint

    ws = _workspace(args)
    with _named_by("--run"):  # an unknown run is named, not listed as an empty table
        run = ws.store.get_run(args.run)
    if run.kind != "prefine":
        raise ValueError(f"run {args.run} is a {run.kind} run, not a fine-tune: it has no checkpoints")
    result: dict = {"run_id": args.run}
    if args.register is not None:
        result["registered_policy_id"] = register_checkpoint(ws, args.run, args.register)
    frame = checkpoint_frame(ws, args.run)
    result["checkpoints"] = frame.astype(object).where(frame.notna(), None).to_dict("records")  # NaN -> null
    if run.status == "done" and jobs.result(ws, args.run) is None:  # every "chosen" false, and nothing said why
        result["note"] = f"{jobs.result_missing(ws, run)}: which checkpoint the trainer chose is not known"
    return result


@contextmanager
def _named_by(flag: str):
    """An id given with ``flag`` that names no row is refused with the flag's name, not only the store's column's
    (``--cancel: run_id 999 does not exist``)."""
    from prefine_core.store import NotFound

    try:
        yield
    except NotFound as exc:
        raise ValueError(f"{flag}: {exc}") from None


def _runs(args: argparse.Namespace) -> dict:
    """Every background run (fine-tunes, comparisons, pair preparation, video rendering), as the app runs them; and
    cancelling or resuming one."""
    from prefine_core import jobs

    ws = _workspace(args)
    said = {}
    if args.cancel is not None:
        with _named_by("--cancel"):
            run = ws.store.get_run(args.cancel)
        if run.status not in jobs.ACTIVE:  # the app's button is drawn on live runs only; here a typo would pass
            raise ValueError(f"run {run.id} is {run.status}; only queued or running runs can be cancelled")
        jobs.cancel(ws, args.cancel)
        said["cancelled"] = args.cancel
    if args.resume is not None:
        with _named_by("--resume"):
            jobs.resume(ws, args.resume)
        said["resumed"] = args.resume
    jobs.reap(ws, args.task)
    runs = ws.store.list_runs(args.task)
    steps = ws.store.latest_steps([run.id for run in runs])
    return {**said, "runs": [{"id": run.id, "kind": run.kind, "task_id": run.task_id, "status": run.status,
                              "step": steps.get(run.id, (None, None))[1], "error": jobs.error_text(run), "host": run.host,
                              "created_at": run.created_at.isoformat() if run.created_at else None,
                              "log": str(log) if (log := jobs.log_path(ws, run.id)).is_file() else None}  # its own
                             for run in runs]}


def _policies(args: argparse.Namespace) -> dict:
    """The registered policies, as the Data page's Policies tab lists them; and deleting one that nothing uses (the
    same refusals: a shipped policy, one a clip, a run or another policy refers to)."""
    from prefine_core.browse import policy_rows

    ws = _workspace(args)
    said = {}
    if args.delete is not None:
        with _named_by("--delete"):
            doomed = ws.store.get_policy(args.delete)
        if args.task is not None and doomed.task_id != args.task:
            raise ValueError(f"policy {doomed.id} is a policy for {doomed.task_id}, not {args.task}; nothing was deleted")
        gone = ws.delete_policy(args.delete)
        said["deleted"] = {"id": gone.id, "name": gone.name, "task_id": gone.task_id}
    return {**said, "policies": policy_rows(ws.store, args.task)}


def register(command) -> None:
    def with_workspace(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--workspace", default=None,
                       help="workspace folder (default: $PREFINE_WORKSPACE or data/workspace); store from $PREFINE_DB_URL if set")
        return p

    from prefine_core.queries import STRATEGIES
    from prefine_core.store.api import MAX_OVERLAP

    p = with_workspace(command("pairs", "collect the behaviour pool, choose pairs to label, render their videos"))
    p.add_argument("--task", type=_task, help="Safety-Gymnasium task id (required, except with --render-only)")
    p.add_argument("--n", type=whole_number_between(1, MAX_NEW_PAIRS), default=20,
                   help=f"pairs to add, 1 to {MAX_NEW_PAIRS}")
    p.add_argument("--strategy", choices=STRATEGIES, default="random", help="query strategy")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the strategy's choices")
    p.add_argument("--collect", action="store_true", help="first roll out the registered policies into the pool")
    p.add_argument("--seeds", type=_seeds, default=(0, 1, 2, 3), help="episode seeds for --collect (default 0,1,2,3)")
    p.add_argument("--temperatures", type=_temperatures, default=(0.5, 1.0, 1.5),
                   help="reference sampling temperatures for --collect (default 0.5,1,1.5; 0 = deterministic)")
    p.add_argument("--clip-length", type=non_negative_int, default=200, help="clip length in steps, 0 = whole episodes")
    p.add_argument("--max-steps", type=positive_int, default=None, help="cap on episode length for --collect (default: the task's own limit)")
    p.add_argument("--include-datasets", action="store_true",
                   help="also pair clips of imported datasets (they have no video: for the synthetic teacher)")
    p.add_argument("--render", action="store_true", help="render pending pair videos here, after generating")
    p.add_argument("--background", action="store_true", help="render pending pair videos in a background job (a run)")
    p.add_argument("--render-only", action="store_true", help="only render pending pair videos")
    p.add_argument("--size", type=frame_size, default=256, help=f"video frame size in pixels, {MIN_FRAME_SIZE} to {MAX_FRAME_SIZE}")
    p.add_argument("--fps", type=whole_number_between(1, MAX_FPS), default=30,
                   help=f"video frame rate, 1 to {MAX_FPS}")
    p.set_defaults(handler=_pairs)

    p = with_workspace(command("label-synthetic", "label with the synthetic cost-oracle teacher, as one more annotator, "
                                                  "every pair it has not labelled yet (--overlap to skip pairs people "
                                                  "already judged)"))
    p.add_argument("--task", type=_task, default=None, help="only pairs of this task")
    p.add_argument("--limit", type=positive_int, default=None, help="at most this many labels (default: every open pair)")
    p.add_argument("--name", type=synthetic_name, default="synthetic-teacher",
                   help="annotator name, starting with 'synthetic' (default synthetic-teacher)")
    p.add_argument("--overlap", type=whole_number_between(1, EVERY_PAIR), default=EVERY_PAIR,
                   help=f"skip pairs already labelled by this many others, 1 to {EVERY_PAIR} (default: label every pair)")
    p.add_argument("--mistake-rate", type=number_between(0, 1), default=0.0, help="probability of swapping an answer")
    p.add_argument("--equal-margin", type=non_negative_float, default=0.0, help="difference of the two clips' total costs judged \"equal\"")
    p.add_argument("--skip-rate", type=number_between(0, 1), default=0.0, help="probability of answering cant_tell")
    p.add_argument("--myopic-discount", type=number_between(0, 1, above_low=True), default=1.0,
                   help="γ weighting late steps more (above 0, at most 1)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the noise")
    p.set_defaults(handler=_label_synthetic)

    p = with_workspace(command("export", "export labels, pairs, trajectories, policies and pair videos "
                                         "(prefine-export/1)"))
    p.add_argument("--out", type=folder_to_write, default=None,
                   help="empty or new folder, in a folder that exists (default: <workspace>/exports/export-N)")
    p.add_argument("--task", type=_task, default=None, help="only this task")
    p.add_argument("--no-policies", action="store_true", help="leave the policy checkpoints out")
    p.add_argument("--no-videos", action="store_true",
                   help="leave the pairs' rendered videos out (0.25 MB on PointCircle to 1 MB on HalfCheetah a pair of 200-step clips): an import then "
                        "renders them again by replaying the clips, which fails for clips collected on another machine "
                        "or software build")
    p.set_defaults(handler=_export)

    p = with_workspace(command("import", "import an export (folder or .zip), a .safetensors policy, or a DSRL/D4RL "
                                         "HDF5 dataset as pool clips"))
    p.add_argument("path", help="export folder or .zip (as the Data page downloads it), .safetensors policy, or .hdf5/.h5 file")
    p.add_argument("--task", type=_task, default=None, action=_HDF5Flag, help="task the HDF5 dataset was recorded in")
    p.add_argument("--clip-length", type=non_negative_int, default=200, action=_HDF5Flag,
                   help="HDF5: clip length, 0 = whole episodes")
    p.add_argument("--max-episodes", type=positive_int, default=None, action=_HDF5Flag,
                   help="HDF5: import at most this many episodes (default: all)")
    p.add_argument("--source", default=None, action=_HDF5Flag, help="HDF5: pool source name (default dataset:<file name>)")
    p.add_argument("--restore-deleted", action="store_true",
                   help="export: add back the pairs deleted in this workspace since, with their labels (left out by default)")
    p.set_defaults(handler=_import_of_its_kind, hdf5_flags=[])

    p = with_workspace(command("runs", "list the background runs (fine-tunes, comparisons, pair preparation, video "
                                       "rendering); cancel or resume one"))
    p.add_argument("--task", type=_task, default=None, help="only this task's runs")
    act = p.add_mutually_exclusive_group()  # both did both, and a refusal of the second came after the first acted
    act.add_argument("--cancel", type=positive_int, default=None, metavar="RUN_ID", help="ask this run to stop")
    act.add_argument("--resume", type=positive_int, default=None, metavar="RUN_ID",
                     help="start a failed or cancelled run again from its last checkpoint")
    p.set_defaults(handler=_runs)

    p = with_workspace(command("policies", "list the registered policies; --delete one that nothing uses (a wrong "
                                           "upload, a checkpoint registered by mistake)"))
    p.add_argument("--task", type=_task, default=None, help="only this task's policies")
    p.add_argument("--delete", type=positive_int, default=None, metavar="POLICY_ID",
                   help="delete this policy and its uploaded file; refused for a shipped one and while a clip, a run "
                        "or another policy uses it")
    p.set_defaults(handler=_policies)

    p = with_workspace(command("agreement", "agreement with the true cost ordering and between annotators; "
                                            "--people-per-pair sets how many annotators each pair goes to"))
    p.add_argument("--task", type=_task, default=None, help="only this task (and its people per pair)")
    p.add_argument("--equal-margin", type=non_negative_float, default=0.0, help="difference of the two clips' total costs the truth calls \"equal\"")
    p.add_argument("--people-per-pair", type=whole_number_between(1, MAX_OVERLAP), default=None, metavar="N",
                   help=f"hand each pair of --task to N annotators from now on (1 to {MAX_OVERLAP}; 2 or more for "
                        "agreement between people), as the Data page's Agreement tab")
    p.set_defaults(handler=_agreement)

    p = with_workspace(command("checkpoints", "a fine-tune run's checkpoints (validation return, cost, safety, the "
                                              "trainer's choice); --register STEP makes one a policy"))
    p.add_argument("--run", type=positive_int, required=True, help="run id (Fine-tune page, or the store)")
    p.add_argument("--register", type=positive_int, default=None, metavar="STEP",
                   help="register the checkpoint of this step of a finished run as a policy of its task")
    p.set_defaults(handler=_checkpoints)
