"""The ``rep-theory`` command: thin argument parsing over library calls.

Each submodule registers its subcommands with ``register(subparsers)``; a subcommand's handler
takes the parsed ``argparse.Namespace`` and returns an exit status.  No logic lives here that a
notebook could not reach by calling the library directly.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys
import threading

from rep_theory import __version__
from rep_theory.locks import RunLockedError
from rep_theory.training.constants import Terminated

# Submodules that contribute subcommands, in the order --help lists them.
_COMMAND_MODULES = ("groups_cmd", "train_cmd", "eval_cmd", "batch_cmd", "explain_cmd", "verify_cmd", "lenses_cmd",
                    "routing_cmd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rep-theory",
        description="Train networks on finite-group composition and measure which irreps they use.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--version", action="version", version=f"rep-theory {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"rep_theory.cli.{module_name}")
        except ModuleNotFoundError as err:
            if err.name == f"rep_theory.cli.{module_name}":
                continue  # that command group is not part of this build
            raise
        module.register(subparsers)
    for sub in subparsers.choices.values():  # every command: how many CPU threads its work may use
        sub.add_argument("--threads", type=int, default=None,
                         help="torch CPU threads per job (default: the free cores divided among the "
                              "jobs; $OMP_NUM_THREADS if set; see the README's Threads section)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    from rep_theory.device import choose_threads, set_threads  # torch is imported only for real work
    set_threads(choose_threads(getattr(args, "jobs", 1) or 1, requested=args.threads))
    try:
        with _sigterm_as_interrupt():
            return int(args.handler(args) or 0)
    except KeyboardInterrupt as stop:  # one line, never a traceback; every command keeps what it finished
        terminated = isinstance(stop, Terminated)  # SIGTERM
        print(f"rep-theory {args.command}: {'SIGTERM' if terminated else 'interrupted'}; what was finished is "
              f"kept, run the same command again to continue", file=sys.stderr)
        return 143 if terminated else 130
    except RunLockedError as err:
        print(f"rep-theory {args.command}: busy: {err}; wait for it to finish", file=sys.stderr)
        return 75
    except (ValueError, OSError, KeyError) as err:
        print(f"rep-theory {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While a command runs, SIGTERM (a scheduler ending a job, ``kill``) raises :class:`Terminated`,
    a ``KeyboardInterrupt``: every command's Ctrl-C clean-up then runs for it too (``eval`` writes its
    rows, ``lenses`` keeps its finished jobs, ``batch`` stops its workers; training installs its own
    handler, which saves a resume state).  Only the main thread can install it; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated("SIGTERM")

    old = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _one_line(err: Exception) -> str:
    """The message of an expected error: an OS error as ``path: what is wrong`` (``afile/x: Not a
    directory``, rather than ``[Errno 20] ...``), a ``KeyError`` without its quotes."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        where = f"{err.filename} -> {err.filename2}" if err.filename2 is not None else str(err.filename)
        hints = {NotADirectoryError: " (a folder on that path is a file)", IsADirectoryError: " (expected a file)"}
        return f"{where}: {err.strerror}{hints.get(type(err), '')}"
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    return str(err)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
