// tests/stress/stress.cpp: the soak test. A random mix of everything weft
// does, for as long as asked, with exact accounting of every task.
//
//   stress [--duration 60s] [--workers 2|4] [--seed N] [--stall-limit 5s] [--report 10s]
//
// The run is a sequence of epochs; each epoch starts an executor (2 or 4
// workers, 16-slot local queues so that overflow and stealing happen all
// the time) and runs 1 to 8 rounds on it. A round:
//   - starts services: two channel consumers (one pinned), a TCP echo
//     server on loopback, a notify "pass the token" game whose catchers use
//     timeouts, a ping-pong between tasks pinned to the first and last
//     workers, and two watch followers;
//   - runs 2 x Workers driver tasks (half of them pinned), each doing a
//     seeded random sequence of operations: spawn (anywhere, pinned, local)
//     then join, detach, keep or abort; yield; sleep (never early); timeouts
//     that must expire; channel sends; mutex and semaphore sections; oneshot
//     exchanges (some senders dropped); watch updates; TCP echo sessions;
//     spawn_blocking jobs (some aborted, some spawning a task themselves);
//   - meanwhile two threads outside the executor spawn, spawn pinned, spawn
//     blocking jobs, join with get(), abort, try_send, try_acquire, try_lock
//     and receive from the channel;
//   - stops the services, waits until every task has ended, and checks.
// The last round of about one epoch in six is cut short: the executor is
// shut down while everything runs, which must destroy every unfinished
// task (their destructors run) and leave nothing behind.
//
// What is checked (a failure is reported and the run exits with status 1):
//   - Every task id (one per spawn, from inside or outside, pinned or not,
//     blocking jobs included) goes spawned -> started -> completed, or ends
//     cancelled from spawned or started (aborted, timed out around, shut
//     down), exactly once: spawned == completed + cancelled, no id twice.
//     A join returns the task's own value, or errc::task_aborted exactly
//     when the task was cancelled.
//   - Every value whose send succeeded is received exactly once, a value
//     whose send failed (closed, timed out) never, and none twice.
//   - The mutex's plain counter equals the increments made under it; the
//     semaphore never has more holders than permits; every notify pass is
//     caught once; ping-pong values arrive in order; watch followers end on
//     the last value; the echo server returns every byte the clients sent.
//   - Pinned tasks run only on their worker; sleeps and timeouts never end
//     early.
//   - After a round: no live task, no armed timer, no I/O source, no
//     queued task or blocking job. After a shutdown: no live task either.
//
// A watchdog thread fails the run if no progress is made for the stall
// limit (5 s): it prints every worker's state (weft::executor::metrics,
// with how long each worker's loop has been frozen), the executor's
// counters, and what this program has in flight (operations per kind, the
// tasks not yet ended), then calls std::abort() so that sanitizers and CI
// show where every thread stood.
#include <weft/weft.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// ---- settings --------------------------------------------------------------------------

struct config {
    std::chrono::milliseconds duration{60'000};
    std::uint32_t workers = 2;
    std::uint64_t seed = 0;
    std::chrono::milliseconds stall_limit{5'000};
    std::chrono::milliseconds report_every{10'000};
};

// "90s", "2m", "1h", "500ms" or plain seconds.
bool parse_duration(const char* text, std::chrono::milliseconds& out) {
    char* end = nullptr;
    const double value = std::strtod(text, &end);
    if (end == text || value < 0) {
        return false;
    }
    const std::string unit(end);
    double ms = 0;
    if (unit.empty() || unit == "s") {
        ms = value * 1e3;
    } else if (unit == "ms") {
        ms = value;
    } else if (unit == "m") {
        ms = value * 60e3;
    } else if (unit == "h") {
        ms = value * 3600e3;
    } else {
        return false;
    }
    out = std::chrono::milliseconds(static_cast<std::int64_t>(ms));
    return true;
}

void usage() {
    std::fprintf(stderr, "usage: stress [--duration 60s] [--workers 2|4] [--seed N] [--stall-limit 5s] "
                         "[--report 10s]\n  durations: 500ms, 90s, 2m, 1h\n");
}

bool parse_args(int argc, char** argv, config& cfg) {
    cfg.seed = std::random_device{}();
    cfg.seed = (cfg.seed << 32) ^ static_cast<std::uint64_t>(steady::now().time_since_epoch().count());
    for (int i = 1; i < argc; i += 2) { // every option takes a value
        const std::string arg = argv[i];
        const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
        bool ok = value != nullptr;
        if (arg == "--duration" && ok) {
            ok = parse_duration(value, cfg.duration);
        } else if (arg == "--stall-limit" && ok) {
            ok = parse_duration(value, cfg.stall_limit) && cfg.stall_limit.count() > 0;
        } else if (arg == "--report" && ok) {
            ok = parse_duration(value, cfg.report_every) && cfg.report_every.count() > 0;
        } else if (arg == "--workers" && ok) {
            cfg.workers = static_cast<std::uint32_t>(std::strtoul(value, nullptr, 10));
            ok = cfg.workers == 2 || cfg.workers == 4;
        } else if (arg == "--seed" && ok) {
            cfg.seed = std::strtoull(value, nullptr, 0);
        } else {
            ok = false;
        }
        if (!ok) {
            usage();
            return false;
        }
    }
    return true;
}

// ---- randomness ------------------------------------------------------------------------

/// splitmix64: every task and thread draws from its own, seeded from the run's seed.
struct rng {
    std::uint64_t state;

    std::uint64_t next() noexcept {
        std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    std::uint32_t below(std::uint32_t n) noexcept { return static_cast<std::uint32_t>(next() % n); }
    bool one_in(std::uint32_t n) noexcept { return below(n) == 0; }
};

// ---- progress and failures -------------------------------------------------------------

/// Moves whenever anything finishes: what the watchdog watches.
std::atomic<std::uint64_t> g_progress{0};

void progress() noexcept { g_progress.fetch_add(1, std::memory_order_relaxed); }

/// Failures seen by any thread: counted, the first few kept with a message.
class failure_log {
public:
    void add(const char* format, ...) __attribute__((format(printf, 2, 3))) {
        char text[512];
        va_list args;
        va_start(args, format);
        std::vsnprintf(text, sizeof text, format, args);
        va_end(args);
        const std::uint64_t n = m_count.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard<std::mutex> hold(m_lock);
        if (n < 20) {
            m_first.emplace_back(text);
        }
        std::fprintf(stderr, "stress: FAILURE: %s\n", text);
    }
    std::uint64_t count() const noexcept { return m_count.load(std::memory_order_relaxed); }
    void print(std::FILE* out) {
        std::lock_guard<std::mutex> hold(m_lock);
        for (const std::string& text : m_first) {
            std::fprintf(out, "  %s\n", text.c_str());
        }
    }

private:
    std::atomic<std::uint64_t> m_count{0};
    std::mutex m_lock;
    std::vector<std::string> m_first;
};

failure_log g_failures;

#define STRESS_CHECK(cond, ...)                                                                              \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            g_failures.add(__VA_ARGS__);                                                                     \
        }                                                                                                    \
    } while (false)

// ---- operations in flight, per kind ----------------------------------------------------

enum class op : std::uint8_t {
    spawn_join,
    spawn_detach,
    spawn_abort,
    spawn_keep,
    yield,
    sleep,
    timeout,
    channel_send,
    mutex_section,
    semaphore_section,
    oneshot,
    watch_send,
    echo_session,
    blocking,
    outside_spawn,
    outside_blocking,
    outside_try,
    count
};

constexpr std::array<const char*, static_cast<std::size_t>(op::count)> op_names = {
    "spawn+join",   "spawn+detach", "spawn+abort",   "spawn+keep",       "yield",        "sleep",
    "timeout",      "channel send", "mutex section", "sem section",      "oneshot",      "watch send",
    "echo session", "blocking",     "outside spawn", "outside blocking", "outside try_*"};

struct op_stats {
    std::array<std::atomic<std::int64_t>, static_cast<std::size_t>(op::count)> in_flight{};
    std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(op::count)> done{};
};

op_stats g_ops;

/// Counts one operation in flight while it lives, and done when it ends.
class op_scope {
public:
    explicit op_scope(op kind) noexcept : m_index(static_cast<std::size_t>(kind)) {
        g_ops.in_flight[m_index].fetch_add(1, std::memory_order_relaxed);
    }
    op_scope(const op_scope&) = delete;
    op_scope& operator=(const op_scope&) = delete;
    ~op_scope() {
        g_ops.in_flight[m_index].fetch_sub(1, std::memory_order_relaxed);
        g_ops.done[m_index].fetch_add(1, std::memory_order_relaxed);
        progress();
    }

private:
    std::size_t m_index;
};

// ---- the task ledger -------------------------------------------------------------------

enum class task_kind : std::uint8_t {
    root,
    driver,
    leaf,
    blocking_job,
    oneshot_receiver,
    consumer,
    echo_server,
    echo_connection,
    passer,
    catcher,
    ping,
    pong,
    follower,
    count
};

constexpr std::array<const char*, static_cast<std::size_t>(task_kind::count)> kind_names = {
    "root",
    "driver",
    "leaf",
    "blocking job",
    "oneshot receiver",
    "consumer",
    "echo server",
    "echo connection",
    "passer",
    "catcher",
    "ping",
    "pong",
    "follower"};

enum life : std::uint8_t { unused, spawned, started, completed, cancelled };

constexpr std::array<const char*, 5> life_names = {"unused", "spawned", "started", "completed", "cancelled"};

/// One entry per task id of a round: what kind of task, and where it is in
/// its life. Every transition is a compare-exchange from the state it must
/// be in; anything else is a task seen twice (or a lost one, at the end).
class ledger {
public:
    static constexpr std::size_t capacity = std::size_t{1} << 18;

    ledger() : m_entries(new entry[capacity]) {}

    /// A new id in state `spawned`, or none if the round used them all.
    std::optional<std::uint32_t> open(task_kind kind) noexcept {
        const std::uint64_t id = m_next.fetch_add(1, std::memory_order_relaxed);
        if (id >= capacity) {
            m_overflow.fetch_add(1, std::memory_order_relaxed);
            return std::nullopt;
        }
        m_entries[static_cast<std::size_t>(id)].kind.store(kind, std::memory_order_relaxed);
        m_entries[static_cast<std::size_t>(id)].state.store(spawned, std::memory_order_release);
        m_opened.fetch_add(1, std::memory_order_relaxed);
        return static_cast<std::uint32_t>(id);
    }

    void start(std::uint32_t id) noexcept { advance(id, spawned, started); }
    void complete(std::uint32_t id) noexcept {
        advance(id, started, completed);
        m_ended.fetch_add(1, std::memory_order_release);
    }
    void cancel(std::uint32_t id) noexcept {
        std::uint8_t cur = m_entries[id].state.load(std::memory_order_acquire);
        while (cur == spawned || cur == started) {
            if (m_entries[id].state.compare_exchange_weak(cur, cancelled, std::memory_order_acq_rel)) {
                m_ended.fetch_add(1, std::memory_order_release);
                progress();
                return;
            }
        }
        report(id, "cancelled", cur);
    }

    life state(std::uint32_t id) const noexcept {
        return static_cast<life>(m_entries[id].state.load(std::memory_order_acquire));
    }
    task_kind kind(std::uint32_t id) const noexcept {
        return m_entries[id].kind.load(std::memory_order_relaxed);
    }

    std::uint64_t opened() const noexcept { return m_opened.load(std::memory_order_relaxed); }
    // Release and acquire: a round's state (this ledger included) may be
    // destroyed once every task has ended, the count being the last thing
    // each task touches of it.
    std::uint64_t ended() const noexcept { return m_ended.load(std::memory_order_acquire); }
    std::uint64_t overflow() const noexcept { return m_overflow.load(std::memory_order_relaxed); }
    bool all_ended() const noexcept { return ended() == opened(); }

    /// Totals per final state, checking every id (acquire: the main thread
    /// then sees everything the tasks did before they ended).
    struct totals {
        std::uint64_t spawned = 0;
        std::uint64_t completed = 0;
        std::uint64_t cancelled = 0;
        std::uint64_t unfinished = 0;
    };
    totals audit() const {
        totals t;
        const std::uint64_t n = std::min<std::uint64_t>(m_next.load(std::memory_order_relaxed), capacity);
        for (std::uint64_t id = 0; id < n; ++id) {
            const life s = state(static_cast<std::uint32_t>(id));
            ++t.spawned;
            if (s == completed) {
                ++t.completed;
            } else if (s == cancelled) {
                ++t.cancelled;
            } else {
                ++t.unfinished;
                if (t.unfinished <= 5) {
                    g_failures.add("task %" PRIu64 " (%s) never ended: still %s", id,
                                   kind_names[static_cast<std::size_t>(kind(static_cast<std::uint32_t>(id)))],
                                   life_names[s]);
                }
            }
        }
        return t;
    }

    /// The first `limit` ids not yet ended, for the watchdog.
    void print_unfinished(std::FILE* out, std::size_t limit) const {
        const std::uint64_t n = std::min<std::uint64_t>(m_next.load(std::memory_order_relaxed), capacity);
        std::size_t shown = 0;
        for (std::uint64_t id = 0; id < n && shown < limit; ++id) {
            const life s = state(static_cast<std::uint32_t>(id));
            if (s == spawned || s == started) {
                std::fprintf(out, "    task %" PRIu64 ": %s, %s\n", id,
                             kind_names[static_cast<std::size_t>(kind(static_cast<std::uint32_t>(id)))],
                             life_names[s]);
                ++shown;
            }
        }
    }

private:
    struct entry {
        std::atomic<task_kind> kind{task_kind::leaf};
        std::atomic<std::uint8_t> state{unused};
    };

    void advance(std::uint32_t id, life from, life to) noexcept {
        std::uint8_t cur = from;
        if (!m_entries[id].state.compare_exchange_strong(cur, to, std::memory_order_acq_rel)) {
            report(id, life_names[to], cur);
        }
        progress();
    }

    void report(std::uint32_t id, const char* event, std::uint8_t found) const {
        g_failures.add("task %u (%s) %s while %s: a task seen twice", id,
                       kind_names[static_cast<std::size_t>(kind(id))], event, life_names[found]);
    }

    std::unique_ptr<entry[]> m_entries;
    std::atomic<std::uint64_t> m_next{0};
    std::atomic<std::uint64_t> m_opened{0};
    std::atomic<std::uint64_t> m_ended{0};
    std::atomic<std::uint64_t> m_overflow{0};
};

/// A task's id in the ledger, carried by value into the task's frame (as a
/// coroutine parameter or a callable's capture): the task marks it started
/// and completed; if the frame is destroyed first (abort, shutdown, a
/// refused spawn), the destructor marks it cancelled.
class token {
public:
    token() noexcept = default;
    token(ledger& l, std::uint32_t id) noexcept : m_ledger(&l), m_id(id) {}
    token(token&& other) noexcept : m_ledger(std::exchange(other.m_ledger, nullptr)), m_id(other.m_id) {}
    token& operator=(token&&) = delete;
    token(const token&) = delete;
    ~token() {
        if (m_ledger != nullptr) {
            m_ledger->cancel(m_id);
        }
    }

    explicit operator bool() const noexcept { return m_ledger != nullptr; }
    std::uint32_t id() const noexcept { return m_id; }
    void start() noexcept { m_ledger->start(m_id); }
    void complete() noexcept { std::exchange(m_ledger, nullptr)->complete(m_id); }

private:
    ledger* m_ledger = nullptr;
    std::uint32_t m_id = 0;
};

// ---- the value ledger ------------------------------------------------------------------

/// One entry per value sent on the round's channel: whether its send
/// succeeded, failed, or never said (the sender was destroyed mid-send),
/// and how many times it was received.
class value_ledger {
public:
    static constexpr std::size_t capacity = std::size_t{1} << 18;
    enum state : std::uint8_t { none, attempted, confirmed, refused };

    value_ledger() : m_entries(new entry[capacity]) {}

    std::optional<std::uint64_t> open() noexcept {
        const std::uint64_t id = m_next.fetch_add(1, std::memory_order_relaxed);
        if (id >= capacity) {
            return std::nullopt;
        }
        m_entries[static_cast<std::size_t>(id)].state.store(attempted, std::memory_order_relaxed);
        return id;
    }
    void settle(std::uint64_t id, bool sent) noexcept {
        m_entries[static_cast<std::size_t>(id)].state.store(sent ? confirmed : refused,
                                                            std::memory_order_release);
        progress();
    }
    void receive(std::uint64_t id) noexcept {
        if (id >= capacity) {
            g_failures.add("received value %" PRIu64 ", which was never sent", id);
            return;
        }
        const std::uint8_t before =
            m_entries[static_cast<std::size_t>(id)].received.fetch_add(1, std::memory_order_acq_rel);
        STRESS_CHECK(before == 0, "value %" PRIu64 " received twice", id);
        m_received.fetch_add(1, std::memory_order_relaxed);
        progress();
    }

    /// After the round: refused values never arrived, none arrived twice,
    /// and (unless the round was cut short) every confirmed one arrived.
    void audit(bool complete, std::uint64_t& confirmed_out) const {
        const std::uint64_t n = std::min<std::uint64_t>(m_next.load(std::memory_order_relaxed), capacity);
        for (std::uint64_t id = 0; id < n; ++id) {
            const std::uint8_t s =
                m_entries[static_cast<std::size_t>(id)].state.load(std::memory_order_acquire);
            const std::uint8_t got =
                m_entries[static_cast<std::size_t>(id)].received.load(std::memory_order_acquire);
            if (s == confirmed) {
                ++confirmed_out;
                STRESS_CHECK(!complete || got == 1, "value %" PRIu64 " was sent but received %u times", id,
                             static_cast<unsigned>(got));
            } else if (s == refused) {
                STRESS_CHECK(got == 0, "value %" PRIu64 " was refused (closed or timed out) but received",
                             id);
            } else if (s == none) {
                STRESS_CHECK(got == 0, "value %" PRIu64 " was received before it was sent", id);
            }
        }
    }
    std::uint64_t received() const noexcept { return m_received.load(std::memory_order_relaxed); }

private:
    struct entry {
        std::atomic<std::uint8_t> state{none};
        std::atomic<std::uint8_t> received{0};
    };
    std::unique_ptr<entry[]> m_entries;
    std::atomic<std::uint64_t> m_next{0};
    std::atomic<std::uint64_t> m_received{0};
};

// ---- one round's shared state ----------------------------------------------------------

constexpr std::uint32_t no_home = ~std::uint32_t{0};
constexpr std::size_t semaphore_permits = 3;
constexpr std::uint64_t notify_passes = 40;
constexpr std::uint64_t ping_pongs = 60;

struct round_state {
    round_state(std::uint32_t workers_, std::uint64_t seed_, bool cut_short_)
        : workers(workers_), seed(seed_), cut_short(cut_short_) {}
    round_state(const round_state&) = delete;
    round_state& operator=(const round_state&) = delete;

    const std::uint32_t workers;
    const std::uint64_t seed;
    const bool cut_short; // the executor is shut down in the middle of this round

    ledger tasks;
    value_ledger values;
    weft::channel<std::uint64_t, 8> channel;

    weft::mutex lock;
    std::uint64_t guarded = 0; // plain: only ever touched under `lock`
    std::atomic<std::uint64_t> guarded_increments{0};

    weft::semaphore permits{semaphore_permits};
    std::atomic<std::int64_t> permit_holders{0};

    weft::notify pass;
    weft::notify ack;
    std::atomic<std::uint64_t> passes_caught{0};
    std::atomic<bool> passing_done{false};

    weft::channel<std::uint64_t, 1> ping_to_pong;
    weft::channel<std::uint64_t, 1> pong_to_ping;

    weft::watch<std::uint64_t> level{0};
    std::atomic<std::uint64_t> level_sent{0};

    weft::semaphore echo_slots{6}; // concurrent echo sessions (descriptors)
    weft::notify echo_ready;
    weft::notify echo_stop;
    std::atomic<weft::tcp_listener*> listener{nullptr};
    std::atomic<std::uint16_t> echo_port{0};
    std::atomic<std::uint64_t> echo_sent{0};
    std::atomic<std::uint64_t> echo_returned{0};
    std::atomic<std::uint64_t> echo_sessions{0};

    std::atomic<bool> drivers_done{false};
    std::atomic<bool> outside_stop{false};

    /// The value a task of this round returns: its id, salted.
    std::uint64_t value_of(std::uint32_t id) const noexcept { return (id * 0x9E3779B97F4A7C15ull) ^ seed; }
};

/// A pinned task checks after every resumption that it is still at home.
void check_home(std::uint32_t home, const char* where) {
    if (home != no_home) {
        const std::optional<std::uint32_t> here = weft::current_worker();
        STRESS_CHECK(here && *here == home, "a task pinned to worker %u ran on %d (%s)", home,
                     here ? static_cast<int>(*here) : -1, where);
    }
}

/// What a join saw, checked against the ledger: the task's own value, or
/// errc::task_aborted for a task that was cancelled. Cut-short rounds
/// may also see executor_shut_down from spawns.
bool expected_error(const round_state& rs, const weft::error& e) {
    return e.code() == weft::errc::task_aborted ||
           (rs.cut_short && e.code() == weft::errc::executor_shut_down);
}

// ---- leaves: short random scripts -------------------------------------------------------

weft::task<std::uint64_t> leaf(round_state& rs, token tok, std::uint64_t seed, std::uint32_t home,
                               std::uint32_t depth);

/// Where a spawn from a task goes.
enum class placement : std::uint8_t { anywhere, pinned, local };

/// Spawns a leaf from a task; none if the ledger is full or the executor
/// refused (shutting down).
std::optional<weft::join_handle<std::uint64_t>> spawn_leaf(round_state& rs, rng& r, std::uint32_t depth,
                                                           std::uint32_t& id_out) {
    const std::optional<std::uint32_t> id = rs.tasks.open(task_kind::leaf);
    if (!id) {
        return std::nullopt;
    }
    id_out = *id;
    const auto where = static_cast<placement>(r.below(3));
    const std::uint64_t seed = r.next();
    try {
        switch (where) {
        case placement::anywhere: return weft::spawn(leaf(rs, token(rs.tasks, *id), seed, no_home, depth));
        case placement::pinned: {
            const std::uint32_t home = r.below(rs.workers);
            return weft::spawn_pinned(home, leaf(rs, token(rs.tasks, *id), seed, home, depth));
        }
        case placement::local: {
            const std::uint32_t home = weft::current_worker().value();
            return weft::spawn_local(leaf(rs, token(rs.tasks, *id), seed, home, depth));
        }
        }
    } catch (const weft::error& e) {
        STRESS_CHECK(rs.cut_short && e.code() == weft::errc::executor_shut_down, "spawn failed: %s",
                     e.what());
    }
    return std::nullopt;
}

/// Joins a leaf and checks what the join says against the ledger.
weft::task<void> join_leaf(round_state& rs, weft::join_handle<std::uint64_t> handle, std::uint32_t id) {
    try {
        const std::uint64_t value = co_await handle;
        STRESS_CHECK(value == rs.value_of(id), "task %u returned %" PRIu64 ", not its value", id, value);
        STRESS_CHECK(rs.tasks.state(id) == completed, "task %u returned a value but is %s", id,
                     life_names[rs.tasks.state(id)]);
    } catch (const weft::error& e) {
        STRESS_CHECK(e.code() == weft::errc::task_aborted, "joining task %u: %s", id, e.what());
        STRESS_CHECK(rs.tasks.state(id) == cancelled, "task %u joined as aborted but is %s", id,
                     life_names[rs.tasks.state(id)]);
    }
}

/// Holds one of the semaphore's permits: counts the holder while it lives.
struct holder_count {
    std::atomic<std::int64_t>& holders;
    std::int64_t n;
    holder_count(std::atomic<std::int64_t>& h, std::int64_t count) : holders(h), n(count) {
        const std::int64_t now = holders.fetch_add(n) + n;
        STRESS_CHECK(now <= static_cast<std::int64_t>(semaphore_permits),
                     "%" PRId64 " permits held at once from a semaphore of %zu", now, semaphore_permits);
    }
    holder_count(const holder_count&) = delete;
    holder_count& operator=(const holder_count&) = delete;
    ~holder_count() { holders.fetch_sub(n); }
};

weft::task<void> mutex_section(round_state& rs, rng& r, std::uint32_t home) {
    op_scope scope(op::mutex_section);
    weft::mutex::guard guard;
    if (r.one_in(3)) {
        auto locked = co_await weft::timeout(std::chrono::microseconds(r.below(2000)), rs.lock.lock());
        if (!locked) {
            STRESS_CHECK(locked.error() == weft::errc::timed_out, "lock: %s",
                         locked.error().message().c_str());
            co_return;
        }
        guard = std::move(*locked);
    } else {
        guard = co_await rs.lock.lock();
    }
    check_home(home, "mutex");
    const std::uint64_t before = rs.guarded;
    co_await weft::yield_now(); // a lost update shows if anyone else gets in now
    check_home(home, "mutex section");
    rs.guarded = before + 1;
    rs.guarded_increments.fetch_add(1, std::memory_order_relaxed);
}

weft::task<void> semaphore_section(round_state& rs, rng& r, std::uint32_t home) {
    op_scope scope(op::semaphore_section);
    const std::size_t n = r.one_in(4) ? 2 : 1;
    weft::semaphore::permit permit;
    if (r.one_in(3)) {
        auto got = co_await weft::timeout(std::chrono::microseconds(r.below(2000)), rs.permits.acquire(n));
        if (!got) {
            STRESS_CHECK(got.error() == weft::errc::timed_out, "acquire: %s", got.error().message().c_str());
            co_return;
        }
        permit = std::move(*got);
    } else {
        permit = co_await rs.permits.acquire(n);
    }
    check_home(home, "semaphore");
    holder_count holding(rs.permit_holders, static_cast<std::int64_t>(n)); // released before the permit
    if (r.one_in(2)) {
        co_await weft::yield_now();
    } else {
        co_await weft::sleep_for(std::chrono::microseconds(r.below(300)));
    }
    check_home(home, "semaphore section");
}

weft::task<void> channel_send(round_state& rs, rng& r, std::uint32_t home) {
    op_scope scope(op::channel_send);
    const std::optional<std::uint64_t> value = rs.values.open();
    if (!value) {
        co_return;
    }
    weft::result<void> sent;
    if (r.one_in(3)) {
        auto timed =
            co_await weft::timeout(std::chrono::microseconds(r.below(1500)), rs.channel.send(*value));
        sent = timed ? *timed : weft::result<void>(timed.error());
    } else {
        sent = co_await rs.channel.send(*value);
    }
    check_home(home, "channel send");
    STRESS_CHECK(sent || sent.error() == weft::errc::closed || sent.error() == weft::errc::timed_out,
                 "send: %s", sent.error().message().c_str());
    rs.values.settle(*value, static_cast<bool>(sent));
}

weft::task<void> sleep_checked(rng& r, std::uint32_t home) {
    op_scope scope(op::sleep);
    const auto length = std::chrono::microseconds(r.below(4) * 500); // 0 to 1.5 ms
    const steady::time_point start = steady::now();
    auto slept = co_await weft::sleep_for(length);
    STRESS_CHECK(slept, "sleep: %s", slept.error().message().c_str());
    STRESS_CHECK(steady::now() - start >= length, "a sleep of %lld us ended early",
                 static_cast<long long>(length.count()));
    check_home(home, "sleep");
}

/// A timeout around a sleep twice as long: it times out, never early.
weft::task<void> timeout_checked(rng& r, std::uint32_t home) {
    op_scope scope(op::timeout);
    const auto limit = std::chrono::microseconds(100 + r.below(1000));
    const steady::time_point start = steady::now();
    auto result = co_await weft::timeout(limit, weft::sleep_for(2 * limit));
    const auto elapsed = steady::now() - start;
    if (result) {
        // The inner sleep won the race to the worker: fine, if it slept.
        STRESS_CHECK(elapsed >= 2 * limit, "a sleep inside a timeout ended early");
    } else {
        STRESS_CHECK(result.error() == weft::errc::timed_out, "timeout: %s",
                     result.error().message().c_str());
        STRESS_CHECK(elapsed >= limit, "a timeout of %lld us fired early",
                     static_cast<long long>(limit.count()));
    }
    check_home(home, "timeout");
}

weft::task<std::uint64_t> leaf(round_state& rs, token tok, std::uint64_t seed, std::uint32_t home,
                               std::uint32_t depth) {
    tok.start();
    check_home(home, "leaf start");
    rng r{seed};
    const std::uint32_t steps = r.below(4);
    for (std::uint32_t step = 0; step < steps; ++step) {
        switch (r.below(9)) {
        case 0:
        case 1: {
            op_scope scope(op::yield);
            for (std::uint32_t i = r.below(4); i > 0; --i) {
                co_await weft::yield_now();
                check_home(home, "yield");
            }
            break;
        }
        case 2: co_await sleep_checked(r, home); break;
        case 3: co_await timeout_checked(r, home); break;
        case 4: co_await mutex_section(rs, r, home); break;
        case 5: co_await semaphore_section(rs, r, home); break;
        case 6: co_await channel_send(rs, r, home); break;
        case 7:
        case 8:
            if (depth < 2) {
                std::uint32_t id = 0;
                if (auto child = spawn_leaf(rs, r, depth + 1, id)) {
                    if (r.one_in(2)) {
                        co_await join_leaf(rs, std::move(*child), id);
                        check_home(home, "join");
                    } else {
                        child->detach();
                    }
                }
            }
            break;
        }
    }
    const std::uint64_t value = rs.value_of(tok.id());
    tok.complete(); // the last touch of `rs`: the round may end right after
    co_return value;
}

// ---- driver operations ----------------------------------------------------------------

weft::task<std::uint64_t> oneshot_receiver(token tok, weft::oneshot_receiver<std::uint64_t> rx,
                                           std::uint64_t seed, std::uint32_t home) {
    tok.start();
    rng r{seed};
    std::uint64_t got = 0;
    for (;;) {
        weft::result<std::uint64_t> value{weft::errc::closed}; // set below
        if (r.one_in(2)) {
            auto timed = co_await weft::timeout(std::chrono::microseconds(r.below(800)), rx.recv());
            if (!timed) {
                STRESS_CHECK(timed.error() == weft::errc::timed_out, "oneshot timeout: %s",
                             timed.error().message().c_str());
                check_home(home, "oneshot retry");
                continue; // the value stays for the next try
            }
            value = std::move(*timed);
        } else {
            value = co_await rx.recv();
        }
        check_home(home, "oneshot");
        if (value) {
            got = *value;
        } else {
            STRESS_CHECK(value.error() == weft::errc::closed, "oneshot recv: %s",
                         value.error().message().c_str());
            got = ~std::uint64_t{0};
        }
        break;
    }
    tok.complete();
    co_return got;
}

/// A oneshot to a spawned receiver: sent, or its sender dropped unsent.
weft::task<void> oneshot_exchange(round_state& rs, rng& r) {
    op_scope scope(op::oneshot);
    const std::optional<std::uint32_t> id = rs.tasks.open(task_kind::oneshot_receiver);
    if (!id) {
        co_return;
    }
    auto [tx, rx] = weft::make_oneshot<std::uint64_t>();
    const std::uint32_t home = r.one_in(2) ? r.below(rs.workers) : no_home;
    std::optional<weft::join_handle<std::uint64_t>> handle;
    try {
        auto receiver = oneshot_receiver(token(rs.tasks, *id), std::move(rx), r.next(), home);
        handle = home == no_home ? weft::spawn(std::move(receiver))
                                 : weft::spawn_pinned(home, std::move(receiver));
    } catch (const weft::error& e) {
        STRESS_CHECK(expected_error(rs, e), "oneshot spawn: %s", e.what());
        co_return;
    }
    if (r.one_in(3)) {
        co_await weft::yield_now(); // let the receiver wait first, sometimes
    }
    const bool send = !r.one_in(4);
    const std::uint64_t value = r.next() >> 1;
    if (send) {
        STRESS_CHECK(tx.send(value), "oneshot send failed with the receiver alive");
    } else {
        tx = {}; // dropped unsent
    }
    const bool abort = r.one_in(5);
    if (abort) {
        handle->abort();
    }
    try {
        const std::uint64_t got = co_await *handle;
        STRESS_CHECK(got == (send ? value : ~std::uint64_t{0}),
                     "oneshot receiver got %" PRIu64 ", expected %s", got, send ? "the value" : "closed");
    } catch (const weft::error& e) {
        STRESS_CHECK(abort && e.code() == weft::errc::task_aborted, "oneshot join: %s", e.what());
        STRESS_CHECK(rs.tasks.state(*id) == cancelled, "oneshot receiver joined as aborted but is %s",
                     life_names[rs.tasks.state(*id)]);
    }
}

/// Round trips with the round's echo server: every byte must come back.
weft::task<void> echo_session(round_state& rs, rng& r) {
    op_scope scope(op::echo_session);
    auto slot = co_await rs.echo_slots.acquire();
    const weft::socket_address server = weft::socket_address::ipv4_loopback(rs.echo_port.load());
    auto stream = co_await weft::tcp_stream::connect(server);
    if (!stream) {
        g_failures.add("echo connect: %s", stream.error().message().c_str());
        co_return;
    }
    (void)stream->set_nodelay(r.one_in(2));
    std::vector<std::byte> out(4096);
    std::vector<std::byte> in(4096);
    const std::uint32_t trips = 1 + r.below(6);
    for (std::uint32_t trip = 0; trip < trips; ++trip) {
        const std::size_t size = 1 + r.below(static_cast<std::uint32_t>(out.size()));
        const std::uint64_t pattern = r.next();
        for (std::size_t i = 0; i < size; ++i) {
            out[i] = static_cast<std::byte>((pattern >> (8 * (i % 8))) + i);
        }
        auto written = co_await stream->write_all(std::span(out).first(size));
        auto read = co_await stream->read_exact(std::span(in).first(size));
        if (!written || !read) {
            g_failures.add("echo round trip: %s",
                           (!written ? written.error() : read.error()).message().c_str());
            co_return;
        }
        STRESS_CHECK(std::memcmp(out.data(), in.data(), size) == 0, "echo: bytes came back changed");
        rs.echo_sent.fetch_add(size, std::memory_order_relaxed);
        progress();
    }
    rs.echo_sessions.fetch_add(1, std::memory_order_relaxed);
}

/// A blocking job: a short blocking sleep, sometimes spawning a task from
/// the job's thread and waiting for it with get().
weft::task<void> blocking_op(round_state& rs, rng& r) {
    op_scope scope(op::blocking);
    const std::optional<std::uint32_t> id = rs.tasks.open(task_kind::blocking_job);
    if (!id) {
        co_return;
    }
    const bool spawns = r.one_in(3);
    const std::uint64_t seed = r.next();
    const auto nap = std::chrono::microseconds(r.below(300));
    std::optional<weft::join_handle<std::uint64_t>> handle;
    try {
        handle = weft::spawn_blocking([&rs, tok = token(rs.tasks, *id), spawns, seed, nap]() mutable {
            tok.start();
            std::this_thread::sleep_for(nap);
            if (spawns) {
                // On a blocking thread weft::spawn goes to the job's executor.
                const std::optional<std::uint32_t> child = rs.tasks.open(task_kind::leaf);
                if (child) {
                    try {
                        const std::uint64_t got =
                            weft::spawn(leaf(rs, token(rs.tasks, *child), seed, no_home, 2)).get();
                        STRESS_CHECK(got == rs.value_of(*child), "a job's task returned the wrong value");
                    } catch (const weft::error& e) {
                        STRESS_CHECK(expected_error(rs, e), "a job's task: %s", e.what());
                    }
                }
            }
            const std::uint64_t value = rs.value_of(tok.id());
            tok.complete();
            return value;
        });
    } catch (const weft::error& e) {
        // A full pool and queue is a documented refusal; shutting down, in a cut-short round.
        STRESS_CHECK(e.code() == weft::errc::capacity_exhausted || expected_error(rs, e),
                     "spawn_blocking: %s", e.what());
        co_return;
    }
    const bool abort = r.one_in(4);
    if (abort) {
        handle->abort(); // a job not started yet never runs; a running one finishes
    }
    co_await join_leaf(rs, std::move(*handle), *id);
}

/// Spawns a leaf and does one of: join, detach, abort then join, keep.
/// Leaves a driver spawned and joins later, with their ids.
using kept_leaves = std::vector<std::pair<weft::join_handle<std::uint64_t>, std::uint32_t>>;

weft::task<void> spawn_op(round_state& rs, rng& r, kept_leaves& kept) {
    const std::uint32_t what = r.below(4);
    op_scope scope(what == 0   ? op::spawn_join
                   : what == 1 ? op::spawn_detach
                   : what == 2 ? op::spawn_abort
                               : op::spawn_keep);
    std::uint32_t id = 0;
    std::optional<weft::join_handle<std::uint64_t>> handle = spawn_leaf(rs, r, 0, id);
    if (!handle) {
        co_return;
    }
    switch (what) {
    case 0: co_await join_leaf(rs, std::move(*handle), id); break;
    case 1: handle->detach(); break;
    case 2:
        switch (r.below(3)) {
        case 0: break; // abort before it can start
        case 1: co_await weft::yield_now(); break;
        case 2: co_await weft::sleep_for(std::chrono::microseconds(r.below(500))); break;
        }
        handle->abort();
        co_await join_leaf(rs, std::move(*handle), id);
        break;
    default: kept.emplace_back(std::move(*handle), id); break;
    }
}

weft::task<void> driver(round_state& rs, token tok, std::uint64_t seed, std::uint32_t home,
                        std::uint32_t ops) {
    tok.start();
    rng r{seed};
    kept_leaves kept;
    for (std::uint32_t i = 0; i < ops; ++i) {
        try {
            const std::uint32_t pick = r.below(100);
            if (pick < 30) {
                co_await spawn_op(rs, r, kept);
            } else if (pick < 36) {
                op_scope scope(op::yield);
                co_await weft::yield_now();
            } else if (pick < 42) {
                co_await sleep_checked(r, home);
            } else if (pick < 47) {
                co_await timeout_checked(r, home);
            } else if (pick < 58) {
                co_await channel_send(rs, r, home);
            } else if (pick < 65) {
                co_await mutex_section(rs, r, home);
            } else if (pick < 72) {
                co_await semaphore_section(rs, r, home);
            } else if (pick < 78) {
                co_await oneshot_exchange(rs, r);
            } else if (pick < 84) {
                op_scope scope(op::watch_send);
                rs.level.send(rs.level_sent.fetch_add(1) + 1);
            } else if (pick < 86) {
                co_await echo_session(rs, r);
            } else if (pick < 94) {
                co_await blocking_op(rs, r);
            } else if (!kept.empty()) {
                // Settle a kept task: join it, or abort it first.
                const std::size_t at = r.below(static_cast<std::uint32_t>(kept.size()));
                auto [handle, id] = std::move(kept[at]);
                kept.erase(kept.begin() + static_cast<std::ptrdiff_t>(at));
                if (r.one_in(2)) {
                    handle.abort();
                }
                co_await join_leaf(rs, std::move(handle), id);
            }
        } catch (const weft::error& e) {
            STRESS_CHECK(expected_error(rs, e), "driver: %s", e.what());
        }
        check_home(home, "driver");
    }
    for (auto& [handle, id] : kept) {
        co_await join_leaf(rs, std::move(handle), id);
    }
    tok.complete();
}

// ---- services ---------------------------------------------------------------------------

weft::task<void> consumer(round_state& rs, token tok, std::uint64_t seed, std::uint32_t home) {
    tok.start();
    rng r{seed};
    for (;;) {
        weft::result<std::uint64_t> value{weft::errc::closed}; // set below
        if (r.one_in(3)) {
            auto timed = co_await weft::timeout(std::chrono::microseconds(r.below(1000)), rs.channel.recv());
            if (!timed) {
                STRESS_CHECK(timed.error() == weft::errc::timed_out, "recv timeout: %s",
                             timed.error().message().c_str());
                continue;
            }
            value = std::move(*timed);
        } else {
            value = co_await rs.channel.recv();
        }
        check_home(home, "consumer");
        if (!value) {
            STRESS_CHECK(value.error() == weft::errc::closed, "recv: %s", value.error().message().c_str());
            break; // closed and drained
        }
        rs.values.receive(*value);
    }
    tok.complete();
}

weft::task<void> echo_connection(round_state& rs, token tok, weft::tcp_stream stream) {
    tok.start();
    std::vector<std::byte> buffer(2048);
    for (;;) {
        auto n = co_await stream.read(buffer);
        if (!n || *n == 0) {
            STRESS_CHECK(n, "echo server read: %s", n.error().message().c_str());
            break;
        }
        auto written = co_await stream.write_all(std::span(buffer).first(*n));
        if (!written) {
            g_failures.add("echo server write: %s", written.error().message().c_str());
            break;
        }
        rs.echo_returned.fetch_add(*n, std::memory_order_relaxed);
    }
    tok.complete();
}

weft::task<void> echo_server(round_state& rs, token tok) {
    tok.start();
    auto listener = weft::tcp_listener::bind(weft::socket_address::ipv4_loopback(0));
    if (!listener) {
        g_failures.add("echo bind: %s", listener.error().message().c_str());
    } else {
        rs.echo_port.store(listener->local_address().value().port());
        rs.listener.store(&*listener);
    }
    rs.echo_ready.notify_one();
    std::vector<std::pair<weft::join_handle<void>, std::uint32_t>> connections;
    while (listener) {
        auto stream = co_await listener->accept();
        if (!stream) {
            STRESS_CHECK(stream.error() == weft::errc::closed, "accept: %s",
                         stream.error().message().c_str());
            break;
        }
        const std::optional<std::uint32_t> id = rs.tasks.open(task_kind::echo_connection);
        if (!id) {
            continue; // dropped: the client sees its connection reset
        }
        try {
            connections.emplace_back(
                weft::spawn(echo_connection(rs, token(rs.tasks, *id), std::move(*stream))), *id);
        } catch (const weft::error& e) {
            STRESS_CHECK(expected_error(rs, e), "echo spawn: %s", e.what());
        }
    }
    // The listener is used by the round's root until it says stop.
    co_await rs.echo_stop.notified();
    for (auto& [handle, id] : connections) {
        co_await handle;
    }
    tok.complete();
}

/// Passes the notify token `notify_passes` times, each caught by one catcher.
weft::task<void> passer(round_state& rs, token tok) {
    tok.start();
    for (std::uint64_t i = 0; i < notify_passes; ++i) {
        rs.pass.notify_one();
        co_await rs.ack.notified();
    }
    rs.passing_done.store(true);
    rs.pass.notify_all();
    tok.complete();
}

weft::task<void> catcher(round_state& rs, token tok, std::uint64_t seed) {
    tok.start();
    rng r{seed};
    while (!rs.passing_done.load()) {
        // Always with a timeout: a catcher that starts waiting just after
        // the last pass still leaves. Timeouts racing hand-overs must pass
        // the notification on (or the passer stalls: the watchdog fires).
        auto caught =
            co_await weft::timeout(std::chrono::microseconds(200 + r.below(2000)), rs.pass.notified());
        if (!caught) {
            STRESS_CHECK(caught.error() == weft::errc::timed_out, "catcher: %s",
                         caught.error().message().c_str());
            continue;
        }
        if (rs.passing_done.load()) {
            break; // the notify_all that ends the game
        }
        rs.passes_caught.fetch_add(1);
        progress();
        rs.ack.notify_one();
    }
    tok.complete();
}

weft::task<void> ping(round_state& rs, token tok, std::uint32_t home) {
    tok.start();
    for (std::uint64_t i = 0; i < ping_pongs; ++i) {
        STRESS_CHECK(co_await rs.ping_to_pong.send(2 * i), "ping send failed");
        check_home(home, "ping");
        auto back = co_await rs.pong_to_ping.recv();
        check_home(home, "ping");
        STRESS_CHECK(back && *back == 2 * i + 1, "ping got the wrong answer");
        progress();
    }
    tok.complete();
}

weft::task<void> pong(round_state& rs, token tok, std::uint32_t home) {
    tok.start();
    for (std::uint64_t i = 0; i < ping_pongs; ++i) {
        auto got = co_await rs.ping_to_pong.recv();
        check_home(home, "pong");
        STRESS_CHECK(got && *got == 2 * i, "pong got the wrong value");
        STRESS_CHECK(co_await rs.pong_to_ping.send(2 * i + 1), "pong send failed");
        check_home(home, "pong");
    }
    tok.complete();
}

weft::task<void> follower(round_state& rs, token tok, std::uint64_t seed) {
    tok.start();
    rng r{seed};
    auto rx = rs.level.subscribe();
    std::uint64_t last_seen = rx.borrow_and_update();
    for (;;) {
        weft::result<void> changed;
        if (r.one_in(2)) {
            auto timed = co_await weft::timeout(std::chrono::microseconds(r.below(2000)), rx.changed());
            if (!timed) {
                STRESS_CHECK(timed.error() == weft::errc::timed_out, "follower: %s",
                             timed.error().message().c_str());
                continue;
            }
            changed = *timed;
        } else {
            changed = co_await rx.changed();
        }
        if (!changed) {
            break; // closed, and nothing newer left
        }
        last_seen = rx.borrow_and_update();
    }
    // Closed, and nothing newer left: it has seen the last value sent.
    STRESS_CHECK(last_seen == rs.level.borrow(),
                 "a watch follower ended on %" PRIu64 ", not the last value %" PRIu64, last_seen,
                 rs.level.borrow());
    tok.complete();
}

/// Spawns a service task with its own ledger id.
template <class Make>
std::optional<std::pair<weft::join_handle<void>, std::uint32_t>>
start_service(round_state& rs, task_kind kind, std::uint32_t home, Make make) {
    const std::optional<std::uint32_t> id = rs.tasks.open(kind);
    if (!id) {
        return std::nullopt;
    }
    auto work = make(token(rs.tasks, *id));
    auto handle = home == no_home ? weft::spawn(std::move(work)) : weft::spawn_pinned(home, std::move(work));
    return std::make_pair(std::move(handle), *id);
}

/// One round: services up, drivers run, services down.
weft::task<void> round_root(round_state& rs, token tok, std::uint32_t ops_per_driver) {
    tok.start();
    rng r{rs.seed};
    const std::uint32_t last = rs.workers - 1;
    std::vector<std::pair<weft::join_handle<void>, std::uint32_t>> services;
    const auto add = [&](std::optional<std::pair<weft::join_handle<void>, std::uint32_t>> s) {
        if (s) {
            services.push_back(std::move(*s));
        }
    };
    add(start_service(rs, task_kind::consumer, no_home,
                      [&](token t) { return consumer(rs, std::move(t), r.next(), no_home); }));
    add(start_service(rs, task_kind::consumer, last,
                      [&](token t) { return consumer(rs, std::move(t), r.next(), last); }));
    add(start_service(rs, task_kind::echo_server, no_home,
                      [&](token t) { return echo_server(rs, std::move(t)); }));
    add(start_service(rs, task_kind::passer, no_home, [&](token t) { return passer(rs, std::move(t)); }));
    for (int i = 0; i < 3; ++i) {
        add(start_service(rs, task_kind::catcher, i == 0 ? 0 : no_home,
                          [&](token t) { return catcher(rs, std::move(t), r.next()); }));
    }
    add(start_service(rs, task_kind::ping, 0, [&](token t) { return ping(rs, std::move(t), 0); }));
    add(start_service(rs, task_kind::pong, last, [&](token t) { return pong(rs, std::move(t), last); }));
    for (int i = 0; i < 2; ++i) {
        add(start_service(rs, task_kind::follower, i == 0 ? last : no_home,
                          [&](token t) { return follower(rs, std::move(t), r.next()); }));
    }
    co_await rs.echo_ready.notified(); // the drivers' echo sessions need the port

    std::vector<std::pair<weft::join_handle<void>, std::uint32_t>> drivers;
    for (std::uint32_t i = 0; i < 2 * rs.workers; ++i) {
        const std::uint32_t home = i % 2 == 0 ? i / 2 : no_home;
        const std::uint64_t seed = r.next();
        if (auto d = start_service(rs, task_kind::driver, home, [&](token t) {
                return driver(rs, std::move(t), seed, home, ops_per_driver);
            })) {
            drivers.push_back(std::move(*d));
        }
    }
    for (auto& [handle, id] : drivers) {
        co_await handle;
    }
    rs.drivers_done.store(true);

    rs.channel.close();
    rs.level.close();
    if (weft::tcp_listener* listener = rs.listener.load()) {
        (void)listener->close();
    }
    rs.echo_stop.notify_one();
    for (auto& [handle, id] : services) {
        co_await handle;
    }
    tok.complete();
}

// ---- outside threads ----------------------------------------------------------------------

/// What a thread outside the executor does during a round.
template <class Ex>
void outside_loop(Ex& ex, round_state& rs, rng r) {
    while (!rs.drivers_done.load() && !rs.outside_stop.load()) {
        try {
            const std::uint32_t pick = r.below(10);
            if (pick < 4) {
                op_scope scope(op::outside_spawn);
                const std::optional<std::uint32_t> id = rs.tasks.open(task_kind::leaf);
                if (!id) {
                    continue;
                }
                const std::uint32_t home = r.one_in(3) ? r.below(rs.workers) : no_home;
                auto work = leaf(rs, token(rs.tasks, *id), r.next(), home, 1);
                auto handle =
                    home == no_home ? ex.spawn(std::move(work)) : ex.spawn_pinned(home, std::move(work));
                switch (r.below(3)) {
                case 0: handle.detach(); break;
                case 1: handle.abort(); [[fallthrough]];
                default:
                    try {
                        const std::uint64_t value = handle.get();
                        STRESS_CHECK(value == rs.value_of(*id), "get() returned the wrong value");
                        STRESS_CHECK(rs.tasks.state(*id) == completed, "get() returned, the task is %s",
                                     life_names[rs.tasks.state(*id)]);
                    } catch (const weft::error& e) {
                        STRESS_CHECK(expected_error(rs, e), "get(): %s", e.what());
                        STRESS_CHECK(e.code() != weft::errc::task_aborted || rs.tasks.state(*id) == cancelled,
                                     "get() says aborted, the task is %s", life_names[rs.tasks.state(*id)]);
                    }
                }
            } else if (pick < 5) {
                op_scope scope(op::outside_blocking);
                const std::optional<std::uint32_t> id = rs.tasks.open(task_kind::blocking_job);
                if (!id) {
                    continue;
                }
                auto handle = ex.spawn_blocking([&rs, tok = token(rs.tasks, *id)]() mutable {
                    tok.start();
                    const std::uint64_t value = rs.value_of(tok.id());
                    tok.complete();
                    return value;
                });
                STRESS_CHECK(handle.get() == rs.value_of(*id), "a blocking job returned the wrong value");
            } else {
                op_scope scope(op::outside_try);
                switch (pick) {
                case 5:
                case 6: {
                    if (const std::optional<std::uint64_t> value = rs.values.open()) {
                        rs.values.settle(*value, static_cast<bool>(rs.channel.try_send(*value)));
                    }
                    break;
                }
                case 7:
                    if (auto permit = rs.permits.try_acquire()) {
                        holder_count holding(rs.permit_holders, 1);
                        std::this_thread::yield();
                    }
                    break;
                case 8:
                    if (auto guard = rs.lock.try_lock()) {
                        ++rs.guarded;
                        rs.guarded_increments.fetch_add(1, std::memory_order_relaxed);
                    }
                    break;
                default:
                    // Only tasks update the watch: they stop before it closes.
                    if (auto value = rs.channel.try_recv()) {
                        rs.values.receive(*value);
                    }
                    break;
                }
            }
        } catch (const weft::error& e) {
            STRESS_CHECK(expected_error(rs, e) || e.code() == weft::errc::capacity_exhausted, "outside: %s",
                         e.what());
            if (e.code() == weft::errc::executor_shut_down) {
                return;
            }
        }
        // Outside threads season the mix; the tasks are the point.
        std::this_thread::sleep_for(std::chrono::microseconds(50 + r.below(500)));
    }
}

// ---- the watchdog --------------------------------------------------------------------------

/// One worker as the watchdog samples it.
struct worker_sample {
    std::uint64_t ticks = 0;
    std::uint64_t polls = 0;
    weft::worker_state state = weft::worker_state::running;
};

/// The watchdog's view of the current executor, whatever its worker count.
class executor_probe {
public:
    virtual std::vector<worker_sample> sample() const = 0;
    virtual void dump(std::FILE* out) const = 0;

protected:
    ~executor_probe() = default;
};

const char* state_name(weft::worker_state s) {
    switch (s) {
    case weft::worker_state::running: return "running";
    case weft::worker_state::parked: return "parked";
    case weft::worker_state::parked_in_driver: return "parked in driver";
    case weft::worker_state::notified: return "notified";
    }
    return "?";
}

template <class Ex>
class probe_of final : public executor_probe {
public:
    explicit probe_of(const Ex& ex) : m_ex(ex) {}

    std::vector<worker_sample> sample() const override {
        const auto m = m_ex.metrics();
        std::vector<worker_sample> out;
        for (const weft::worker_metrics& w : m.workers) {
            out.push_back({w.ticks, w.polls, w.state});
        }
        return out;
    }

    void dump(std::FILE* out) const override {
        const auto m = m_ex.metrics();
        for (std::size_t i = 0; i < m.workers.size(); ++i) {
            const weft::worker_metrics& w = m.workers[i];
            std::fprintf(out,
                         "  worker %zu: %s, ticks %" PRIu64 ", polls %" PRIu64
                         ", local queue %u, pinned queue "
                         "%zu, steals %" PRIu64 ", parks %" PRIu64 ", unparks %" PRIu64 ", overflows %" PRIu64
                         ", lifo hits %" PRIu64 ", forced yields %" PRIu64 "\n",
                         i, state_name(w.state), w.ticks, w.polls, w.local_queue_depth, w.pinned_queue_depth,
                         w.steals, w.parks, w.unparks, w.overflows, w.lifo_hits, w.budget_forced_yields);
        }
        std::fprintf(
            out,
            "  executor: live tasks %zu, spawned %" PRIu64 ", global queue %zu, parked %u, searching %u, "
            "armed timers %u, io sources %u, driver polls %" PRIu64 ", blocking threads %u (idle %u), "
            "blocking queue %zu, remote schedules %" PRIu64 "\n",
            m.live_tasks, m.spawned_tasks, m.global_queue_depth, m.parked_workers, m.searching_workers,
            m.armed_timers, m.io_sources, m.driver_polls, m.blocking_threads, m.idle_blocking_threads,
            m.blocking_queue_depth, m.remote_schedules);
    }

private:
    const Ex& m_ex;
};

class watchdog {
public:
    watchdog(std::chrono::milliseconds limit, std::uint64_t seed)
        : m_limit(limit), m_seed(seed), m_thread([this] { run(); }) {}
    watchdog(const watchdog&) = delete;
    watchdog& operator=(const watchdog&) = delete;
    ~watchdog() {
        m_stop.store(true);
        m_thread.join();
    }

    /// What to dump while an executor runs a round (null: none).
    void watch(const executor_probe* probe, const round_state* round, std::string what) {
        std::lock_guard<std::mutex> hold(m_lock);
        m_probe = probe;
        m_round = round;
        m_what = std::move(what);
        m_frozen.clear();
    }

    /// The longest a woken worker was seen waiting to run (its state
    /// notified, its loop frozen), sampled every 100 ms: what the OS's
    /// scheduling costs the executor under this load.
    steady::duration longest_woken_wait() const {
        std::lock_guard<std::mutex> hold(m_lock);
        return m_longest_woken_wait;
    }

private:
    struct frozen_since {
        worker_sample last;
        steady::time_point since;
    };

    void run() {
        std::uint64_t last = g_progress.load();
        steady::time_point changed = steady::now();
        while (!m_stop.load()) {
            std::this_thread::sleep_for(100ms);
            const steady::time_point now = steady::now();
            std::lock_guard<std::mutex> hold(m_lock);
            track_workers(now);
            const std::uint64_t p = g_progress.load();
            if (p != last) {
                last = p;
                changed = now;
            } else if (now - changed > m_limit) {
                dump(now - changed);
                std::abort();
            }
        }
    }

    // How long each worker's loop and state have stood still.
    void track_workers(steady::time_point now) {
        if (m_probe == nullptr) {
            return;
        }
        const std::vector<worker_sample> samples = m_probe->sample();
        m_frozen.resize(samples.size(), frozen_since{{}, now});
        for (std::size_t i = 0; i < samples.size(); ++i) {
            const worker_sample& s = samples[i];
            frozen_since& f = m_frozen[i];
            if (s.ticks != f.last.ticks || s.state != f.last.state) {
                f = {s, now};
            } else if (s.state == weft::worker_state::notified) {
                // Woken, and its loop has not turned since: it waits for a CPU.
                m_longest_woken_wait = std::max(m_longest_woken_wait, now - f.since);
            }
        }
    }

    void dump(steady::duration stalled) const {
        std::FILE* out = stderr;
        const auto ms = [](steady::duration d) {
            return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
        };
        std::fprintf(out, "\nstress: WATCHDOG: no progress for %lld ms (%s; seed %" PRIu64 ")\n", ms(stalled),
                     m_what.c_str(), m_seed);
        if (m_probe != nullptr) {
            const steady::time_point now = steady::now();
            std::fprintf(out, "per worker (weft::executor::metrics):\n");
            m_probe->dump(out);
            for (std::size_t i = 0; i < m_frozen.size(); ++i) {
                std::fprintf(out, "  worker %zu: loop and state unchanged for %lld ms (%s)\n", i,
                             ms(now - m_frozen[i].since), state_name(m_frozen[i].last.state));
            }
        }
        std::fprintf(out, "operations in flight:\n");
        for (std::size_t i = 0; i < op_names.size(); ++i) {
            const std::int64_t n = g_ops.in_flight[i].load();
            if (n != 0) {
                std::fprintf(out, "  %s: %" PRId64 "\n", op_names[i], n);
            }
        }
        if (m_round != nullptr) {
            const round_state& rs = *m_round;
            std::fprintf(
                out,
                "round: tasks opened %" PRIu64 ", ended %" PRIu64 "; channel %zu queued, %zu receivers "
                "and %zu senders waiting; semaphore %zu free, %zu waiting; mutex %s, %zu waiting; passes "
                "caught %" PRIu64 " of %" PRIu64 "; drivers %s\n",
                rs.tasks.opened(), rs.tasks.ended(), rs.channel.size(), rs.channel.waiting_receivers(),
                rs.channel.waiting_senders(), rs.permits.available(), rs.permits.waiting(),
                rs.lock.is_locked() ? "locked" : "free", rs.lock.waiting(), rs.passes_caught.load(),
                notify_passes, rs.drivers_done.load() ? "done" : "running");
            std::fprintf(out, "  tasks not ended (first 20):\n");
            rs.tasks.print_unfinished(out, 20);
        }
        std::fflush(out);
    }

    const std::chrono::milliseconds m_limit;
    const std::uint64_t m_seed;
    std::atomic<bool> m_stop{false};
    mutable std::mutex m_lock;
    const executor_probe* m_probe = nullptr;
    const round_state* m_round = nullptr;
    std::string m_what;
    std::vector<frozen_since> m_frozen;
    steady::duration m_longest_woken_wait{};
    std::thread m_thread;
};

// ---- epochs and the run -------------------------------------------------------------------

struct stress_options : weft::default_options {
    static constexpr std::uint32_t max_timers = 8192; // sleeps and timeouts of every live task
};

struct run_totals {
    std::uint64_t epochs = 0;
    std::uint64_t rounds = 0;
    std::uint64_t cut_short = 0;
    std::uint64_t tasks = 0;
    std::uint64_t completed = 0;
    std::uint64_t cancelled = 0;
    std::uint64_t values_sent = 0;
    std::uint64_t values_received = 0;
    std::uint64_t guarded_increments = 0;
    std::uint64_t passes = 0;
    std::uint64_t echo_bytes = 0;
    std::uint64_t echo_sessions = 0;
    std::uint64_t ledger_overflow = 0;
};

/// Waits (the watchdog guards against forever) until `done()`.
template <class Done>
void wait_for(Done done) {
    while (!done()) {
        std::this_thread::sleep_for(1ms);
    }
}

/// After a round that ran to its end: everything it started has ended and
/// the executor holds nothing.
template <class Ex>
void check_quiet(const Ex& ex, const char* when) {
    const auto m = ex.metrics();
    STRESS_CHECK(m.live_tasks == 0, "%s: %zu live tasks", when, m.live_tasks);
    STRESS_CHECK(m.armed_timers == 0, "%s: %u armed timers", when, m.armed_timers);
    STRESS_CHECK(m.io_sources == 0, "%s: %u registered I/O sources", when, m.io_sources);
    STRESS_CHECK(m.global_queue_depth == 0, "%s: %zu tasks in the global queue", when, m.global_queue_depth);
    STRESS_CHECK(m.blocking_queue_depth == 0, "%s: %zu queued blocking jobs", when, m.blocking_queue_depth);
    for (std::size_t i = 0; i < m.workers.size(); ++i) {
        STRESS_CHECK(m.workers[i].local_queue_depth == 0 && m.workers[i].pinned_queue_depth == 0,
                     "%s: worker %zu still has queued tasks", when, i);
    }
}

/// Audits a finished round and adds it to the totals.
void audit_round(round_state& rs, run_totals& totals) {
    const ledger::totals t = rs.tasks.audit();
    STRESS_CHECK(t.spawned == t.completed + t.cancelled,
                 "round: %" PRIu64 " tasks spawned, %" PRIu64 " completed + %" PRIu64 " cancelled", t.spawned,
                 t.completed, t.cancelled);
    std::uint64_t confirmed = 0;
    rs.values.audit(!rs.cut_short, confirmed);
    if (!rs.cut_short) {
        STRESS_CHECK(rs.guarded == rs.guarded_increments.load(),
                     "the mutex's counter is %" PRIu64 " after %" PRIu64 " increments under it", rs.guarded,
                     rs.guarded_increments.load());
        STRESS_CHECK(rs.passes_caught.load() == notify_passes,
                     "%" PRIu64 " notify passes caught, %" PRIu64 " made", rs.passes_caught.load(),
                     notify_passes);
        STRESS_CHECK(rs.echo_sent.load() == rs.echo_returned.load(),
                     "echo: clients got %" PRIu64 " bytes back, the server returned %" PRIu64,
                     rs.echo_sent.load(), rs.echo_returned.load());
        STRESS_CHECK(rs.permits.available() == semaphore_permits && rs.permit_holders.load() == 0,
                     "the semaphore has %zu permits (of %zu) after the round", rs.permits.available(),
                     semaphore_permits);
    }
    totals.rounds += 1;
    totals.cut_short += rs.cut_short ? 1 : 0;
    totals.tasks += t.spawned;
    totals.completed += t.completed;
    totals.cancelled += t.cancelled;
    totals.values_sent += confirmed;
    totals.values_received += rs.values.received();
    totals.guarded_increments += rs.guarded_increments.load();
    totals.passes += rs.passes_caught.load();
    totals.echo_bytes += rs.echo_sent.load();
    totals.echo_sessions += rs.echo_sessions.load();
    totals.ledger_overflow += rs.tasks.overflow();
}

template <std::uint32_t Workers>
void run_epoch(rng& r, watchdog& dog, run_totals& totals, steady::time_point end) {
    using executor = weft::executor<Workers, 16, stress_options>;
    weft::settings s;
    s.thread_name_prefix = "stress";
    s.blocking_keep_alive = std::chrono::milliseconds(r.below(50) + 1); // threads retire and restart
    auto ex = std::make_unique<executor>(s);
    probe_of<executor> probe(*ex);
    const std::uint32_t rounds = 1 + r.below(8);
    const bool cut_last = r.one_in(6);
    totals.epochs += 1;
    bool shut_down = false;
    for (std::uint32_t i = 0; i < rounds && !shut_down; ++i) {
        const bool cut_short = cut_last && (i + 1 == rounds || steady::now() >= end);
        auto rs = std::make_unique<round_state>(Workers, r.next(), cut_short);
        char what[128];
        std::snprintf(what, sizeof what, "epoch %" PRIu64 ", round %u%s", totals.epochs, i + 1,
                      cut_short ? ", cut short" : "");
        dog.watch(&probe, rs.get(), what);

        const std::optional<std::uint32_t> root_id = rs->tasks.open(task_kind::root);
        const std::uint32_t ops = 30 + r.below(200);
        auto root = ex->spawn(round_root(*rs, token(rs->tasks, *root_id), ops));
        std::vector<std::thread> outside;
        for (int t = 0; t < 2; ++t) {
            outside.emplace_back([&ex, &rs, seed = r.next()] { outside_loop(*ex, *rs, rng{seed}); });
        }
        if (cut_short) {
            std::this_thread::sleep_for(std::chrono::milliseconds(r.below(60)));
            ex->shutdown(); // everything unfinished is destroyed
            shut_down = true;
        }
        try {
            root.get();
        } catch (const weft::error& e) {
            // Cut short: destroyed, or its spawn of a service refused.
            STRESS_CHECK(cut_short && expected_error(*rs, e), "the round's root: %s", e.what());
        }
        rs->outside_stop.store(true);
        for (std::thread& t : outside) {
            t.join();
        }
        if (!cut_short) {
            // Detached tasks may still run: wait until every task has ended.
            wait_for([&] { return rs->tasks.all_ended() && ex->metrics().live_tasks == 0; });
            wait_for([&] { return ex->metrics().blocking_queue_depth == 0; });
            check_quiet(*ex, "after a round");
        } else {
            const auto m = ex->metrics();
            STRESS_CHECK(m.live_tasks == 0, "after shutdown: %zu live tasks", m.live_tasks);
            STRESS_CHECK(m.armed_timers == 0, "after shutdown: %u armed timers", m.armed_timers);
            STRESS_CHECK(m.io_sources == 0, "after shutdown: %u registered I/O sources", m.io_sources);
            STRESS_CHECK(rs->tasks.all_ended(),
                         "after shutdown: %" PRIu64 " of %" PRIu64 " tasks never ended",
                         rs->tasks.opened() - rs->tasks.ended(), rs->tasks.opened());
        }
        audit_round(*rs, totals);
        dog.watch(&probe, nullptr, std::string(what) + ", between rounds");
        progress();
        if (g_failures.count() != 0 || steady::now() >= end) {
            break;
        }
    }
    dog.watch(&probe, nullptr, "shutdown");
    ex->shutdown();
    STRESS_CHECK(ex->metrics().live_tasks == 0, "after shutdown: live tasks remain");
    dog.watch(nullptr, nullptr, "between epochs");
    ex.reset();
    progress();
}

template <std::uint32_t Workers>
int run(const config& cfg) {
    std::printf("stress: %u workers, seed %" PRIu64 " (--seed %" PRIu64
                " repeats the choices), duration %lld ms, "
                "stall limit %lld ms\n",
                Workers, cfg.seed, cfg.seed, static_cast<long long>(cfg.duration.count()),
                static_cast<long long>(cfg.stall_limit.count()));
    std::fflush(stdout);
    rng r{cfg.seed};
    run_totals totals;
    watchdog dog(cfg.stall_limit, cfg.seed);
    const steady::time_point start = steady::now();
    const steady::time_point end = start + cfg.duration;
    steady::time_point next_report = start + cfg.report_every;
    while (steady::now() < end && g_failures.count() == 0) {
        run_epoch<Workers>(r, dog, totals, end);
        if (steady::now() >= next_report) {
            next_report = steady::now() + cfg.report_every;
            std::printf("stress: %5.0f s: %" PRIu64 " rounds, %" PRIu64 " tasks, %" PRIu64 " values, %" PRIu64
                        " echo bytes\n",
                        std::chrono::duration<double>(steady::now() - start).count(), totals.rounds,
                        totals.tasks, totals.values_received, totals.echo_bytes);
            std::fflush(stdout);
        }
    }
    const double seconds = std::chrono::duration<double>(steady::now() - start).count();
    std::printf("stress: %.1f s, %" PRIu64 " epochs, %" PRIu64 " rounds (%" PRIu64
                " cut short by shutdown)\n",
                seconds, totals.epochs, totals.rounds, totals.cut_short);
    std::printf("  tasks: %" PRIu64 " spawned = %" PRIu64 " completed + %" PRIu64 " cancelled%s\n",
                totals.tasks, totals.completed, totals.cancelled,
                totals.ledger_overflow != 0 ? " (some spawns skipped: ledger full)" : "");
    std::printf("  values: %" PRIu64 " sent and confirmed, %" PRIu64 " received; mutex increments %" PRIu64
                "; notify passes %" PRIu64 "; echo %" PRIu64 " bytes in %" PRIu64 " sessions\n",
                totals.values_sent, totals.values_received, totals.guarded_increments, totals.passes,
                totals.echo_bytes, totals.echo_sessions);
    std::printf("  longest a worker stayed notified with its loop frozen (woken, waiting for a CPU; "
                "sampled every 100 ms): %lld ms\n",
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::milliseconds>(dog.longest_woken_wait()).count()));
    std::printf("  operations:");
    for (std::size_t i = 0; i < op_names.size(); ++i) {
        std::printf("%s %s %" PRIu64, i == 0 ? "" : ",", op_names[i], g_ops.done[i].load());
    }
    std::printf("\n");
    if (g_failures.count() != 0) {
        std::printf("stress: FAILED: %" PRIu64 " failures (seed %" PRIu64 "); the first:\n",
                    g_failures.count(), cfg.seed);
        std::fflush(stdout);
        g_failures.print(stdout);
        return 1;
    }
    std::printf("stress: PASSED\n");
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    config cfg;
    if (!parse_args(argc, argv, cfg)) {
        return 2;
    }
    return cfg.workers == 4 ? run<4>(cfg) : run<2>(cfg);
}
