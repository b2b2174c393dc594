"""Command line of the instructor tools: ``python -m autograder <command>``.

A thin layer: each command parses its arguments and calls one function.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder",
                                     description="Instructor and TA tools for the pruning assignment.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the main job end to end on the generated dataset")
    demo.add_argument("--out", default="demo-output", help="folder for everything the demo writes")
    demo.add_argument("--data-root", default="synthetic",
                      help="dataset (default: the generated one; a CINIC-10 folder or archive works too)")
    demo.add_argument("--jobs", type=int, default=2, help="submissions graded at once (default 2)")

    grade = sub.add_parser("grade", help="grade a class's submissions with the hidden checks")
    grade.add_argument("submissions", help="folder with <student_id>/pruning/pruning.ipynb")
    grade.add_argument("--data-root", required=True,
                       help="grading data: CINIC-10 folder or archive, a .npz subset, or 'synthetic'")
    grade.add_argument("--model", required=True, help="the pretrained checkpoint students prune")
    grade.add_argument("--out", required=True, help="output folder (grades.csv, feedback/, course/)")
    grade.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    grade.add_argument("--timeout", type=float, default=600.0, help="seconds per notebook (default 600)")
    grade.add_argument("--cell-timeout", type=float, default=None, help="seconds per cell (default: --timeout)")
    grade.add_argument("--per-class", type=int, default=100,
                       help="test images per class in the fixed grading subset (default 100)")
    grade.add_argument("--device", default=None, help="cpu or cuda for the grader's measurements")
    grade.add_argument("--full-notebook", action="store_true",
                       help="also run display cells and the visible checks (slower; same scores)")
    grade.add_argument("--spawn-kernels", action="store_true",
                       help="start every kernel from scratch instead of forking warm ones (slower; same scores)")
    grade.add_argument("--memory-limit", default=None,
                       help="memory per notebook beyond the preloaded libraries, e.g. 4G or 1536M "
                            "(default: 3/4 of the machine's memory divided by --jobs)")
    grade.add_argument("--pids-limit", type=int, default=None,
                       help="processes and threads one job slot may have (default 512)")
    grade.add_argument("--no-sandbox", action="store_true",
                       help="run student kernels without the bubblewrap sandbox (every row is noted 'not sandboxed')")
    grade.add_argument("--regrade", action="store_true",
                       help="grade everything again instead of reusing unchanged submissions' grades from the journal")

    args = parser.parse_args(argv)
    if args.command == "grade":
        from .config import GradeConfig
        from .limits import parse_size
        from .sandbox import SandboxError
        optional = {k: v for k, v in (("pids_limit", args.pids_limit),) if v is not None}
        try:
            cfg = GradeConfig(submissions=args.submissions, data_root=args.data_root, model=args.model,
                              out=args.out, jobs=args.jobs, timeout=args.timeout, cell_timeout=args.cell_timeout,
                              per_class=args.per_class, device=args.device,
                              full_notebook=args.full_notebook, warm_kernels=not args.spawn_kernels,
                              sandbox=not args.no_sandbox, regrade=args.regrade,
                              memory_limit=parse_size(args.memory_limit) if args.memory_limit else None, **optional)
        except (ValueError, FileNotFoundError) as exc:
            parser.error(str(exc))
        from .grade import grade as run_grade
        try:
            run_grade(cfg)
        except SandboxError as exc:
            print(f"error: cannot sandbox student code here: {exc}\n"
                  "Fix that, or grade without the sandbox with --no-sandbox (student code then runs with "
                  "all of your user's rights).", file=sys.stderr)
            return 2
        return 0
    if args.command == "demo":
        from .demo import main as demo_main
        return demo_main(args.out, args.data_root, args.jobs)
    parser.error(f"unknown command {args.command}")
    return 2
