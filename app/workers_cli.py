"""``losslab landscape --workers N``: the same command in N processes on this machine,
through torch's launcher (torch.distributed.run), run inside this process."""

from __future__ import annotations

import os
import sys


def launcher_args(n: int, port: int) -> list[str]:
    """torchrun's own arguments to run ``python -m app`` in ``n`` processes on this machine
    (the command's arguments are added by :func:`launch_config`).

    The static rendezvous (a TCP store on 127.0.0.1) rather than c10d's: one machine needs no
    elastic membership, and c10d's costs the launcher ~1 s of CPU (it logs with
    inspect.stack()). The launcher checks on its processes every 0.1 s, torch's default from
    2.4 on; torch 2.2 and 2.3 waited 5 s, after the grid was written, before exiting."""
    return [
        "--nnodes", "1", "--nproc-per-node", str(n), "--master-addr", "127.0.0.1",
        "--master-port", str(port), "--max-restarts", "0", "--monitor-interval", "0.1",
        "-m", "app",
    ]  # fmt: skip


def launch_config(n: int, port: int, argv: list[str]):
    """The launcher's parsed arguments to run ``losslab argv`` in ``n`` processes.

    ``argv`` is handed over as it is, not parsed with the launcher's options: argparse
    rejects any word that abbreviates two of them even after the script's name (``--run``
    could be ``--run-path`` or ``--run_path``, ``--log`` ``--log-dir`` or ``--logs-specs``),
    so ``landscape --run a.json --workers 2`` failed with the launcher's usage text."""
    from torch.distributed.run import parse_args

    launch = parse_args(launcher_args(n, port))
    launch.training_script_args = list(argv)
    return launch


def launch_workers(n: int, argv: list[str]) -> int:
    """Run ``losslab argv`` (less --workers) in ``n`` processes through torch's launcher
    (torch.distributed.run), run in this process: it has torch loaded already, a launcher
    process of its own would load it again (~3 s). The exit code is
    :func:`failed_ranks_code`'s, 128 + the signal after Ctrl+C or a stop, 0 when every rank
    finished."""
    import signal
    import socket

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import run

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    threads = os.environ.get("OMP_NUM_THREADS")
    # each rank its share of the cores (the ranks inherit this process's environment)
    os.environ["OMP_NUM_THREADS"] = threads or str(max(1, (os.cpu_count() or 1) // n))
    launch = launch_config(n, port, _without_workers(argv))
    names = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")  # the launcher takes these over
    kept = {sig: signal.getsignal(sig) for name in names if (sig := getattr(signal, name, None))}
    levels = _quiet_launcher()
    try:
        run(launch)
        return 0
    except ChildFailedError as exc:
        codes = {rank: f.exitcode for rank, f in exc.failures.items()}
        return failed_ranks_code(codes, exc.get_first_failure()[0])
    except SignalException as exc:  # Ctrl+C or the launcher's own stop: the ranks are stopped
        return 128 + int(exc.sigval)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 (the launcher's own failure, e.g. its store's port
        # taken: one line, as the other errors, rather than the launcher's traceback)
        print(f"losslab landscape: error: torch's launcher failed: {exc}", file=sys.stderr)
        return 1
    finally:
        for logger, level in levels.items():
            logger.setLevel(level)
        for sig, handler in kept.items():
            signal.signal(sig, handler)
        if threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = threads


def _quiet_launcher() -> dict:
    """The launcher's own loggers at ERROR, for the launch: after Ctrl+C it narrated the stop
    in three warnings ("Received 2 death signal, shutting down workers", "Sending process
    ... closing signal SIGINT" for each rank) above rank 0's message, which says what
    happened and where the points are. Its errors (a rank's exit code) still show. Returns
    each logger's level before."""
    import logging

    prefix = "torch.distributed.elastic"
    loggers = [logging.getLogger(prefix)] + [
        logger
        for name, logger in logging.root.manager.loggerDict.items()
        if name.startswith(prefix + ".") and isinstance(logger, logging.Logger)
    ]
    levels = {logger: logger.level for logger in loggers}
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    return levels


def failed_ranks_code(codes: dict[int, int], first: int) -> int:
    """The exit code of a launch whose ranks failed (rank -> exit code, negative for a signal;
    ``first``: the rank that failed first). Rank 0's when it exited with one: it said why (a
    dead rank, a bad file). Else the first failed rank's: the launcher stops the others with
    SIGTERM, which can reach rank 0 as it exits. A signal as a shell gives it (128 + its
    number)."""
    code = codes.get(0, 0)
    if code <= 0:
        code = codes[first]
    return code if code > 0 else 128 - code


def _without_workers(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--workers":
            skip = True
        elif not a.startswith("--workers="):
            out.append(a)
    return out
