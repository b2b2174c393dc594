"""The command line of the instructor tools, ``python -m autograder <command>``.

A thin layer: each command parses its arguments and calls one function. Defaults live in
:class:`~autograder.config.GradeConfig` and are only read here (shown in ``--help``). Each command imports
what it needs inside its own function, so that ``--help`` and a wrong argument import no torch
(``python -X importtime -m autograder --help``: ``autograder``, ``autograder.cli`` and ``autograder.config``).

Runs in the grader's process.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

__all__ = ["main"]


def _defaults(config: type) -> dict:
    return {f.name: f.default for f in dataclasses.fields(config) if f.default is not dataclasses.MISSING}


def _grade_parser(sub) -> argparse.ArgumentParser:
    from .config import GradeConfig
    d = _defaults(GradeConfig)
    grade = sub.add_parser("grade", help="grade a class's submissions with the hidden checks")
    grade.add_argument("submissions", help="the class's submissions: a Canvas or Moodle download (.zip or its folder), "
                                           "nbgrader's submitted/ or exchange inbound folder, or a folder of notebooks")
    grade.add_argument("--roster", default=None,
                       help="the class list: Canvas's gradebook CSV, Moodle's grading worksheet or an id,name,email "
                            "CSV; every student of it gets a row and their name")
    grade.add_argument("--data-root", required=True,
                       help="grading data: CINIC-10 folder or archive, a .npz subset, or 'synthetic'")
    grade.add_argument("--model", required=True, help="the pretrained checkpoint students prune")
    grade.add_argument("--out", required=True, help="output folder (grades.csv, feedback/, course/)")
    grade.add_argument("--jobs", type=int, default=d["jobs"], help=f"submissions graded at once (default {d['jobs']})")
    grade.add_argument("--timeout", type=float, default=d["timeout"],
                       help=f"seconds per notebook (default {d['timeout']:g})")
    grade.add_argument("--cell-timeout", type=float, default=d["cell_timeout"],
                       help="seconds per cell (default: --timeout)")
    grade.add_argument("--per-class", type=int, default=d["per_class"],
                       help=f"test and training images per class in the fixed grading subset (default "
                            f"{d['per_class']})")
    grade.add_argument("--device", default=d["device"],
                       help="cpu, cuda or cuda:N for the kernels and the grader's measurements (default: cuda when "
                            "torch sees a GPU, else cpu)")
    grade.add_argument("--full-notebook", action="store_true",
                       help="also run display cells and the visible checks (slower; same scores)")
    grade.add_argument("--spawn-kernels", action="store_true",
                       help="start every kernel from scratch instead of forking warm ones (slower; same scores)")
    grade.add_argument("--memory-limit", default=None,
                       help="memory per notebook beyond the preloaded libraries, e.g. 4G or 1536M "
                            "(default: 3/4 of the machine's memory divided by --jobs)")
    grade.add_argument("--pids-limit", type=int, default=d["pids_limit"],
                       help=f"processes and threads one job slot may have (default {d['pids_limit']})")
    grade.add_argument("--no-sandbox", action="store_true",
                       help="run student kernels without the bubblewrap sandbox (every row is noted 'not sandboxed')")
    grade.add_argument("--regrade", nargs="?", const=True, default=False, metavar="IDS",
                       help="grade everything again instead of reusing unchanged submissions' grades from the journal; "
                            "with student ids (--regrade alice,bob, after SUBMISSIONS), only those")
    grade.add_argument("--regrade-status", default="", metavar="STATUSES",
                       help="grade again the students whose last status is one of these (ok, error, timeout; "
                            "comma-separated, e.g. --regrade-status error,timeout); the rest is reused")
    grade.add_argument("--threads", type=int, default=d["threads"],
                       help="CPU threads per notebook (default: the machine's cores divided by --jobs; on a cluster "
                            "worker, its cores divided by its Dask threads)")
    grade.add_argument("--cluster", default=d["cluster"],
                       help="grade on Dask workers: a scheduler address (tcp://host:8786), local:N for N worker "
                            "processes here (then --jobs is N), or slurm (also pbs, sge, lsf, htcondor, oar) for "
                            "--workers batch jobs as Dask's jobqueue configuration says; default: local --jobs slots")
    grade.add_argument("--workers", type=int, default=d["workers"],
                       help=f"with --cluster slurm (or another batch scheduler): worker jobs to ask for (default "
                            f"{d['workers']})")
    grade.add_argument("--worker-wait", type=float, default=d["worker_wait"], metavar="SECONDS",
                       help=f"with --cluster slurm: how long to wait for the first worker job to start (default "
                            f"{d['worker_wait']:g}; the queue may hold jobs)")
    _similarity_argument(grade, d["similarity_threshold"])
    return grade


def _similarity_argument(parser: argparse.ArgumentParser, default: float) -> None:
    parser.add_argument("--similarity-threshold", type=float, default=default, metavar="SCORE",
                        help=f"code-similarity score (0 to 1) from which the class report lists a pair of submissions "
                             f"as worth comparing (default {default:g}, calibrated: docs/instructors.md)")


def _report_parser(sub) -> argparse.ArgumentParser:
    from .classreport.settings import SimilarityConfig
    report = sub.add_parser("report", help="rebuild the class report (report.html, similar-pairs.csv) of a finished "
                                           "grading run")
    report.add_argument("out", help="the --out folder of a finished grading run (it holds class.json)")
    _similarity_argument(report, SimilarityConfig.threshold)
    return report


def _demo_parser(sub) -> argparse.ArgumentParser:
    from .config import DemoConfig
    d = _defaults(DemoConfig)
    demo = sub.add_parser("demo", help="run the main job end to end on the generated dataset")
    demo.add_argument("--out", default=str(d["out"]),
                      help=f"folder for everything the demo writes (default {d['out']})")
    demo.add_argument("--data-root", default=d["data_root"],
                      help="dataset (default: the generated one; a CINIC-10 folder or archive works too)")
    demo.add_argument("--jobs", type=int, default=d["jobs"], help=f"submissions graded at once (default {d['jobs']})")
    return demo


def _release_parser(sub) -> argparse.ArgumentParser:
    from .config import ReleaseConfig
    d = _defaults(ReleaseConfig)
    rel = sub.add_parser("release", help="write the student bundle: release notebook, helpers wheel, model")
    rel.add_argument("--out", default=str(d["out"]), help=f"bundle folder, replaced (default {d['out']})")
    rel.add_argument("--model", default=None,
                     help="the pretrained checkpoint to ship, trained on CINIC-10 (python -m autograder train)")
    rel.add_argument("--allow-generated-model", action="store_true",
                     help="ship a model trained on the generated stand-in data (without --model: the demo's); "
                          "only for trying the bundle out")
    rel.add_argument("--helpers-url", default=None,
                     help="direct http(s) link to the helpers wheel, ending in its file name, for Colab (baked "
                          "into the notebook)")
    rel.add_argument("--model-url", default=None, help="URL the notebook downloads the model from when it finds none")
    return rel


def _export_parser(sub) -> argparse.ArgumentParser:
    from .lms.export import TARGETS
    export = sub.add_parser("export", help="grades (automatic and written-answer points) and feedback pages back to "
                                           "the LMS")
    export.add_argument("out", help="the --out folder of a finished grading run")
    export.add_argument("--to", choices=TARGETS, default=None,
                        help="canvas, moodle, csv or nbgrader (default: the LMS of the run's --roster, else csv)")
    export.add_argument("--template", default=None,
                        help="the file the LMS exported (Canvas's gradebook CSV, Moodle's grading worksheet) to fill "
                             "in (default: the run's --roster)")
    export.add_argument("--column", default=None,
                        help="Canvas: the assignment's column, its title or id (default: the one with 'prun' in it)")
    export.add_argument("--course", default=None,
                        help="nbgrader: the course folder whose submitted/ was graded (for release_feedback)")
    export.add_argument("--allow-ungraded-answers", action="store_true",
                        help="export students whose written answers are not graded yet, counting them as 0")
    return export


def _train_parser(sub) -> argparse.ArgumentParser:
    # listed here for --help only: main hands everything after "train" to autograder.train.main, which parses it
    return sub.add_parser("train", add_help=False,
                          help="train the reference model students prune (python -m autograder train --help)")


def _release(args, parser) -> int:
    from .config import ReleaseConfig
    from .release import TRAIN_COMMAND, ReleaseError, release
    cfg = ReleaseConfig(out=args.out, model=args.model, helpers_url=args.helpers_url, model_url=args.model_url)
    model = cfg.model
    if model is None and not args.allow_generated_model:
        print("error: a release needs the model your class prunes, trained on CINIC-10. Train one with\n"
              f"    {TRAIN_COMMAND}\nthen run  make release MODEL=pruning-model.pt  (or python -m autograder release "
              "--model pruning-model.pt). To try the bundle out with the demo's model, trained on the generated "
              "stand-in data, add --allow-generated-model.", file=sys.stderr)
        return 2
    if model is None:
        from .config import DemoConfig
        from .demo import reference_model
        model = reference_model(DemoConfig().out)
        print(f"note: shipping {model}, trained on the generated dataset: only for trying the bundle out")
    try:
        out = release(cfg.out, model, cfg.helpers_url, cfg.model_url, allow_generated=args.allow_generated_model)
    except ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, RuntimeError) as exc:
        parser.error(str(exc))
    print(f"student bundle: {out}")
    for path in sorted(out.iterdir()):
        print(f"  {path.name}  ({path.stat().st_size:,} bytes)")
    return 0


#: Exit statuses of ``grade``: every row graded; bad input or a machine that cannot grade (nothing written);
#: some rows not graded because of the grading machine (the rest written and journaled).
EXIT_OK, EXIT_CANNOT_GRADE, EXIT_NOT_GRADED = 0, 2, 3
#: Exit status of ``grade`` stopped by Ctrl-C (what finished is journaled; the executor's processes and jobs are gone).
EXIT_INTERRUPTED = 130


def _grade(args, parser) -> int:
    """``grade``: exit :data:`EXIT_OK`, :data:`EXIT_CANNOT_GRADE` (one paragraph on stderr, no row written) or
    :data:`EXIT_NOT_GRADED` (its last line says how many rows were not graded and why)."""
    from .cluster import ClusterError
    from .config import GradeConfig
    from .grading.errors import InputError, PreflightError
    from .runner.limits import parse_size
    from .runner.sandbox import SandboxError
    try:
        cfg = GradeConfig(submissions=args.submissions, data_root=args.data_root, model=args.model, out=args.out,
                          jobs=args.jobs, timeout=args.timeout, cell_timeout=args.cell_timeout,
                          per_class=args.per_class, device=args.device, full_notebook=args.full_notebook,
                          warm_kernels=not args.spawn_kernels, sandbox=not args.no_sandbox, regrade=args.regrade,
                          regrade_status=args.regrade_status,
                          memory_limit=parse_size(args.memory_limit) if args.memory_limit else None,
                          pids_limit=args.pids_limit, threads=args.threads,
                          cluster=args.cluster, roster=args.roster,
                          similarity_threshold=args.similarity_threshold, workers=args.workers,
                          worker_wait=args.worker_wait)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    from .grading.grade import grade
    from .grading.results import not_graded_summary
    if cfg.cluster is not None:
        from .cluster.client import DaskCluster  # no torch: the cluster connects while the grader imports it
        open_executor = DaskCluster.open
    else:
        from .grading.local import LocalSlots  # no torch: the slots' servers start before the grader imports it
        open_executor = LocalSlots.open
    try:
        grades = grade(cfg, open_executor)
    except KeyboardInterrupt:
        print(f"\ninterrupted: every submission graded before is journaled in {cfg.out / 'journal.jsonl'} (its "
              "feedback page written); run the same command again to grade the rest", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ClusterError as exc:
        return _cannot(f"cannot grade on the cluster: {exc}")
    except SandboxError as exc:
        return _cannot(f"cannot sandbox student code here: {exc}\n"
                       "Fix that, or grade without the sandbox with --no-sandbox (student code then runs with "
                       "all of your user's rights).")
    except (InputError, PreflightError) as exc:
        return _cannot(str(exc))
    summary = not_graded_summary(grades)
    if summary:
        print(f"error: {summary}", file=sys.stderr)
        return EXIT_NOT_GRADED
    return EXIT_OK


def _export(args) -> int:
    """``export``: exit 0 when every student got a grade, 1 when some were left blank (listed), 2 when nothing
    could be written."""
    import json
    from pathlib import Path

    from .lms.export import ExportError, export
    out = Path(args.out)
    to = args.to
    if to is None:
        manifest = out / "submissions.json"
        roster = json.loads(manifest.read_text()).get("roster") if manifest.is_file() else None
        to = (roster or {}).get("lms") or "csv"
    try:
        done = export(out, to, template=args.template, column=args.column, course=args.course,
                      allow_ungraded_answers=args.allow_ungraded_answers)
    except (ExportError, OSError) as exc:
        return _cannot(str(exc))
    for line in done.lines():
        print(line)
    return 1 if done.written.blank or done.written.outside else 0


def _report(args, parser) -> int:
    """``report``: exit 0 with the page's path, or 2 when the folder holds no finished run."""
    from .classreport import ReportError, SimilarityConfig, build_report
    try:
        similarity = SimilarityConfig(threshold=args.similarity_threshold)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        built = build_report(args.out, similarity)
    except (ReportError, OSError) as exc:
        return _cannot(str(exc))
    print(f"class report: {built.report}\n{built.pairs} pair{'' if built.pairs == 1 else 's'} worth comparing: "
          f"{built.pairs_csv}")
    return 0


def _cannot(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_CANNOT_GRADE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder",
                                     description="Instructor and TA tools for the pruning assignment.")
    sub = parser.add_subparsers(dest="command", required=True)
    _demo_parser(sub)
    _grade_parser(sub)
    _release_parser(sub)
    _export_parser(sub)
    _report_parser(sub)
    _train_parser(sub)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:
        from .train import main as train_main
        return train_main(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "grade":
        return _grade(args, parser)
    if args.command == "release":
        return _release(args, parser)
    if args.command == "export":
        return _export(args)
    if args.command == "report":
        return _report(args, parser)
    from .config import DemoConfig
    from .demo import main as demo_main
    try:
        cfg = DemoConfig(out=args.out, data_root=args.data_root, jobs=args.jobs)
    except ValueError as exc:
        parser.error(str(exc))
    return demo_main(cfg)
