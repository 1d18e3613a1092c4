"""Start or stop a PostgreSQL 16 server (package pgserver) for the suite's second run.

`start DIR` prints its URL; `stop DIR` stops it (SIGINT to the postmaster: fast shutdown).
"""

import os
import signal
import sys
from pathlib import Path


def main() -> None:
    action, folder = sys.argv[1], Path(sys.argv[2])
    if action == "start":
        import pgserver

        server = pgserver.get_server(folder, cleanup_mode=None)
        print(server.get_uri())
        return
    pidfile = folder / "postmaster.pid"
    if pidfile.exists():
        os.kill(int(pidfile.read_text().split()[0]), signal.SIGINT)


if __name__ == "__main__":
    main()
