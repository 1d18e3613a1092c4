"""Start or stop the managed-like lane (tests/managed.py) by hand.

`start DIR [BIN_DIR]` builds it in DIR (new or empty) and prints its URLs, CA and pids as
JSON; BIN_DIR defaults to $DMDB_TEST_PG_TLS_BINDIR (a PostgreSQL built with OpenSSL).
`stop DIR` stops PgBouncer and PostgreSQL (fast shutdown); the files stay in DIR.
"""

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit("usage: managed_server.py start DIR [BIN_DIR] | stop DIR")
    sys.path.insert(0, str(TESTS))
    import managed

    action, folder = sys.argv[1], Path(sys.argv[2])
    if action == "stop":
        managed.load(folder).stop()
        return
    bin_dir = sys.argv[3] if len(sys.argv) > 3 else os.environ.get("DMDB_TEST_PG_TLS_BINDIR")
    if not bin_dir:
        sys.exit("no BIN_DIR given and DMDB_TEST_PG_TLS_BINDIR is not set")
    server = managed.start(folder, Path(bin_dir))
    print(json.dumps(asdict(server), indent=2))


if __name__ == "__main__":
    main()
