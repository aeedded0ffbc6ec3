#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/executor_fuzz.cpp into tests/fuzz/corpus/.

Each seed is a small program in the fuzzer's encoding: three bytes per
operation, [opcode, a, b] (see the comments at `enum class opcode` and
`enum class kind` in executor_fuzz.cpp; the numbers below must follow
them). One seed per area, so that fuzzing starts from programs that
already reach every primitive, the races between a wake and an abort, and
a shutdown with tasks waiting.

    python3 tools/fuzz_corpus.py          # rewrites tests/fuzz/corpus/
"""
import pathlib

# opcodes
SPAWN, JOIN, ABORT, DETACH, TRY_SEND, TRY_RECV, CLOSE, TRY_ACQUIRE, RELEASE_HELD, ADD_PERMIT, \
    TRY_LOCK, UNLOCK, NOTIFY_ONE, NOTIFY_ALL, GAUGE_SEND, GAUGE_CLOSE, ONESHOT_SEND, ONESHOT_DROP, \
    WAKE_AND_ABORT, SHUTDOWN = range(20)

# child kinds
IMMEDIATE, YIELDS, SLEEPS, SPAWNER, BLOCKING, RECV, SEND, ACQUIRE, LOCK, NOTIFIED, WATCH, ONESHOT, \
    RECV_WITHIN, ACQUIRE_WITHIN, NOTIFIED_WITHIN = range(15)

# placements
ANYWHERE, WORKER0, WORKER1, LOCAL = range(4)

# the wakes of WAKE_AND_ABORT, by index
W_TRY_SEND, W_TRY_RECV, W_RELEASE_HELD, W_ADD_PERMIT, W_UNLOCK, W_NOTIFY_ONE, W_NOTIFY_ALL, \
    W_GAUGE_SEND, W_CLOSE = range(9)

INSIDE = 0x80


def spawn(kind, param=0, where=ANYWHERE, inside=False):
    return [SPAWN, kind | (where << 5) | (INSIDE if inside else 0), param]


def op(code, a=0, b=0, inside=False):
    return [code, a | (INSIDE if inside else 0), b]


SEEDS = {
    "tasks": spawn(IMMEDIATE, 7) + spawn(YIELDS, 2, WORKER0, True) + spawn(SLEEPS, 1, WORKER1)
    + spawn(SPAWNER, 4, LOCAL) + spawn(BLOCKING, 9, inside=True) + spawn(BLOCKING, 3)
    + op(JOIN, b=0) + op(JOIN, b=1, inside=True) + op(JOIN, b=2) + op(JOIN, b=3, inside=True)
    + op(JOIN, b=4) + op(DETACH, b=5),
    "channel": spawn(RECV) + spawn(RECV, where=WORKER1, inside=True) + op(TRY_SEND, b=1)
    + op(TRY_SEND, b=2, inside=True) + op(TRY_SEND, b=3) + op(TRY_SEND, b=4) + spawn(SEND, 5)
    + spawn(SEND, 6, WORKER0) + op(TRY_RECV) + op(TRY_RECV, inside=True) + op(CLOSE)
    + op(TRY_RECV) + op(TRY_RECV) + op(JOIN, b=0) + op(JOIN, b=2),
    "semaphore": op(TRY_ACQUIRE, b=1) + spawn(ACQUIRE, 1) + spawn(ACQUIRE, 0, WORKER1)
    + op(ADD_PERMIT) + op(RELEASE_HELD, inside=True) + op(TRY_ACQUIRE, b=0) + op(JOIN, b=0)
    + op(JOIN, b=1),
    "mutex": op(TRY_LOCK) + spawn(LOCK, 1, WORKER0) + spawn(LOCK, 2, WORKER1, True) + spawn(LOCK, 3)
    + op(UNLOCK, inside=True) + op(TRY_LOCK) + op(JOIN, b=2),
    "notify": op(NOTIFY_ONE) + spawn(NOTIFIED, 1) + spawn(NOTIFIED, 2, WORKER1)
    + spawn(NOTIFIED, 3, LOCAL) + op(NOTIFY_ONE, inside=True) + op(NOTIFY_ONE) + op(NOTIFY_ONE)
    + spawn(NOTIFIED, 4) + spawn(NOTIFIED, 5) + op(NOTIFY_ALL) + op(JOIN, b=3),
    "watch": spawn(WATCH) + spawn(WATCH, where=WORKER0, inside=True) + op(GAUGE_SEND, b=1)
    + spawn(WATCH, where=WORKER1) + op(GAUGE_SEND, b=2, inside=True) + spawn(WATCH) + op(GAUGE_CLOSE)
    + spawn(WATCH) + op(JOIN, b=1),
    "oneshot": spawn(ONESHOT) + spawn(ONESHOT, where=WORKER1, inside=True) + spawn(ONESHOT)
    + op(ONESHOT_SEND, 5, 0) + op(ONESHOT_DROP, b=1, inside=True) + op(ABORT, b=2)
    + op(ONESHOT_SEND, 6, 2) + op(JOIN, b=0) + op(JOIN, b=1) + op(JOIN, b=2),
    "abort": spawn(RECV) + spawn(ACQUIRE, 1) + op(TRY_ACQUIRE, b=1) + spawn(ACQUIRE, 1)
    + spawn(NOTIFIED) + spawn(SEND, 9) + op(ABORT, b=0) + op(ABORT, b=2) + op(DETACH, b=3)
    + op(RELEASE_HELD) + op(NOTIFY_ONE) + op(ABORT, b=3) + op(JOIN, b=0) + op(JOIN, b=2),
    "races": spawn(RECV, where=WORKER1) + op(WAKE_AND_ABORT, W_TRY_SEND, 0)
    + spawn(NOTIFIED, where=WORKER1) + spawn(NOTIFIED, where=WORKER0)
    + op(WAKE_AND_ABORT, W_NOTIFY_ONE, 1) + op(TRY_ACQUIRE, b=1) + spawn(ACQUIRE, 0, WORKER1)
    + spawn(ACQUIRE, 1) + op(WAKE_AND_ABORT, W_RELEASE_HELD, 4) + op(TRY_LOCK)
    + spawn(LOCK, where=WORKER1) + spawn(LOCK) + op(WAKE_AND_ABORT, W_UNLOCK, 6)
    + spawn(WATCH, where=WORKER1) + op(WAKE_AND_ABORT, W_GAUGE_SEND, 7) + op(WAKE_AND_ABORT, W_CLOSE, 0),
    "timeouts": spawn(RECV_WITHIN, 0) + spawn(RECV_WITHIN, 1) + op(TRY_SEND, b=1) + spawn(RECV_WITHIN, 1)
    + spawn(RECV_WITHIN, 0) + spawn(ACQUIRE_WITHIN, 1) + op(TRY_ACQUIRE, b=1) + spawn(ACQUIRE_WITHIN, 1)
    + op(NOTIFY_ONE) + spawn(NOTIFIED_WITHIN, 0) + spawn(NOTIFIED_WITHIN, 1)
    + spawn(NOTIFIED_WITHIN, 1, WORKER1),
    "shutdown": spawn(RECV) + spawn(SEND, 1, WORKER0) + op(TRY_ACQUIRE, b=1) + spawn(ACQUIRE, 0, WORKER1)
    + spawn(NOTIFIED, 0, LOCAL) + spawn(WATCH) + spawn(ONESHOT) + spawn(SLEEPS, 1) + op(DETACH, b=1)
    + op(SHUTDOWN),
}


def main():
    corpus = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fuzz" / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for old in corpus.iterdir():
        old.unlink()
    for name, program in SEEDS.items():
        (corpus / name).write_bytes(bytes(program))
    print(f"wrote {len(SEEDS)} seeds to {corpus}")


if __name__ == "__main__":
    main()
