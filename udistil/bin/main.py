"""The `udistil` console command: `udistil ACTION [options]`.

Each action lives in its own module `udistil/bin/<action with _>.py` exposing
`add_arguments(parser)` and `run(args)`; this file only dispatches, so adding an action
never touches it.  User-facing errors (UdistilError) print one clear line and exit 1.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import pkgutil
import sys

import udistil.bin
from udistil.errors import UdistilError
from udistil.log import setup_logging

DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def available_actions() -> list[str]:
    names = []
    for mod in pkgutil.iter_modules(udistil.bin.__path__):
        if mod.name not in ("main", "__init__") and not mod.name.startswith("_"):
            names.append(mod.name.replace("_", "-"))
    return sorted(names)


def load_action(name: str):
    return importlib.import_module(f"udistil.bin.{name.replace('-', '_')}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    actions = available_actions()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: udistil ACTION [options]\n\nactions:")
        for name in actions:
            doc = (load_action(name).__doc__ or "").strip().splitlines()
            print(f"  {name:16s} {doc[0] if doc else ''}")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in actions:
        print(f"udistil: unknown action '{name}'; choose from: {', '.join(actions)}", file=sys.stderr)
        return 2
    module = load_action(name)
    parser = argparse.ArgumentParser(prog=f"udistil {name}", description=module.__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    module.add_arguments(parser)
    # An action whose positional list may be interleaved with flags (`check MARKER --redo-stale
    # KEY=VALUE ...`) says so; plain parse_args stops filling a list at the first flag.
    intermixed = getattr(module, "INTERMIXED_ARGUMENTS", False)
    args = parser.parse_intermixed_args(rest) if intermixed else parser.parse_args(rest)
    setup_logging(args.verbose)
    try:
        result = module.run(args)
    except UdistilError as e:
        print(f"udistil {name}: ERROR: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if e.errno not in DISK_ERRORS:
            raise
        # A full disk or a read-only / forbidden path is the user's to fix; what was written
        # before stays (outputs are renamed into place only when complete).
        where = e.filename or "an output file"
        print(f"udistil {name}: ERROR: {where}: {e.strerror}; free space or fix permissions and "
              "rerun (finished work is kept)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"udistil {name}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
