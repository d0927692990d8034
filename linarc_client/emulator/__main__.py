"""``python -m linarc_client.emulator``: run a local Linarc until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from linarc_client.emulator.server import DEFAULT_API_KEY, LinarcEmulator
from linarc_client.emulator.store import EmulatorInputError


def _seed(value: str) -> int | str:
    return int(value) if value.lstrip("-").isdigit() else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m linarc_client.emulator",
        description="A local Linarc project API for tests, demos and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (0)")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the accepted bearer key")
    parser.add_argument("--projects", type=int, default=250, help="projects to generate (250)")
    parser.add_argument("--seed", type=_seed, default=7, help="seed for the generated data (7)")
    parser.add_argument(
        "--hostile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="include the hostile records: odd names, bad dates, unknown status (on)",
    )
    parser.add_argument(
        "--state",
        metavar="FILE",
        help="JSON file to keep projects in across restarts (loaded if it exists)",
    )
    parser.add_argument("--latency-ms", type=float, default=0, help="delay every API call")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    try:
        emulator = LinarcEmulator(
            host=args.host,
            port=args.port,
            api_key=args.api_key,
            projects=args.projects,
            seed=args.seed,
            hostile=args.hostile,
            latency_ms=args.latency_ms,
            state_file=args.state,
            verbose=args.verbose,
        )
    except EmulatorInputError as exc:
        print(f"linarc emulator: {exc}", file=sys.stderr)
        return 2
    try:
        emulator.start()
    except OSError as exc:
        print(f"linarc emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    # The key is not printed: whoever started the emulator chose it.
    print(
        f"Linarc emulator on {emulator.base_url} ({emulator.state.projects} projects)", flush=True
    )
    done = threading.Event()

    def stop(*_: object) -> None:
        done.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    done.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
