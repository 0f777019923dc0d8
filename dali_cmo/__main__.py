"""``python -m dali_cmo <command>``: tools around a long-tailed dataset and the operator library.

Commands:
  stats   class counts, imbalance, many/medium/few groups and the share each gets under Q
  check   scan a dataset up front for missing, unreadable or undecodable images
  build   (re)compile the DALI operator library (--print-path: where it is)
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# command -> module with add_parser(subparsers) and run(args) -> int
COMMANDS = {
    "stats": "dali_cmo.cli.stats",
    "check": "dali_cmo.cli.check",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["build"]:
        from dali_cmo.ops.build import main as build_main
        return build_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m dali_cmo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="command")
    subparsers.add_parser("build", help="(re)compile the DALI operator library "
                                        "(see `python -m dali_cmo build --help`)")
    modules = {name: importlib.import_module(path) for name, path in COMMANDS.items()}
    for module in modules.values():
        module.add_parser(subparsers)
    args = parser.parse_args(argv)
    try:
        status = modules[args.command].run(args)
        sys.stdout.flush()  # inside the try: a closed pipe shows here, not at exit
        return status
    except BrokenPipeError:  # the reader went away (`... --json | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell reports for a writer ended by SIGPIPE
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
