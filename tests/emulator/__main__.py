"""``python -m tests.emulator --port 8765 --assets-dir DIR``: run the emulator in the foreground.

Prints ``MARIONETTE_EMULATOR http://127.0.0.1:PORT`` once it listens, then serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .server import Emulator, assets_from_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--assets-dir", default=None,
                        help="directory with model.glb, rigged.glb, walking.glb, running.glb, animation.glb "
                             "and optional anim_<action_id>.glb")
    parser.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' (default: open mode)")
    parser.add_argument("--pending-polls", type=int, default=None)
    parser.add_argument("--running-polls", type=int, default=None)
    parser.add_argument("--balance", type=int, default=None)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    assets = assets_from_dir(args.assets_dir) if args.assets_dir else {}
    try:
        emu = Emulator(assets, port=args.port, api_key=args.api_key, verbose=args.verbose)
    except OSError as exc:
        print(f"emulator: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 2
    if args.pending_polls is not None:
        emu.meshy.pending_polls = args.pending_polls
    if args.running_polls is not None:
        emu.meshy.running_polls = args.running_polls
    if args.balance is not None:
        emu.meshy.balance = args.balance

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"MARIONETTE_EMULATOR {emu.base_url}", flush=True)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        emu.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
