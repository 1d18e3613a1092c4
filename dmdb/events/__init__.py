"""`dmdb events`: the learning events out of the database, in commit order per learner,
at-least-once, resumable from each consumer's own position (#26, docs/events.md).

The feed is a commit-safe cursor over learning_events (and event_tombstones): each row
carries feed_tx, its transaction's id (0014), and a reader takes only the rows below the
horizon pg_snapshot_xmin(), in (feed_tx, event_id) order. Nothing is kept for a consumer
but its position; nothing needs a session of its own but the optional LISTEN wake-up.

Modules: position (positions and where a reader starts: pure), feed (reading the feed:
pages, following), consumers (positions, advancing, lag, reset), handlers (handing a batch
to a command), prune (tombstones every consumer has passed, the retention limit). This
front door re-exports their public names. May import: the shared floor (errors, config,
resources, db) and dmdb.partitions (its catalog is the one reader of partition bounds).
"""

from __future__ import annotations

from dmdb.events.consumers import (  # noqa: F401
    Consumer,
    ConsumeResult,
    ConsumerLag,
    ConsumerMoved,
    advance,
    consume,
    create_consumer,
    drop_consumer,
    get_consumer,
    lag,
    list_consumers,
    oldest_writer,
    reset_consumer,
    set_thresholds,
)
from dmdb.events.feed import (  # noqa: F401
    NOTIFY_CHANNEL,
    Event,
    Page,
    follow,
    horizon,
    listen,
    read_page,
    require_feed,
    resolve,
    set_notify,
    wait_for_events,
)
from dmdb.events.handlers import CommandFailed, run_command  # noqa: F401
from dmdb.events.position import BEGINNING, Position, Target, parse_target  # noqa: F401
from dmdb.events.prune import DEFAULT_MAX_AGE, PruneResult, prune  # noqa: F401
