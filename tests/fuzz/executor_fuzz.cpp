// tests/fuzz/executor_fuzz.cpp: a libFuzzer target for the executor and
// the sync primitives, checked against a model.
//
// Each input is a program: a sequence of operations decoded from its bytes
// (the encoding is above `enum class opcode`), run on a 2-worker executor
// with a 4-slot local queue. Children are tasks that each do one thing: return at once,
// yield, sleep, spawn and join a grandchild, run a blocking job, or wait on
// one primitive (channel recv or send, semaphore acquire, mutex lock,
// notify, watch change, oneshot receive; some under a timeout). They are
// spawned from inside a task or from outside, anywhere, pinned to a worker
// or local to the spawner. The other operations act on them and on the
// primitives: join (co_await or get()), abort, detach, try_send, try_recv,
// close, try_acquire, release, try_lock, unlock, notify_one, notify_all,
// watch send and close, oneshot send or drop, one of those together with
// an abort in the same step (the abort then races the wake), and shutdown.
//
// After each operation the executor is left to settle until every task
// has finished or waits, and the result is compared with the model: what
// each child returned (or that it was cancelled), every try_ operation's
// result, each primitive's queue and waiter counts, the executor's live
// tasks (exactly the children that wait), and that no timer is left armed.
// Waiters are served in FIFO order, so the model predicts exactly which
// child each operation completes. The one race, an abort against a wake in
// the same step, has two legal outcomes: the child finished with what it
// was handed, or it was cancelled and handed it on; the model follows the
// one observed and checks everything else against it. A shutdown must
// cancel every waiting child and leave no task. A program that does not
// shut down ends by letting every waiter go (close, notify_all, permits,
// unlock, oneshots dropped) and joining every child; its executor then runs
// the next program (a new one per program would cost more than most
// programs do).
//
// A mismatch prints the decoded program and the first difference, then
// aborts, so libFuzzer keeps the input. Seeds: tests/fuzz/corpus/ (written
// by tools/fuzz_corpus.py). Run: tools/fuzz.sh [seconds].
#include <weft/weft.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr std::size_t max_children = 24;
constexpr std::size_t channel_capacity = 2;
constexpr std::size_t initial_permits = 2;
constexpr std::uint32_t workers = 2;
constexpr std::uint32_t no_home = ~std::uint32_t{0};

// What a child returns besides values: markers above any value.
constexpr std::uint64_t closed_marker = std::uint64_t{1} << 40;
constexpr std::uint64_t timed_out_marker = std::uint64_t{1} << 41;

// ---- children -----------------------------------------------------------------------------

enum class kind : std::uint8_t {
    immediate,   // returns its parameter
    yields,      // yields 1 to 3 times, then returns
    sleeps,      // sleeps 0 or 1 ms
    spawner,     // spawns a local grandchild and joins it
    blocking,    // a spawn_blocking job (not a task of the executor)
    recv,        // channel recv
    send,        // channel send of its parameter
    acquire,     // semaphore acquire of 1 or 2 permits, released when it returns
    lock,        // mutex lock, unlocked when it returns
    notified,    // notify wait
    watch,       // watch changed() from the version it subscribed at
    oneshot,     // oneshot receive; the interpreter holds the sender
    recv_within, // recv under a timeout of 0 or 1 ms
    acquire_within,
    notified_within,
    count
};

constexpr std::array<const char*, static_cast<std::size_t>(kind::count)> kind_names = {
    "immediate", "yields",  "sleeps",      "spawner",        "blocking",
    "recv",      "send",    "acquire",     "lock",           "notified",
    "watch",     "oneshot", "recv_within", "acquire_within", "notified_within"};

enum life : std::uint8_t { unused, spawned, started, completed, cancelled };

/// What the children share with the interpreter: the primitives, and per
/// child what became of it.
struct world {
    weft::channel<std::uint32_t, channel_capacity> channel;
    weft::semaphore permits{initial_permits};
    weft::mutex lock;
    weft::notify note;
    weft::watch<std::uint32_t> gauge{0};

    std::array<std::atomic<std::uint8_t>, max_children> lives{};
    std::array<std::atomic<std::uint64_t>, max_children> outcomes{}; // 1 + what it returned; 0: not yet
    std::array<std::atomic<bool>, max_children> subscribed{}; // watch and oneshot children: waiting now
    std::atomic<std::uint32_t> violations{0};                 // a pinned child seen elsewhere, a bad life
};

/// A child's life in `world::lives`, carried in its frame: started and
/// completed by the child, cancelled by the destructor if the frame goes
/// first. Any other transition counts as a violation.
class life_token {
public:
    life_token(world& w, std::size_t index) noexcept : m_world(&w), m_index(index) {}
    life_token(life_token&& other) noexcept
        : m_world(std::exchange(other.m_world, nullptr)), m_index(other.m_index) {}
    life_token(const life_token&) = delete;
    life_token& operator=(const life_token&) = delete;
    life_token& operator=(life_token&&) = delete;
    ~life_token() {
        if (m_world != nullptr) {
            std::uint8_t cur = m_world->lives[m_index].load();
            if ((cur != spawned && cur != started) ||
                !m_world->lives[m_index].compare_exchange_strong(cur, cancelled)) {
                m_world->violations.fetch_add(1);
            }
        }
    }
    void start() noexcept { move(spawned, started); }
    void finish(std::uint64_t outcome) noexcept {
        m_world->outcomes[m_index].store(1 + outcome);
        move(started, completed);
        m_world = nullptr;
    }

private:
    void move(life from, life to) noexcept {
        std::uint8_t cur = from;
        if (!m_world->lives[m_index].compare_exchange_strong(cur, to)) {
            m_world->violations.fetch_add(1);
        }
    }
    world* m_world;
    std::size_t m_index;
};

void check_home(world& w, std::uint32_t home) {
    if (home != no_home && weft::current_worker() != home) {
        w.violations.fetch_add(1);
    }
}

std::uint64_t code_of(const std::error_code& e) {
    if (e == weft::errc::closed) {
        return closed_marker;
    }
    if (e == weft::errc::timed_out) {
        return timed_out_marker;
    }
    return std::uint64_t{3} << 42; // anything else: never expected
}

weft::task<std::uint32_t> grandchild(std::uint32_t value) {
    co_await weft::yield_now();
    co_return value + 1;
}

/// A timeout of 0 (due at once: the operation never runs) or 1 ms.
std::chrono::milliseconds within(std::uint32_t param) { return std::chrono::milliseconds(param & 1u); }

weft::task<std::uint64_t> child_body(world& w, life_token tok, kind k, std::uint32_t param,
                                     std::uint32_t home, weft::oneshot_receiver<std::uint32_t> rx,
                                     std::size_t index) {
    tok.start();
    check_home(w, home);
    std::uint64_t out = param;
    switch (k) {
    case kind::immediate: break;
    case kind::yields:
        for (std::uint32_t i = 0; i <= param % 3; ++i) {
            co_await weft::yield_now();
            check_home(w, home);
        }
        break;
    case kind::sleeps: {
        const auto length = std::chrono::milliseconds(param & 1u);
        const auto start = std::chrono::steady_clock::now();
        auto slept = co_await weft::sleep_for(length);
        if (!slept || std::chrono::steady_clock::now() - start < length) {
            w.violations.fetch_add(1); // failed, or woke early
        }
        break;
    }
    case kind::spawner: out = co_await weft::spawn_local(grandchild(param)); break;
    case kind::recv: {
        auto r = co_await w.channel.recv();
        out = r ? *r : code_of(r.error());
        break;
    }
    case kind::send: {
        auto r = co_await w.channel.send(param);
        out = r ? param : code_of(r.error());
        break;
    }
    case kind::acquire: {
        auto permit = co_await w.permits.acquire(1 + (param & 1u));
        out = permit.count();
        break;
    }
    case kind::lock: {
        auto guard = co_await w.lock.lock();
        break;
    }
    case kind::notified: co_await w.note.notified(); break;
    case kind::watch: {
        auto rx_watch = w.gauge.subscribe();
        w.subscribed[index].store(true);
        auto r = co_await rx_watch.changed();
        out = r ? rx_watch.borrow_and_update() : code_of(r.error());
        break;
    }
    case kind::oneshot: {
        w.subscribed[index].store(true);
        auto r = co_await rx;
        out = r ? *r : code_of(r.error());
        break;
    }
    case kind::recv_within: {
        auto r = co_await weft::timeout(within(param), w.channel.recv());
        out = !r ? code_of(r.error()) : *r ? **r : code_of(r->error());
        break;
    }
    case kind::acquire_within: {
        auto r = co_await weft::timeout(within(param), w.permits.acquire(1));
        out = r ? r->count() : code_of(r.error());
        break;
    }
    case kind::notified_within: {
        auto r = co_await weft::timeout(within(param), w.note.notified());
        out = r ? param : code_of(r.error());
        break;
    }
    case kind::blocking:
    case kind::count: break;
    }
    check_home(w, home);
    tok.finish(out);
    co_return out;
}

// ---- the model ------------------------------------------------------------------------------

enum class status : std::uint8_t { waiting, finished, aborted };

struct model_child {
    kind k = kind::immediate;
    std::uint32_t param = 0;
    status st = status::waiting;
    std::uint64_t expect = 0; // what it returns, once finished
};

/// What the program should have done so far. A value: copied to follow
/// either branch of a race.
struct model {
    std::vector<model_child> children;

    std::deque<std::uint32_t> buffer; // values in the channel
    bool channel_closed = false;
    std::deque<std::size_t> receivers;
    std::deque<std::size_t> senders;

    std::size_t available = initial_permits;
    std::deque<std::size_t> acquirers; // wanting 1 + (param & 1)
    std::vector<std::size_t> held;     // permits the interpreter holds

    bool locked = false; // by the interpreter
    std::deque<std::size_t> lockers;

    bool note_permit = false;
    std::deque<std::size_t> note_waiters;

    std::uint32_t gauge = 0;
    std::uint64_t gauge_version = 0;
    bool gauge_closed = false;
    std::vector<std::size_t> watchers;

    std::vector<std::size_t> oneshot_waiting;

    void finish(std::size_t i, std::uint64_t value) {
        children[i].st = status::finished;
        children[i].expect = value;
    }

    static std::size_t wanted(const model_child& c) { return 1 + (c.param & 1u); }

    // FIFO hand-overs after any change, as the primitives' dispatch does.
    void dispatch() {
        for (bool again = true; again;) {
            again = false;
            if (!receivers.empty() && !buffer.empty()) {
                finish(receivers.front(), buffer.front());
                receivers.pop_front();
                buffer.pop_front();
                again = true;
            } else if (!senders.empty() && !channel_closed && buffer.size() < channel_capacity) {
                const std::size_t s = senders.front();
                senders.pop_front();
                buffer.push_back(children[s].param);
                finish(s, children[s].param);
                again = true;
            }
        }
        // Acquirers pass through: each returns its permits as it returns.
        while (!acquirers.empty() && wanted(children[acquirers.front()]) <= available) {
            finish(acquirers.front(), wanted(children[acquirers.front()]));
            acquirers.pop_front();
        }
        while (!locked && !lockers.empty()) { // each unlocks as it returns
            finish(lockers.front(), children[lockers.front()].param);
            lockers.pop_front();
        }
    }

    static bool timed(kind k) {
        return k == kind::recv_within || k == kind::acquire_within || k == kind::notified_within;
    }

    /// A child's first run, right after its spawn.
    void arrive(std::size_t i) {
        model_child& c = children[i];
        if (timed(c.k) && (c.param & 1u) == 0) {
            finish(i, timed_out_marker); // a timeout of 0 ms: the operation never runs
            return;
        }
        switch (c.k) {
        case kind::immediate:
        case kind::yields:
        case kind::sleeps:
        case kind::blocking: finish(i, c.param); break;
        case kind::spawner: finish(i, c.param + 1); break;
        case kind::recv:
        case kind::recv_within:
            if (receivers.empty() && !buffer.empty()) {
                finish(i, buffer.front());
                buffer.pop_front();
            } else if (channel_closed) {
                finish(i, closed_marker);
            } else if (c.k == kind::recv) {
                receivers.push_back(i);
            } else {
                finish(i, timed_out_marker);
            }
            break;
        case kind::send:
            if (channel_closed) {
                finish(i, closed_marker);
            } else if (senders.empty() && buffer.size() < channel_capacity) {
                buffer.push_back(c.param);
                finish(i, c.param);
            } else {
                senders.push_back(i);
            }
            break;
        case kind::acquire:
        case kind::acquire_within:
            if (acquirers.empty() && available >= (c.k == kind::acquire ? wanted(c) : 1)) {
                finish(i, c.k == kind::acquire ? wanted(c) : 1);
            } else if (c.k == kind::acquire) {
                acquirers.push_back(i);
            } else {
                finish(i, timed_out_marker);
            }
            break;
        case kind::lock:
            if (!locked && lockers.empty()) {
                finish(i, c.param);
            } else {
                lockers.push_back(i);
            }
            break;
        case kind::notified:
        case kind::notified_within:
            if (note_permit) {
                note_permit = false;
                finish(i, c.param);
            } else if (c.k == kind::notified) {
                note_waiters.push_back(i);
            } else {
                finish(i, timed_out_marker);
            }
            break;
        case kind::watch:
            if (gauge_closed) {
                finish(i, closed_marker);
            } else {
                watchers.push_back(i);
            }
            break;
        case kind::oneshot: oneshot_waiting.push_back(i); break;
        case kind::count: break;
        }
        dispatch();
    }

    /// A waiting child is cancelled: out of its queue, and the queues move on.
    void cancel(std::size_t i) {
        const auto drop = [i](auto& list) {
            for (auto it = list.begin(); it != list.end(); ++it) {
                if (*it == i) {
                    list.erase(it);
                    return;
                }
            }
        };
        if (children[i].st != status::waiting) {
            return;
        }
        drop(receivers);
        drop(senders);
        drop(acquirers);
        drop(lockers);
        drop(note_waiters);
        drop(watchers);
        drop(oneshot_waiting);
        children[i].st = status::aborted;
        dispatch();
    }

    // ---- operations on the primitives (return what a try_ gives) ----

    std::uint64_t try_send(std::uint32_t v) {
        if (channel_closed) {
            return closed_marker;
        }
        if (!senders.empty() || buffer.size() >= channel_capacity) {
            return timed_out_marker; // would block
        }
        buffer.push_back(v);
        dispatch();
        return v;
    }
    std::uint64_t try_recv() {
        if (!buffer.empty()) {
            const std::uint32_t v = buffer.front();
            buffer.pop_front();
            dispatch();
            return v;
        }
        return channel_closed ? closed_marker : timed_out_marker;
    }
    void close_channel() {
        channel_closed = true;
        for (std::size_t r : receivers) {
            finish(r, closed_marker);
        }
        for (std::size_t s : senders) {
            finish(s, closed_marker);
        }
        receivers.clear();
        senders.clear();
    }
    bool try_acquire(std::size_t n) {
        if (!acquirers.empty() || available < n) {
            return false;
        }
        available -= n;
        held.push_back(n);
        return true;
    }
    void release_held(std::size_t at) {
        available += held[at];
        held.erase(held.begin() + static_cast<std::ptrdiff_t>(at));
        dispatch();
    }
    void add_permits(std::size_t n) {
        available += n;
        dispatch();
    }
    bool try_lock() {
        if (locked || !lockers.empty()) {
            return false;
        }
        locked = true;
        return true;
    }
    void unlock() {
        locked = false;
        dispatch();
    }
    void notify_one() {
        if (note_waiters.empty()) {
            note_permit = true;
            return;
        }
        finish(note_waiters.front(), children[note_waiters.front()].param);
        note_waiters.pop_front();
    }
    void notify_all() {
        for (std::size_t n : note_waiters) {
            finish(n, children[n].param);
        }
        note_waiters.clear();
    }
    void gauge_send(std::uint32_t v) {
        gauge = v;
        ++gauge_version;
        for (std::size_t w : watchers) {
            finish(w, v);
        }
        watchers.clear();
    }
    void gauge_close() {
        gauge_closed = true;
        for (std::size_t w : watchers) {
            finish(w, closed_marker);
        }
        watchers.clear();
    }
    /// The oneshot of child i: sent (value) or dropped (none).
    void oneshot_end(std::size_t i, std::optional<std::uint32_t> value) {
        for (auto it = oneshot_waiting.begin(); it != oneshot_waiting.end(); ++it) {
            if (*it == i) {
                oneshot_waiting.erase(it);
                finish(i, value ? *value : closed_marker);
                return;
            }
        }
    }

    std::size_t waiting_children() const {
        std::size_t n = 0;
        for (const model_child& c : children) {
            n += c.st == status::waiting ? 1 : 0;
        }
        return n;
    }
};

// ---- the interpreter -------------------------------------------------------------------------

using executor = weft::executor<workers, 4>;
using child_join = weft::join_handle<std::uint64_t>;

// The steps run inside the executor. Not templates: clang 14 cannot build
// template coroutines with -fsanitize=function (see detail/attributes.hpp).
weft::task<void> call_inside(const std::function<void()>* fn) {
    (*fn)();
    co_return;
}

weft::task<child_join> spawn_inside(weft::task<std::uint64_t> work, std::uint32_t home, bool local) {
    if (local) {
        co_return weft::spawn_local(std::move(work));
    }
    if (home != no_home) {
        co_return weft::spawn_pinned(home, std::move(work));
    }
    co_return weft::spawn(std::move(work));
}

weft::task<std::uint64_t> join_inside(child_join* handle) { co_return co_await *handle; }

struct child_handle {
    std::optional<child_join> join; // empty once joined or detached
    weft::oneshot_sender<std::uint32_t> tx;
    bool has_tx = false;
};

/// Reads the program's bytes; zeros past the end.
class reader {
public:
    reader(const std::uint8_t* data, std::size_t size) : m_data(data), m_size(size) {}
    bool done() const { return m_at >= m_size; }
    std::uint8_t next() { return m_at < m_size ? m_data[m_at++] : 0; }

private:
    const std::uint8_t* m_data;
    std::size_t m_size;
    std::size_t m_at = 0;
};

// The program's encoding: three bytes per operation, [opcode, a, b].
//   bit 7 of `a`: run the operation inside a task (else from this thread);
//   spawn: kind = (a & 31) % 15, placement = (a >> 5) & 3 (anywhere, worker
//     0, worker 1, local: inside), parameter = b;
//   other operations on a child: child = b % children so far;
//   wake_and_abort: the wake = a % 9 (see `wakes`), child = b.
enum class opcode : std::uint8_t {
    spawn,
    join,
    abort,
    detach,
    try_send,
    try_recv,
    close,
    try_acquire,
    release_held,
    add_permit,
    try_lock,
    unlock,
    notify_one,
    notify_all,
    gauge_send,
    gauge_close,
    oneshot_send,
    oneshot_drop,
    wake_and_abort,
    shutdown,
    count
};

constexpr std::array<const char*, static_cast<std::size_t>(opcode::count)> opcode_names = {
    "spawn",       "join",         "abort",        "detach",         "try_send",
    "try_recv",    "close",        "try_acquire",  "release_held",   "add_permit",
    "try_lock",    "unlock",       "notify_one",   "notify_all",     "gauge_send",
    "gauge_close", "oneshot_send", "oneshot_drop", "wake_and_abort", "shutdown"};

constexpr std::array<opcode, 9> wakes = {opcode::try_send,   opcode::try_recv,   opcode::release_held,
                                         opcode::add_permit, opcode::unlock,     opcode::notify_one,
                                         opcode::notify_all, opcode::gauge_send, opcode::close};

class interpreter {
public:
    /// Runs on `ex`, created here if empty; see end().
    explicit interpreter(std::unique_ptr<executor>& ex) : m_world(std::make_unique<world>()), m_ex(ex) {
        if (!m_ex) {
            m_ex = std::make_unique<executor>(settings());
        }
    }
    interpreter(const interpreter&) = delete;
    interpreter& operator=(const interpreter&) = delete;
    ~interpreter() {
        m_held.clear();
        m_guard = {};
        m_handles.clear();
    }

    /// Ends the program. After a shutdown the executor is destroyed (the
    /// next program starts a new one). Otherwise every waiting child is let
    /// go (see release_all) and joined, and the executor, holding no task,
    /// runs the next program: starting one per program would cost more
    /// than most programs.
    void end() {
        if (std::getenv("WEFT_FUZZ_TRACE") != nullptr) { // what an input does, for people
            for (const std::string& line : m_trace) {
                std::fprintf(stderr, "%s\n", line.c_str());
            }
        }
        if (m_shut_down) {
            m_ex.reset();
            return;
        }
        trace("end of the program: release everything");
        release_all();
        settle(m_model);
        for (std::size_t i = 0; i < m_handles.size(); ++i) {
            join_child(i, false);
        }
        if (!weft_wait([&] { return m_ex->metrics().live_tasks == 0; })) {
            fail("tasks still alive at the end of the program");
        }
    }

    void run(reader& in) {
        while (!in.done() && !m_shut_down) {
            const auto op = static_cast<opcode>(in.next() % static_cast<std::uint8_t>(opcode::count));
            const std::uint8_t a = in.next();
            const std::uint8_t b = in.next();
            trace("%s %u %u", opcode_names[static_cast<std::size_t>(op)], a, b);
            step(op, a, b);
            settle(m_model);
        }
    }

private:
    static weft::settings settings() {
        weft::settings s;
        s.thread_name_prefix = "fuzz";
        return s;
    }

    /// Runs `fn` in a task on the executor (inside) or on this thread.
    void on(bool inside, const std::function<void()>& fn) {
        if (inside) {
            m_ex->block_on(call_inside(&fn));
        } else {
            fn();
        }
    }

    std::size_t pick(std::uint8_t byte) const { return byte % m_model.children.size(); }

    void step(opcode op, std::uint8_t a, std::uint8_t b) {
        const bool inside = (a & 0x80u) != 0;
        if (op == opcode::spawn) {
            spawn_child(a, b);
            return;
        }
        if (op == opcode::shutdown) {
            shutdown();
            return;
        }
        const bool on_child = op == opcode::join || op == opcode::abort || op == opcode::detach ||
                              op == opcode::oneshot_send || op == opcode::oneshot_drop ||
                              op == opcode::wake_and_abort;
        if (on_child && m_model.children.empty()) {
            return;
        }
        switch (op) {
        case opcode::join: join_child(pick(b), inside); break;
        case opcode::abort:
            if (child_handle& h = m_handles[pick(b)]; h.join) {
                h.join->abort();
                m_model.cancel(pick(b));
            } // detached: nothing can abort it any more
            break;
        case opcode::detach: m_handles[pick(b)].join.reset(); break;
        case opcode::wake_and_abort: wake_and_abort(a, b); break;
        default: primitive_op(op, a, b, inside, m_model); break;
        }
    }

    // One operation on the primitives, for real and on `m`; try_ results
    // are checked against `m`.
    void primitive_op(opcode op, std::uint8_t a, std::uint8_t b, bool inside, model& m) {
        switch (op) {
        case opcode::try_send: {
            const std::uint32_t v = 1000u + b;
            std::uint64_t got = 0;
            on(inside, [&] {
                auto r = m_world->channel.try_send(v);
                got = r                                 ? std::uint64_t{v}
                      : r.error() == weft::errc::closed ? closed_marker
                                                        : timed_out_marker;
            });
            expect_equal("try_send", got, m.try_send(v));
            break;
        }
        case opcode::try_recv: {
            std::uint64_t got = 0;
            on(inside, [&] {
                auto r = m_world->channel.try_recv();
                got = r                                 ? std::uint64_t{*r}
                      : r.error() == weft::errc::closed ? closed_marker
                                                        : timed_out_marker;
            });
            expect_equal("try_recv", got, m.try_recv());
            break;
        }
        case opcode::close:
            on(inside, [&] { m_world->channel.close(); });
            m.close_channel();
            break;
        case opcode::try_acquire: {
            const std::size_t n = 1 + (b & 1u);
            weft::semaphore::permit permit;
            on(inside, [&] { permit = m_world->permits.try_acquire(n); });
            expect_equal("try_acquire", static_cast<bool>(permit), m.try_acquire(n));
            if (permit) {
                m_held.push_back(std::move(permit));
            }
            break;
        }
        case opcode::release_held:
            if (!m_held.empty()) {
                const std::size_t at = b % m_held.size();
                on(inside, [&] { m_held[at].release(); });
                m_held.erase(m_held.begin() + static_cast<std::ptrdiff_t>(at));
                m.release_held(at);
            }
            break;
        case opcode::add_permit:
            on(inside, [&] { m_world->permits.release(1); });
            m.add_permits(1);
            break;
        case opcode::try_lock:
            if (!m_guard) {
                on(inside, [&] { m_guard = m_world->lock.try_lock(); });
                expect_equal("try_lock", static_cast<bool>(m_guard), m.try_lock());
            }
            break;
        case opcode::unlock:
            if (m_guard) {
                on(inside, [&] { m_guard.unlock(); });
                m_guard = {};
                m.unlock();
            }
            break;
        case opcode::notify_one:
            on(inside, [&] { m_world->note.notify_one(); });
            m.notify_one();
            break;
        case opcode::notify_all:
            on(inside, [&] { m_world->note.notify_all(); });
            m.notify_all();
            break;
        case opcode::gauge_send: {
            const std::uint32_t v = 2000u + b;
            on(inside, [&] { m_world->gauge.send(v); });
            m.gauge_send(v);
            break;
        }
        case opcode::gauge_close:
            on(inside, [&] { m_world->gauge.close(); });
            m.gauge_close();
            break;
        case opcode::oneshot_send:
        case opcode::oneshot_drop: {
            const std::size_t i = pick(b);
            child_handle& h = m_handles[i];
            if (!h.has_tx) {
                break;
            }
            h.has_tx = false;
            if (op == opcode::oneshot_send) {
                const std::uint32_t v = 3000u + (a & 0x7Fu);
                bool sent = false;
                on(inside, [&] { sent = static_cast<bool>(h.tx.send(v)); });
                // The receiver is gone once its child was cancelled.
                expect_equal("oneshot send", sent, m.children[i].st != status::aborted);
                m.oneshot_end(i, v);
            } else {
                on(inside, [&] { h.tx = {}; });
                m.oneshot_end(i, std::nullopt);
            }
            break;
        }
        default: break;
        }
    }

    void spawn_child(std::uint8_t a, std::uint8_t b) {
        if (m_model.children.size() >= max_children) {
            return;
        }
        const std::size_t i = m_model.children.size();
        const auto k = static_cast<kind>((a & 31u) % static_cast<std::uint8_t>(kind::count));
        const std::uint32_t where = (a >> 5) & 3u;
        const bool local = where == 3;
        const bool inside = (a & 0x80u) != 0 || local;
        const std::uint32_t home = where == 1 ? 0u : where == 2 ? 1u : no_home;
        trace("  child %zu: %s, parameter %u, %s, spawned %s", i, kind_names[static_cast<std::size_t>(k)], b,
              local             ? "local"
              : home == no_home ? "anywhere"
              : home == 0       ? "pinned to 0"
                                : "pinned to 1",
              inside ? "inside" : "outside");
        m_world->lives[i].store(spawned);
        m_model.children.push_back(model_child{k, b, status::waiting, 0});
        m_handles.emplace_back();
        child_handle& h = m_handles.back();

        if (k == kind::blocking) {
            auto job = [tok = life_token(*m_world, i), param = std::uint64_t{b}]() mutable {
                tok.start();
                tok.finish(param);
                return param;
            };
            if (inside) {
                on(true, [&] { h.join = weft::spawn_blocking(std::move(job)); });
            } else {
                h.join = m_ex->spawn_blocking(std::move(job));
            }
        } else {
            weft::oneshot_receiver<std::uint32_t> rx;
            if (k == kind::oneshot) {
                auto [tx, r] = weft::make_oneshot<std::uint32_t>();
                h.tx = std::move(tx);
                h.has_tx = true;
                rx = std::move(r);
            }
            auto work =
                child_body(*m_world, life_token(*m_world, i), k, b, local ? no_home : home, std::move(rx), i);
            if (inside) {
                h.join = m_ex->block_on(spawn_inside(std::move(work), home, local));
            } else {
                h.join = home == no_home ? m_ex->spawn(std::move(work))
                                         : m_ex->spawn_pinned(home, std::move(work));
            }
        }
        m_model.arrive(i);
    }

    void join_child(std::size_t i, bool inside) {
        child_handle& h = m_handles[i];
        const model_child& c = m_model.children[i];
        if (!h.join || c.st == status::waiting) {
            return; // already joined or detached, or it would wait forever
        }
        child_join handle = std::move(*h.join);
        h.join.reset();
        std::uint64_t got = 0;
        bool aborted = false;
        try {
            got = inside ? m_ex->block_on(join_inside(&handle)) : handle.get();
        } catch (const weft::error& e) {
            aborted = e.code() == weft::errc::task_aborted;
            if (!aborted) {
                fail("joining child %zu raised %s", i, e.what());
            }
        }
        if (c.st == status::aborted) {
            expect_equal("join of a cancelled child says aborted", aborted, true);
        } else {
            expect_equal("join of a finished child", got, c.expect);
        }
    }

    // A wake for child i and an abort of child i in one step (one task, so
    // no other task of this worker runs in between): the abort races the
    // wake. Either the wake won (i finished with what it was handed) or the
    // abort did (i is cancelled and handed it on: as if it had left before
    // the wake). The model keeps both and follows the one observed: in
    // both, child i ends (finished or cancelled), so a state on the way
    // (i still waiting) matches neither.
    void wake_and_abort(std::uint8_t a, std::uint8_t b) {
        const std::size_t i = pick(b);
        const opcode op = wakes[a % wakes.size()];
        child_handle& h = m_handles[i];
        if (!h.join) {
            return; // detached: nothing can abort it
        }
        trace("  %s, then abort child %zu", opcode_names[static_cast<std::size_t>(op)], i);
        model won = m_model;
        model lost = m_model;
        lost.cancel(i);
        // try_ results do not depend on the branch (the abort changes only
        // who gets a hand-over): primitive_op checks them against `won`,
        // and the same operation is then applied to `lost` (model only).
        on(true, [&] {
            primitive_op(op, a & 0x7Fu, b, false, won);
            h.join->abort();
        });
        won.cancel(i); // not handed anything by the wake: the abort wins for sure
        apply_to_model(op, b, lost);
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        for (;;) {
            if (difference(won).empty()) {
                m_model = std::move(won);
                return;
            }
            if (difference(lost).empty()) {
                m_model = std::move(lost);
                return;
            }
            if (std::chrono::steady_clock::now() > deadline) {
                fail("after a wake raced an abort, neither ending: %s / %s", difference(won).c_str(),
                     difference(lost).c_str());
            }
            std::this_thread::yield();
        }
    }

    // What primitive_op does to a model, for the second branch.
    static void apply_to_model(opcode op, std::uint8_t b, model& m) {
        switch (op) {
        case opcode::try_send: (void)m.try_send(1000u + b); break;
        case opcode::try_recv: (void)m.try_recv(); break;
        case opcode::release_held:
            if (!m.held.empty()) {
                m.release_held(b % m.held.size());
            }
            break;
        case opcode::add_permit: m.add_permits(1); break;
        case opcode::unlock:
            if (m.locked) {
                m.unlock();
            }
            break;
        case opcode::notify_one: m.notify_one(); break;
        case opcode::notify_all: m.notify_all(); break;
        case opcode::gauge_send: m.gauge_send(2000u + b); break;
        case opcode::close: m.close_channel(); break;
        default: break;
        }
    }

    // Ends every wait, for real and in the model: the channel and the watch
    // close, notify_all, enough permits, the mutex and the oneshots let go.
    void release_all() {
        primitive_op(opcode::close, 0, 0, false, m_model);
        primitive_op(opcode::gauge_close, 0, 0, false, m_model);
        primitive_op(opcode::notify_all, 0, 0, false, m_model);
        primitive_op(opcode::unlock, 0, 0, false, m_model);
        while (!m_held.empty()) {
            primitive_op(opcode::release_held, 0, 0, false, m_model);
        }
        while (m_model.available < 2) { // the most an acquirer wants: each passes through
            primitive_op(opcode::add_permit, 0, 0, false, m_model);
        }
        for (std::size_t i = 0; i < m_handles.size(); ++i) {
            primitive_op(opcode::oneshot_drop, 0, static_cast<std::uint8_t>(i), false, m_model);
        }
    }

    template <class Done>
    static bool weft_wait(Done done) {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (!done()) {
            if (std::chrono::steady_clock::now() > deadline) {
                return done();
            }
            std::this_thread::yield();
        }
        return true;
    }

    // Shutdown: every waiting child is destroyed (cancelled), nothing is left.
    void shutdown() {
        m_ex->shutdown();
        m_shut_down = true;
        for (model_child& c : m_model.children) {
            if (c.st == status::waiting) {
                c.st = status::aborted;
            }
        }
        m_model.receivers.clear();
        m_model.senders.clear();
        m_model.acquirers.clear();
        m_model.lockers.clear();
        m_model.note_waiters.clear();
        m_model.watchers.clear();
        m_model.oneshot_waiting.clear();
        if (const std::string diff = difference(m_model); !diff.empty()) {
            fail("after shutdown: %s", diff.c_str());
        }
        for (std::size_t i = 0; i < m_handles.size(); ++i) {
            join_child(i, false);
        }
        expect_equal("live tasks after shutdown", m_ex->metrics().live_tasks, 0);
    }

    // ---- settling and comparing ----

    /// Waits until the executor matches the model; a mismatch that lasts is a failure.
    void settle(const model& m) {
        if (m_shut_down) {
            return;
        }
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        for (std::string diff = difference(m); !diff.empty(); diff = difference(m)) {
            if (std::chrono::steady_clock::now() > deadline) {
                fail("%s", diff.c_str());
            }
            std::this_thread::yield();
        }
    }

    /// The first way the executor differs from `m`, or "".
    std::string difference(const model& m) const {
        char text[256];
        for (std::size_t i = 0; i < m.children.size(); ++i) {
            const model_child& c = m.children[i];
            const std::uint8_t lived = m_world->lives[i].load();
            const std::uint64_t outcome = m_world->outcomes[i].load();
            const char* name = kind_names[static_cast<std::size_t>(c.k)];
            if (c.st == status::waiting && (lived != started || outcome != 0)) {
                std::snprintf(text, sizeof text,
                              "child %zu (%s) should wait, but its life is %u, outcome %llu", i, name, lived,
                              static_cast<unsigned long long>(outcome));
                return text;
            }
            if (c.st == status::finished && (lived != completed || outcome != 1 + c.expect)) {
                std::snprintf(text, sizeof text,
                              "child %zu (%s) should have returned %llu, but its life is %u, outcome %llu", i,
                              name, static_cast<unsigned long long>(c.expect), lived,
                              static_cast<unsigned long long>(outcome == 0 ? 0 : outcome - 1));
                return text;
            }
            if (c.st == status::aborted && lived != cancelled) {
                std::snprintf(text, sizeof text, "child %zu (%s) should be cancelled, but its life is %u", i,
                              name, lived);
                return text;
            }
            if ((c.k == kind::watch || c.k == kind::oneshot) && c.st == status::waiting &&
                !m_world->subscribed[i].load()) {
                std::snprintf(text, sizeof text, "child %zu (%s) has not started waiting", i, name);
                return text;
            }
        }
        const world& w = *m_world;
        const auto same = [&](const char* what, std::size_t real, std::size_t expected) {
            if (real != expected) {
                std::snprintf(text, sizeof text, "%s is %zu, the model says %zu", what, real, expected);
                return false;
            }
            return true;
        };
        if (!same("channel size", w.channel.size(), m.buffer.size()) ||
            !same("waiting receivers", w.channel.waiting_receivers(), m.receivers.size()) ||
            !same("waiting senders", w.channel.waiting_senders(), m.senders.size()) ||
            !same("free permits", w.permits.available(), m.available) ||
            !same("waiting acquirers", w.permits.waiting(), m.acquirers.size()) ||
            !same("mutex locked", w.lock.is_locked() ? 1 : 0, m.locked ? 1 : 0) ||
            !same("waiting lockers", w.lock.waiting(), m.lockers.size()) ||
            !same("notify waiters", w.note.waiting(), m.note_waiters.size()) ||
            !same("watch version", static_cast<std::size_t>(w.gauge.version()),
                  static_cast<std::size_t>(m.gauge_version)) ||
            !same("violations", w.violations.load(), 0)) {
            return text;
        }
        if (!m_shut_down) {
            // Blocking jobs never wait, so the tasks alive are exactly the waiting children.
            const auto metrics = m_ex->metrics();
            if (!same("live tasks", metrics.live_tasks, m.waiting_children()) ||
                !same("armed timers", metrics.armed_timers, 0) ||
                !same("queued blocking jobs", metrics.blocking_queue_depth, 0)) {
                return text;
            }
        }
        return {};
    }

    // ---- reporting ----

    template <class A, class B>
    void expect_equal(const char* what, const A& got, const B& expected) {
        if (!(got == static_cast<A>(expected))) {
            fail("%s gave %llu, the model says %llu", what, static_cast<unsigned long long>(got),
                 static_cast<unsigned long long>(expected));
        }
    }

    void trace(const char* format, ...) __attribute__((format(printf, 2, 3))) {
        char line[160];
        va_list args;
        va_start(args, format);
        std::vsnprintf(line, sizeof line, format, args);
        va_end(args);
        m_trace.emplace_back(line);
    }

    [[noreturn]] void fail(const char* format, ...) __attribute__((format(printf, 2, 3))) {
        char text[768];
        va_list args;
        va_start(args, format);
        std::vsnprintf(text, sizeof text, format, args);
        va_end(args);
        std::fprintf(stderr, "executor_fuzz: MISMATCH: %s\nthe program so far:\n", text);
        for (const std::string& line : m_trace) {
            std::fprintf(stderr, "  %s\n", line.c_str());
        }
        std::fflush(stderr);
        std::abort();
    }

    std::unique_ptr<world> m_world; // outlives every child: their awaiters use it
    std::unique_ptr<executor>& m_ex;
    model m_model;
    std::vector<child_handle> m_handles;
    std::vector<weft::semaphore::permit> m_held;
    weft::mutex::guard m_guard;
    std::vector<std::string> m_trace;
    bool m_shut_down = false;
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static std::unique_ptr<executor> ex; // kept between programs (see interpreter::end)
    reader in(data, size);
    interpreter program(ex);
    program.run(in);
    program.end();
    return 0;
}
