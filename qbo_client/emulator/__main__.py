"""``python -m qbo_client.emulator``: run the QBO emulator until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from qbo_client.emulator.oauth import DEFAULT_REFRESH_GRACE_SECONDS
from qbo_client.emulator.seed import SEEDS
from qbo_client.emulator.server import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REALM_ID,
    QboEmulator,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m qbo_client.emulator",
        description="A local QuickBooks Online emulator (OAuth 2.0 + Accounting API v3).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    parser.add_argument("--realm-id", default=DEFAULT_REALM_ID)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--company-name", default="Emulated Construction Co.")
    parser.add_argument(
        "--seed",
        choices=SEEDS,
        default="demo",
        help="initial data when no state file exists (default demo)",
    )
    parser.add_argument(
        "--state",
        metavar="FILE",
        default=None,
        help="persist state to this JSON file across restarts",
    )
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="added to every Accounting API request"
    )
    parser.add_argument(
        "--throttle-window-seconds",
        type=float,
        default=60.0,
        help="throttle window; the per-second limit scales with it (default 60)",
    )
    parser.add_argument("--no-throttle", action="store_true", help="disable throttling")
    parser.add_argument(
        "--throttle-xml",
        action="store_true",
        help="answer throttled requests with the XML IntuitResponse fault",
    )
    parser.add_argument(
        "--consent-page",
        action="store_true",
        help="show an HTML consent page instead of redirecting at once",
    )
    parser.add_argument(
        "--refresh-grace-seconds",
        type=float,
        default=DEFAULT_REFRESH_GRACE_SECONDS,
        help="how long a rotated refresh token keeps working (default 86400)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.throttle_window_seconds <= 0:
        print("--throttle-window-seconds must be positive", file=sys.stderr)
        return 2
    emulator = QboEmulator(
        args.host,
        args.port,
        realm_id=args.realm_id,
        client_id=args.client_id,
        client_secret=args.client_secret,
        company_name=args.company_name,
        seed=args.seed,
        state_file=args.state,
        latency_ms=args.latency_ms,
        throttle_window_seconds=args.throttle_window_seconds,
        throttle_enabled=not args.no_throttle,
        throttle_xml=args.throttle_xml,
        consent_page=args.consent_page,
        refresh_grace_seconds=args.refresh_grace_seconds,
        verbose=args.verbose,
    )
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    emulator.start()
    print("QBO emulator running", flush=True)
    print(f"  base URL:      {emulator.base_url}", flush=True)
    print(f"  discovery URL: {emulator.discovery_url}", flush=True)
    print(f"  API base:      {emulator.api_base_url}", flush=True)
    print(f"  control API:   {emulator.control_url}/", flush=True)
    print(f"  realm id:      {emulator.realm_id}", flush=True)
    print(f"  client id:     {emulator.client_id}", flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        emulator.stop()
        print("QBO emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
