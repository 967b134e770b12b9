"""The log's history: replay, recovery, verification and audit, all by one fold.

Above ``udpt.events`` (storage) and ``udpt.projections`` (state), below the
edges. Every module here folds the log through ``folding.Fold``, and every
committed event is applied by the one rule of ``apply.apply_committed``, live
and on replay alike.
"""

from udpt.history.apply import ApplyFailures, apply_committed
from udpt.history.folding import CorruptRecord, Fold, fold
from udpt.history.recovery import Replay, recover, replay, restore_newest, take_snapshot

__all__ = [
    "ApplyFailures",
    "CorruptRecord",
    "Fold",
    "Replay",
    "apply_committed",
    "fold",
    "recover",
    "replay",
    "restore_newest",
    "take_snapshot",
]
