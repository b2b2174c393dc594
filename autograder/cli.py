"""Command line of the instructor tools: ``python -m autograder <command>``.

A thin layer: each command parses its arguments and calls one function.
"""

from __future__ import annotations

import argparse

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder",
                                     description="Instructor and TA tools for the pruning assignment.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the main job end to end on the generated dataset")
    demo.add_argument("--out", default="demo-output", help="folder for everything the demo writes")
    demo.add_argument("--data-root", default="synthetic",
                      help="dataset (default: the generated one; a CINIC-10 folder or archive works too)")

    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import main as demo_main
        return demo_main(args.out, args.data_root)
    parser.error(f"unknown command {args.command}")
    return 2
