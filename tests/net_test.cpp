// tests/net_test.cpp
//
// The network layer's contract, on loopback only: addresses parse and print
// back; many concurrent connections echo every byte exactly; IPv6 works
// where ::1 exists; half-close, peer reset, early end of stream and refused
// connections give the documented results; close() wakes a task waiting in
// accept, read or write with errc::closed; UDP delivers datagrams with their
// sender, connected or not; a timed-out read leaves the stream usable;
// socket options take effect; registrations are bounded and never leak a
// descriptor.
//
// Checks inside tasks (worker threads) go to a failure_log (an atomic count
// and the first message); the main thread REQUIREs it empty, since Catch2's
// assertions are not thread-safe. Nothing depends on speed: the only time
// limits turn a hang into a failure, and the short timeouts are expected to
// expire.
#include <weft/weft.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "support/catch.hpp"
#include "support/util.hpp"

namespace {

using namespace std::chrono_literals;
using weft::socket_address;

// 64 clients + 64 accepted streams + a listener is more than the default 256
// registrations leave room for, with other tests' sockets.
struct net_options : weft::default_options {
    static constexpr std::uint32_t max_io_sources = 512;
};

// Three registrations: small enough that a test runs out.
struct three_sources : weft::default_options {
    static constexpr std::uint32_t max_io_sources = 3;
};

// How long a wait may take before it counts as a hang (a failure, never a pass).
constexpr auto hang_limit = 30s;

/// Failures seen on worker threads: counted, the first one kept for the report.
class failure_log {
public:
    void record(const std::string& what, int line) {
        if (m_count.fetch_add(1) == 0) {
            const std::lock_guard<std::mutex> hold(m_mutex);
            m_first = what + " (net_test.cpp:" + std::to_string(line) + ")";
        }
    }
    int count() const { return m_count.load(); }
    std::string first() const {
        const std::lock_guard<std::mutex> hold(m_mutex);
        return m_first;
    }

private:
    std::atomic<int> m_count{0};
    mutable std::mutex m_mutex;
    std::string m_first;
};

#define NET_EXPECT(log, condition)                                                                           \
    do {                                                                                                     \
        if (!(condition)) {                                                                                  \
            (log).record(#condition, __LINE__);                                                              \
        }                                                                                                    \
    } while (false)

// An error as text, for the failure log.
std::string describe(std::error_code error) { return error.category().name() + (": " + error.message()); }

// Evaluates `result` once (it may be a co_await) and records its error, if any.
#define NET_EXPECT_OK(log, result)                                                                           \
    do {                                                                                                     \
        auto&& net_outcome = (result);                                                                       \
        if (!net_outcome) {                                                                                  \
            (log).record(#result " failed: " + describe(net_outcome.error()), __LINE__);                     \
        }                                                                                                    \
    } while (false)

#define REQUIRE_NO_FAILURES(log)                                                                             \
    do {                                                                                                     \
        INFO((log).first());                                                                                 \
        REQUIRE((log).count() == 0);                                                                         \
    } while (false)

std::span<const std::byte> bytes_of(std::string_view text) { return std::as_bytes(std::span(text)); }

std::string text_of(std::span<const std::byte> bytes) {
    std::string out(bytes.size(), '\0');
    std::memcpy(out.data(), bytes.data(), bytes.size());
    return out;
}

int int_option(int fd, int level, int name) {
    int value = -1;
    socklen_t size = sizeof value;
    if (::getsockopt(fd, level, name, &value, &size) != 0) {
        return -1;
    }
    return value;
}

std::size_t open_descriptors() {
    return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                                                  std::filesystem::directory_iterator()));
}

/// Two ends of one loopback TCP connection.
struct stream_pair {
    weft::tcp_stream client;
    weft::tcp_stream server;
};

/// Connects to a fresh listener on `where` and accepts: the kernel completes
/// the handshake without waiting for accept, so no second task is needed.
weft::task<weft::result<stream_pair>>
connected_pair(socket_address where = socket_address::ipv4_loopback(0)) {
    auto listener = weft::tcp_listener::bind(where);
    if (!listener) {
        co_return listener.error();
    }
    auto local = listener->local_address();
    if (!local) {
        co_return local.error();
    }
    auto client = co_await weft::tcp_stream::connect(*local);
    if (!client) {
        co_return client.error();
    }
    auto server = co_await listener->accept();
    if (!server) {
        co_return server.error();
    }
    co_return stream_pair{std::move(*client), std::move(*server)};
}

/// Echoes until end of stream; adds every echoed byte to `echoed`.
weft::task<void> echo_connection(weft::tcp_stream stream, std::atomic<std::uint64_t>* echoed,
                                 failure_log* log) {
    std::array<std::byte, 1024> buffer{};
    for (;;) {
        auto n = co_await stream.read(buffer);
        NET_EXPECT_OK(*log, n);
        if (!n || *n == 0) {
            co_return;
        }
        auto written = co_await stream.write_all(std::span(buffer).first(*n));
        NET_EXPECT_OK(*log, written);
        if (!written) {
            co_return;
        }
        echoed->fetch_add(*n);
    }
}

/// Awaits a spawned task. A task, not the handle itself, goes to
/// weft::timeout: timeout() wraps other awaitables in a template coroutine
/// (detail::as_child_task) that clang 14 cannot compile with
/// -fsanitize=function (llvm/llvm-project#49689).
template <class T>
weft::task<T> join(weft::join_handle<T> handle) {
    co_return co_await handle;
}

// ---- 2. many connections, many round trips ------------------------------------------------------

// The message of client `id` in round `round`: it starts with the client's
// id and the round, so a byte delivered to the wrong client or out of
// order shows.
std::size_t message_size(std::uint64_t id, std::uint64_t round) {
    return static_cast<std::size_t>(4 + (id * 7 + round * 13) % 200);
}

void fill_message(std::span<std::byte> out, std::uint64_t id, std::uint64_t round) {
    out[0] = static_cast<std::byte>(id);
    out[1] = static_cast<std::byte>(round);
    out[2] = static_cast<std::byte>(round >> 8);
    out[3] = static_cast<std::byte>(round >> 16);
    for (std::size_t i = 4; i < out.size(); ++i) {
        out[i] = static_cast<std::byte>((id * 131 + round * 17 + i * 3) & 0xFF);
    }
}

weft::task<std::uint64_t> echo_client(socket_address server, std::uint64_t id, std::uint64_t rounds,
                                      failure_log* log) {
    auto stream = co_await weft::tcp_stream::connect(server);
    NET_EXPECT_OK(*log, stream);
    if (!stream) {
        co_return 0;
    }
    NET_EXPECT_OK(*log, stream->set_nodelay(true));
    std::vector<std::byte> out(256);
    std::vector<std::byte> in(256);
    std::uint64_t sent = 0;
    for (std::uint64_t round = 0; round < rounds; ++round) {
        const std::size_t size = message_size(id, round);
        fill_message(std::span(out).first(size), id, round);
        auto written = co_await stream->write_all(std::span(out).first(size));
        auto got = co_await stream->read_exact(std::span(in).first(size));
        NET_EXPECT_OK(*log, written);
        NET_EXPECT_OK(*log, got);
        if (!written || !got) {
            co_return sent;
        }
        NET_EXPECT(*log, std::memcmp(out.data(), in.data(), size) == 0);
        sent += size;
    }
    co_return sent;
}

struct echo_totals {
    std::uint64_t sent = 0;
    std::uint64_t echoed = 0;
};

weft::task<echo_totals> echo_many(std::uint64_t clients, std::uint64_t rounds, failure_log* log) {
    auto listener = weft::tcp_listener::bind(socket_address::ipv4_loopback(0));
    NET_EXPECT_OK(*log, listener);
    if (!listener) {
        co_return echo_totals{};
    }
    const socket_address address = listener->local_address().value();
    std::atomic<std::uint64_t> echoed{0};

    std::vector<weft::join_handle<std::uint64_t>> client_handles;
    for (std::uint64_t id = 0; id < clients; ++id) {
        client_handles.push_back(weft::spawn(echo_client(address, id, rounds, log)));
    }
    std::vector<weft::join_handle<void>> server_handles;
    for (std::uint64_t i = 0; i < clients; ++i) {
        auto stream = co_await listener->accept();
        NET_EXPECT_OK(*log, stream);
        if (!stream) {
            break;
        }
        server_handles.push_back(weft::spawn(echo_connection(std::move(*stream), &echoed, log)));
    }
    echo_totals totals;
    for (auto& handle : client_handles) {
        totals.sent += co_await handle;
    }
    // Each client's stream closed when it finished: every echo task sees end of stream.
    for (auto& handle : server_handles) {
        co_await handle;
    }
    totals.echoed = echoed.load();
    co_return totals;
}

// ---- 3. IPv6 -------------------------------------------------------------------------------------

enum class v6_outcome { ran, no_ipv6 };

weft::task<v6_outcome> echo_over_ipv6(failure_log* log, std::string* why_not) {
    auto listener = weft::tcp_listener::bind(socket_address::ipv6_loopback(0));
    if (!listener) {
        if (listener.error() == std::errc::address_not_available ||
            listener.error() == std::errc::address_family_not_supported) {
            *why_not = describe(listener.error());
            co_return v6_outcome::no_ipv6;
        }
        NET_EXPECT_OK(*log, listener);
        co_return v6_outcome::ran;
    }
    const socket_address address = listener->local_address().value();
    NET_EXPECT(*log, address.is_ipv6());
    NET_EXPECT(*log, address == socket_address::ipv6_loopback(address.port()));
    auto client = co_await weft::tcp_stream::connect(address);
    NET_EXPECT_OK(*log, client);
    auto server = co_await listener->accept();
    NET_EXPECT_OK(*log, server);
    if (!client || !server) {
        co_return v6_outcome::ran;
    }
    NET_EXPECT(*log, server->peer_address().value() == client->local_address().value());
    NET_EXPECT(*log, client->peer_address().value() == address);
    std::atomic<std::uint64_t> echoed{0};
    auto echo = weft::spawn(echo_connection(std::move(*server), &echoed, log));
    const std::string_view message = "over IPv6";
    NET_EXPECT_OK(*log, co_await client->write_all(bytes_of(message)));
    std::array<std::byte, 9> back{};
    NET_EXPECT_OK(*log, co_await client->read_exact(back));
    NET_EXPECT(*log, text_of(back) == message);
    client->close();
    co_await echo;
    NET_EXPECT(*log, echoed.load() == message.size());
    co_return v6_outcome::ran;
}

// ---- 4 to 7. stream endings ---------------------------------------------------------------------

weft::task<void> half_close(failure_log* log) {
    auto pair = co_await connected_pair();
    NET_EXPECT_OK(*log, pair);
    if (!pair) {
        co_return;
    }
    auto& [client, server] = *pair;
    NET_EXPECT(*log, server.peer_address().value() == client.local_address().value());
    NET_EXPECT(*log, client.peer_address().value() == server.local_address().value());

    NET_EXPECT_OK(*log, co_await client.write_all(bytes_of("question")));
    NET_EXPECT_OK(*log, client.shutdown(weft::shutdown_how::write));

    // The server reads to end of stream...
    std::string received;
    std::array<std::byte, 3> buffer{}; // small: several reads
    for (;;) {
        auto n = co_await server.read(buffer);
        NET_EXPECT_OK(*log, n);
        if (!n || *n == 0) {
            break;
        }
        received += text_of(std::span(buffer).first(*n));
    }
    NET_EXPECT(*log, received == "question");
    auto again = co_await server.read(buffer); // end of stream stays end of stream
    NET_EXPECT(*log, again && *again == 0);

    // ...and can still answer, which the half-closed client reads.
    NET_EXPECT_OK(*log, co_await server.write_all(bytes_of("answer")));
    NET_EXPECT_OK(*log, server.shutdown(weft::shutdown_how::both));
    std::array<std::byte, 6> answer{};
    NET_EXPECT_OK(*log, co_await client.read_exact(answer));
    NET_EXPECT(*log, text_of(answer) == "answer");
    auto end = co_await client.read(buffer);
    NET_EXPECT(*log, end && *end == 0);
}

// Reads one byte, then closes with SO_LINGER {1, 0}: the peer gets a reset.
weft::task<void> reset_after_request(weft::tcp_stream* server, failure_log* log) {
    std::array<std::byte, 1> request{};
    NET_EXPECT_OK(*log, co_await server->read_exact(request));
    const linger abort_on_close{1, 0};
    NET_EXPECT(*log, ::setsockopt(server->native_handle(), SOL_SOCKET, SO_LINGER, &abort_on_close,
                                  sizeof abort_on_close) == 0);
    NET_EXPECT_OK(*log, server->close());
}

weft::task<void> reset_by_peer(failure_log* log) {
    auto pair = co_await connected_pair();
    NET_EXPECT_OK(*log, pair);
    if (!pair) {
        co_return;
    }
    auto& [client, server] = *pair;
    // The server resets once the client has asked (and is about to wait for the answer).
    auto resetter = weft::spawn(reset_after_request(&server, log));
    NET_EXPECT_OK(*log, co_await client.write_all(bytes_of("?")));
    std::array<std::byte, 16> buffer{};
    auto n = co_await weft::timeout(hang_limit, client.read(buffer));
    NET_EXPECT(*log, n.has_value()); // no hang
    if (n) {
        const weft::result<std::size_t>& read = *n;
        NET_EXPECT(*log, read ? *read == 0 : read.error() == std::errc::connection_reset);
    }
    co_await resetter;
}

weft::task<void> stream_ends_early(failure_log* log) {
    auto pair = co_await connected_pair();
    NET_EXPECT_OK(*log, pair);
    if (!pair) {
        co_return;
    }
    NET_EXPECT_OK(*log, co_await pair->server.write_all(bytes_of("abc")));
    NET_EXPECT_OK(*log, pair->server.close());
    std::array<std::byte, 10> buffer{};
    auto got = co_await pair->client.read_exact(buffer);
    NET_EXPECT(*log, !got && got.error() == weft::errc::unexpected_eof);
    NET_EXPECT(*log, text_of(std::span(buffer).first(3)) == "abc");
}

weft::task<void> refused(failure_log* log) {
    socket_address address;
    {
        auto listener = weft::tcp_listener::bind(socket_address::ipv4_loopback(0));
        NET_EXPECT_OK(*log, listener);
        if (!listener) {
            co_return;
        }
        address = listener->local_address().value();
        NET_EXPECT_OK(*log, listener->close());
        NET_EXPECT(*log, !listener->is_open() && listener->native_handle() == -1);
    }
    auto stream = co_await weft::timeout(hang_limit, weft::tcp_stream::connect(address));
    NET_EXPECT(*log, stream.has_value());
    if (stream) {
        NET_EXPECT(*log, !*stream && stream->error() == std::errc::connection_refused);
    }
}

weft::task<void> write_after_peer_closed(failure_log* log) {
    auto pair = co_await connected_pair();
    NET_EXPECT_OK(*log, pair);
    if (!pair) {
        co_return;
    }
    NET_EXPECT_OK(*log, pair->server.close());
    // The first writes may still be accepted (the peer answers them with a
    // reset); one soon fails, and never with a signal.
    std::error_code error;
    for (int i = 0; i < 1000 && !error; ++i) {
        auto n = co_await pair->client.write(bytes_of("data"));
        if (!n) {
            error = n.error();
        }
    }
    NET_EXPECT(*log, error == std::errc::broken_pipe || error == std::errc::connection_reset);
}

// ---- 8. close() wakes waiters -------------------------------------------------------------------

// Waits (never for long) until `started` is set, then a little longer so
// that the waiter is most likely suspended; the outcome is the same if not.
weft::task<void> after_start(const std::atomic<bool>& started) {
    while (!started.load()) {
        co_await weft::yield_now();
    }
    co_await weft::sleep_for(10ms);
}

// The waiter's outcome, or errc::timed_out if it hangs.
weft::task<std::error_code> wait_for(weft::join_handle<weft::result<void>> waiter) {
    auto outcome = co_await weft::timeout(hang_limit, join(std::move(waiter)));
    co_return outcome ? outcome->error() : outcome.error();
}

template <class Socket, class Operation>
weft::task<weft::result<void>> wait_then_report(Socket* socket, std::atomic<bool>* started,
                                                Operation operation) {
    started->store(true);
    auto outcome = co_await operation(*socket);
    co_return outcome ? weft::result<void>() : weft::result<void>(outcome.error());
}

weft::task<void> close_wakes_accept(failure_log* log) {
    auto listener = weft::tcp_listener::bind(socket_address::ipv4_loopback(0));
    NET_EXPECT_OK(*log, listener);
    if (!listener) {
        co_return;
    }
    std::atomic<bool> started{false};
    auto waiter =
        weft::spawn(wait_then_report(&*listener, &started, [](weft::tcp_listener& l) { return l.accept(); }));
    co_await after_start(started);
    NET_EXPECT_OK(*log, listener->close());
    const std::error_code error = co_await wait_for(std::move(waiter));
    NET_EXPECT(*log, error == weft::errc::closed);
    NET_EXPECT(*log, listener->native_handle() == -1); // the waiter, last out, closed it
    auto late = co_await listener->accept();
    NET_EXPECT(*log, !late && late.error() == weft::errc::closed);
    NET_EXPECT(*log, listener->local_address().error() == weft::errc::closed);
}

weft::task<void> close_wakes_read(failure_log* log) {
    auto pair = co_await connected_pair();
    NET_EXPECT_OK(*log, pair);
    if (!pair) {
        co_return;
    }
    std::atomic<bool> started{false};
    std::array<std::byte, 16> buffer{};
    auto waiter = weft::spawn(
        wait_then_report(&pair->client, &started, [&buffer](weft::tcp_stream& s) { return s.read(buffer); }));
    co_await after_start(started);
    NET_EXPECT_OK(*log, pair->client.close());
    const std::error_code error = co_await wait_for(std::move(waiter));
    NET_EXPECT(*log, error == weft::errc::closed);
    NET_EXPECT(*log, pair->client.native_handle() == -1 && !pair->client.is_open());
    auto late = co_await pair->client.read(buffer);
    NET_EXPECT(*log, !late && late.error() == weft::errc::closed);
    // The peer sees the connection end.
    auto end = co_await weft::timeout(hang_limit, pair->server.read(buffer));
    NET_EXPECT(*log, end.has_value() && end->has_value() && **end == 0);
}

weft::task<void> close_wakes_write(failure_log* log) {
    auto pair = co_await connected_pair();
    NET_EXPECT_OK(*log, pair);
    if (!pair) {
        co_return;
    }
    // Small buffers, and a peer that does not read: write_all soon waits.
    const int small = 4096;
    ::setsockopt(pair->client.native_handle(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    ::setsockopt(pair->server.native_handle(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    std::vector<std::byte> lots(8 << 20);
    std::atomic<bool> started{false};
    auto waiter = weft::spawn(wait_then_report(&pair->client, &started,
                                               [&lots](weft::tcp_stream& s) { return s.write_all(lots); }));
    co_await after_start(started);
    NET_EXPECT_OK(*log, pair->client.close());
    const std::error_code error = co_await wait_for(std::move(waiter));
    NET_EXPECT(*log, error == weft::errc::closed);
}

// close() at any point of a recv's retry loop: some rounds close before the
// reader waits, some while it runs, some while it is suspended.
weft::task<void> read_until_closed(weft::udp_socket* socket, std::atomic<bool>* started, failure_log* log) {
    std::array<std::byte, 4> buffer{};
    started->store(true);
    for (;;) {
        auto n = co_await socket->recv(buffer);
        if (!n) {
            NET_EXPECT(*log, n.error() == weft::errc::closed);
            co_return;
        }
    }
}

weft::task<void> close_after(weft::udp_socket* socket, const std::atomic<bool>* started, unsigned spin) {
    while (!started->load()) {
        co_await weft::yield_now();
    }
    for (std::atomic<unsigned> i = 0; i.load(std::memory_order_relaxed) < spin;
         i.fetch_add(1, std::memory_order_relaxed)) {
    }
    socket->close();
}

weft::task<void> close_races_recv(std::uint64_t rounds, failure_log* log) {
    auto sender = weft::udp_socket::bind(socket_address::ipv4_loopback(0));
    NET_EXPECT_OK(*log, sender);
    if (!sender) {
        co_return;
    }
    std::uint32_t seed = 1;
    for (std::uint64_t round = 0; round < rounds && log->count() == 0; ++round) {
        auto socket = weft::udp_socket::bind(socket_address::ipv4_loopback(0));
        NET_EXPECT_OK(*log, socket);
        if (!socket) {
            co_return;
        }
        const socket_address address = socket->local_address().value();
        const std::byte one{1};
        for (int i = 0; i < 16; ++i) { // the reader goes round its loop a few times first
            NET_EXPECT_OK(*log, co_await sender->send_to(std::span(&one, 1), address));
        }
        std::atomic<bool> started{false};
        seed = seed * 1103515245u + 12345u;
        auto closer = weft::spawn(close_after(&*socket, &started, (seed >> 16) % 2000));
        auto reader = weft::spawn(read_until_closed(&*socket, &started, log));
        auto read_ended = co_await weft::timeout(hang_limit, join(std::move(reader)));
        NET_EXPECT(*log, read_ended.has_value()); // no lost wake-up
        co_await closer;
        NET_EXPECT(*log, socket->native_handle() == -1); // closed exactly once, by the last user out
    }
}

// ---- 9. UDP --------------------------------------------------------------------------------------

weft::task<void> udp_exchange(failure_log* log) {
    auto a = weft::udp_socket::bind(socket_address::ipv4_loopback(0));
    auto b = weft::udp_socket::bind(socket_address::ipv4_loopback(0));
    auto c = weft::udp_socket::bind(socket_address::ipv4_loopback(0));
    NET_EXPECT_OK(*log, a);
    NET_EXPECT_OK(*log, b);
    NET_EXPECT_OK(*log, c);
    if (!a || !b || !c) {
        co_return;
    }
    const socket_address a_address = a->local_address().value();
    const socket_address b_address = b->local_address().value();
    NET_EXPECT(*log, a_address.port() != 0 && a_address.port() != b_address.port());
    std::array<std::byte, 64> buffer{};

    // Unconnected: the receiver learns who sent it.
    auto sent = co_await a->send_to(bytes_of("ping"), b_address);
    NET_EXPECT(*log, sent && *sent == 4);
    auto got = co_await b->recv_from(buffer);
    NET_EXPECT_OK(*log, got);
    if (got) {
        NET_EXPECT(*log, got->size == 4 && !got->truncated);
        NET_EXPECT(*log, text_of(std::span(buffer).first(got->size)) == "ping");
        NET_EXPECT(*log, got->sender == a_address);
    }
    // Longer than the buffer: cut, and said so.
    NET_EXPECT_OK(*log, co_await b->send_to(bytes_of("0123456789"), a_address));
    auto cut = co_await a->recv_from(std::span(buffer).first(4));
    NET_EXPECT(*log, cut && cut->size == 4 && cut->truncated && cut->sender == b_address);
    // An empty datagram is a datagram.
    NET_EXPECT_OK(*log, co_await a->send_to({}, b_address));
    auto empty = co_await b->recv_from(buffer);
    NET_EXPECT(*log, empty && empty->size == 0 && empty->sender == a_address);
    // send() needs a connected socket.
    auto unconnected = co_await a->send(bytes_of("x"));
    NET_EXPECT(*log, !unconnected && unconnected.error() == std::errc::destination_address_required);

    // Connected: send/recv, and only the connected peer's datagrams arrive.
    NET_EXPECT_OK(*log, a->connect(b_address));
    NET_EXPECT_OK(*log, b->connect(a_address));
    NET_EXPECT_OK(*log, co_await c->send_to(bytes_of("stranger"), b_address)); // dropped: b hears only a
    auto abc = co_await a->send(bytes_of("abc"));
    NET_EXPECT(*log, abc && *abc == 3);
    auto n = co_await b->recv(buffer);
    NET_EXPECT(*log, n && text_of(std::span(buffer).first(*n)) == "abc");
    NET_EXPECT_OK(*log, co_await b->send(bytes_of("xyz")));
    auto m = co_await a->recv(buffer);
    NET_EXPECT(*log, m && text_of(std::span(buffer).first(*m)) == "xyz");
}

weft::task<void> close_wakes_recv(failure_log* log) {
    auto socket = weft::udp_socket::bind(socket_address::ipv4_loopback(0));
    NET_EXPECT_OK(*log, socket);
    if (!socket) {
        co_return;
    }
    std::atomic<bool> started{false};
    std::array<std::byte, 16> buffer{};
    auto waiter = weft::spawn(
        wait_then_report(&*socket, &started, [&buffer](weft::udp_socket& s) { return s.recv_from(buffer); }));
    co_await after_start(started);
    NET_EXPECT_OK(*log, socket->close());
    const std::error_code error = co_await wait_for(std::move(waiter));
    NET_EXPECT(*log, error == weft::errc::closed);
    NET_EXPECT(*log, socket->native_handle() == -1);
}

// ---- 10. timeouts ------------------------------------------------------------------------------

weft::task<void> timed_out_read(failure_log* log) {
    auto pair = co_await connected_pair();
    NET_EXPECT_OK(*log, pair);
    if (!pair) {
        co_return;
    }
    std::array<std::byte, 16> buffer{};
    for (int i = 0; i < 2; ++i) { // twice: the first left nothing behind (no errc::busy)
        auto silent = co_await weft::timeout(5ms, pair->client.read(buffer));
        NET_EXPECT(*log, !silent && silent.error() == weft::errc::timed_out);
    }
    NET_EXPECT(*log, pair->client.is_open());
    NET_EXPECT_OK(*log, co_await pair->server.write_all(bytes_of("late")));
    auto late = co_await weft::timeout(hang_limit, pair->client.read_exact(std::span(buffer).first(4)));
    NET_EXPECT(*log, late && late->has_value());
    NET_EXPECT(*log, text_of(std::span(buffer).first(4)) == "late");
    // And the other way round, on the same stream.
    NET_EXPECT_OK(*log, co_await pair->client.write_all(bytes_of("back")));
    std::array<std::byte, 4> back{};
    NET_EXPECT_OK(*log, co_await pair->server.read_exact(back));
    NET_EXPECT(*log, text_of(back) == "back");
}

// ---- 11. options ---------------------------------------------------------------------------------

weft::task<void> options_take_effect(failure_log* log) {
    auto pair = co_await connected_pair();
    NET_EXPECT_OK(*log, pair);
    if (!pair) {
        co_return;
    }
    const int fd = pair->client.native_handle();
    NET_EXPECT(*log, int_option(fd, IPPROTO_TCP, TCP_NODELAY) == 0);
    NET_EXPECT_OK(*log, pair->client.set_nodelay(true));
    NET_EXPECT(*log, int_option(fd, IPPROTO_TCP, TCP_NODELAY) != 0);
    NET_EXPECT_OK(*log, pair->client.set_nodelay(false));
    NET_EXPECT(*log, int_option(fd, IPPROTO_TCP, TCP_NODELAY) == 0);

    auto reusing = weft::tcp_listener::bind(socket_address::ipv4_loopback(0));
    auto exclusive = weft::tcp_listener::bind(socket_address::ipv4_loopback(0), 16, false);
    NET_EXPECT(*log, reusing && int_option(reusing->native_handle(), SOL_SOCKET, SO_REUSEADDR) != 0);
    NET_EXPECT(*log, exclusive && int_option(exclusive->native_handle(), SOL_SOCKET, SO_REUSEADDR) == 0);
    auto udp_default = weft::udp_socket::bind(socket_address::ipv4_loopback(0));
    auto udp_reusing = weft::udp_socket::bind(socket_address::ipv4_loopback(0), true);
    NET_EXPECT(*log, udp_default && int_option(udp_default->native_handle(), SOL_SOCKET, SO_REUSEADDR) == 0);
    NET_EXPECT(*log, udp_reusing && int_option(udp_reusing->native_handle(), SOL_SOCKET, SO_REUSEADDR) != 0);
    if (!reusing || !udp_default) {
        co_return;
    }

    // Every socket is non-blocking and close-on-exec.
    for (const int handle :
         {fd, pair->server.native_handle(), reusing->native_handle(), udp_default->native_handle()}) {
        NET_EXPECT(*log, (::fcntl(handle, F_GETFL) & O_NONBLOCK) != 0);
        NET_EXPECT(*log, (::fcntl(handle, F_GETFD) & FD_CLOEXEC) != 0);
    }
}

// ---- registrations are bounded -------------------------------------------------------------------

weft::task<void> out_of_registrations(failure_log* log) {
    auto listener = weft::tcp_listener::bind(socket_address::ipv4_loopback(0)); // 1 of 3
    NET_EXPECT_OK(*log, listener);
    if (!listener) {
        co_return;
    }
    const socket_address address = listener->local_address().value();
    auto first = co_await weft::tcp_stream::connect(address); // 2 of 3
    NET_EXPECT_OK(*log, first);
    auto accepted = co_await listener->accept(); // 3 of 3
    NET_EXPECT_OK(*log, accepted);
    auto second = co_await weft::tcp_stream::connect(address);
    NET_EXPECT(*log, !second && second.error() == weft::errc::capacity_exhausted);
    auto udp = weft::udp_socket::bind(socket_address::ipv4_loopback(0));
    NET_EXPECT(*log, !udp && udp.error() == weft::errc::capacity_exhausted);
    // Closing one gives its registration back.
    NET_EXPECT_OK(*log, first->close());
    auto third = co_await weft::tcp_stream::connect(address);
    NET_EXPECT_OK(*log, third);
}

} // namespace

// Runs one scenario (a task that records failures in a failure_log) on a
// 2-worker executor and requires that it recorded none.
template <class Options = weft::default_options, class Scenario>
void run_checked(Scenario scenario) {
    weft::executor<2, 256, Options> ex;
    failure_log log;
    ex.block_on(scenario(&log));
    REQUIRE_NO_FAILURES(log);
}

TEST_CASE("socket_address parses, prints and compares IPv4 and IPv6 addresses", "[net]") {
    auto v4 = socket_address::parse("127.0.0.1:8080");
    REQUIRE(v4);
    REQUIRE_FALSE(v4->is_ipv6());
    REQUIRE(v4->family() == AF_INET);
    REQUIRE(v4->port() == 8080);
    REQUIRE(v4->size() == sizeof(sockaddr_in));
    REQUIRE(v4->data()->sa_family == AF_INET);
    REQUIRE(v4->to_string() == "127.0.0.1:8080");
    REQUIRE(*v4 == socket_address::ipv4_loopback(8080));

    auto v6 = socket_address::parse("[::1]:8080");
    REQUIRE(v6);
    REQUIRE(v6->is_ipv6());
    REQUIRE(v6->port() == 8080);
    REQUIRE(v6->size() == sizeof(sockaddr_in6));
    REQUIRE(v6->to_string() == "[::1]:8080");
    REQUIRE(*v6 == socket_address::ipv6_loopback(8080));

    auto any = socket_address::parse("0.0.0.0:0");
    REQUIRE(any);
    REQUIRE(*any == socket_address::ipv4_any(0));
    REQUIRE(*any == socket_address()); // the default
    REQUIRE(any->to_string() == "0.0.0.0:0");
    REQUIRE(socket_address::ipv6_any(9).to_string() == "[::]:9");

    REQUIRE_FALSE(*v4 == *v6);
    REQUIRE_FALSE(*v4 == socket_address::ipv4_loopback(8081));
    REQUIRE_FALSE(socket_address::parse("[::ffff:127.0.0.1]:8080").value() == *v4); // mapped is not v4

    // IPv6 text comes back in its canonical form.
    REQUIRE(socket_address::parse("[0:0:0:0:0:0:0:1]:80").value().to_string() == "[::1]:80");
    REQUIRE(socket_address::parse("[2001:DB8::0001]:443").value().to_string() == "[2001:db8::1]:443");
    REQUIRE(socket_address::parse("127.0.0.1:00080").value().port() == 80);

    const char* canonical[] = {"10.1.2.3:65535", "255.255.255.255:1",     "[2001:db8::1]:443",
                               "[::]:0",         "[::ffff:127.0.0.1]:80", "[fe80::1%7]:80"};
    for (const char* text : canonical) {
        CAPTURE(text);
        auto parsed = socket_address::parse(text);
        REQUIRE(parsed);
        REQUIRE(parsed->to_string() == text);
        auto again = socket_address::parse(parsed->to_string());
        REQUIRE(again);
        REQUIRE(*again == *parsed);
        auto copied = socket_address::from_native(parsed->data(), parsed->size());
        REQUIRE(copied);
        REQUIRE(*copied == *parsed);
    }
    REQUIRE_FALSE(socket_address::parse("[fe80::1%7]:80").value() ==
                  socket_address::parse("[fe80::1%8]:80").value());
    REQUIRE(socket_address::parse("[fe80::1%lo]:80")); // a scope by interface name (lo always exists)

    sockaddr unix_like{};
    unix_like.sa_family = AF_UNIX;
    auto unsupported = socket_address::from_native(&unix_like, sizeof unix_like);
    REQUIRE_FALSE(unsupported);
    REQUIRE(unsupported.error() == std::errc::address_family_not_supported);
    auto too_short = socket_address::from_native(v6->data(), sizeof(sockaddr_in));
    REQUIRE_FALSE(too_short);
    REQUIRE(too_short.error() == std::errc::invalid_argument);
}

TEST_CASE("socket_address::parse rejects malformed text with errc::invalid_argument", "[net]") {
    const std::string long_host = std::string(1000, '1') + ":80";
    const std::string with_nul("127.0.0.1\0:80", 13);
    const std::string_view bad[] = {"",
                                    "garbage",
                                    ":",
                                    "127.0.0.1",
                                    "127.0.0.1:",
                                    ":80",
                                    "127.0.0.1:65536",
                                    "127.0.0.1:100000",
                                    "127.0.0.1:99999999999999999999",
                                    "127.0.0.1:-1",
                                    "127.0.0.1:+80",
                                    "127.0.0.1:80x",
                                    "127.0.0.1: 80",
                                    " 127.0.0.1:80",
                                    "127.0.0.1:80 ",
                                    "256.0.0.1:80",
                                    "127.1:80",
                                    "1.2.3.4.5:80",
                                    "localhost:80",
                                    "::1:80",
                                    "::1",
                                    "[::1]",
                                    "[::1]80",
                                    "[::1]:",
                                    "[::1:80",
                                    "::1]:80",
                                    "[]:80",
                                    "[127.0.0.1]:80",
                                    "[:::1]:80",
                                    "[::1%]:80",
                                    "[::1%no-such-interface]:80",
                                    "[::1]:80]",
                                    "[[::1]]:80",
                                    long_host,
                                    with_nul};
    for (const std::string_view text : bad) {
        CAPTURE(std::string(text));
        auto parsed = socket_address::parse(text);
        REQUIRE_FALSE(parsed);
        REQUIRE(parsed.error() == weft::errc::invalid_argument);
    }
}

TEST_CASE("64 connections echo 1000 round trips each, every byte accounted for", "[net]") {
    weft::executor<2, 256, net_options> ex;
    failure_log log;
    const std::uint64_t clients = 64;
    const std::uint64_t rounds = weft_test::scaled(1000);
    const echo_totals totals = ex.block_on(echo_many(clients, rounds, &log));
    REQUIRE_NO_FAILURES(log);
    std::uint64_t expected = 0;
    for (std::uint64_t id = 0; id < clients; ++id) {
        for (std::uint64_t round = 0; round < rounds; ++round) {
            expected += message_size(id, round);
        }
    }
    REQUIRE(totals.sent == expected);
    REQUIRE(totals.echoed == expected);
}

TEST_CASE("a connection over IPv6 loopback echoes", "[net]") {
    weft::executor<2> ex;
    failure_log log;
    std::string why_not;
    const v6_outcome outcome = ex.block_on(echo_over_ipv6(&log, &why_not));
    REQUIRE_NO_FAILURES(log);
    if (outcome == v6_outcome::no_ipv6) {
        WARN("IPv6 loopback (::1) is not available here, test skipped: " << why_not);
    }
}

TEST_CASE("after a half-close the writer still reads the answer to what it sent", "[net]") {
    run_checked(half_close);
}

TEST_CASE("a peer reset ends a pending read with ECONNRESET or end of stream, not a hang", "[net]") {
    run_checked(reset_by_peer);
}

TEST_CASE("read_exact on a stream that ends early gives errc::unexpected_eof", "[net]") {
    run_checked(stream_ends_early);
}

TEST_CASE("connecting to a port nobody listens on gives ECONNREFUSED", "[net]") { run_checked(refused); }

TEST_CASE("writing to a peer that closed gives EPIPE or ECONNRESET, not SIGPIPE", "[net]") {
    run_checked(write_after_peer_closed);
}

TEST_CASE("close() wakes a task waiting in accept, read, write or recv_from with errc::closed", "[net]") {
    weft::executor<2> ex;
    failure_log log;
    SECTION("accept") { ex.block_on(close_wakes_accept(&log)); }
    SECTION("read") { ex.block_on(close_wakes_read(&log)); }
    SECTION("write") { ex.block_on(close_wakes_write(&log)); }
    SECTION("recv_from") { ex.block_on(close_wakes_recv(&log)); }
    REQUIRE_NO_FAILURES(log);
}

TEST_CASE("close() racing a recv in flight always ends it with errc::closed, leaking nothing", "[net]") {
    const std::size_t before = open_descriptors();
    {
        weft::executor<2> ex;
        failure_log log;
        ex.block_on(close_races_recv(weft_test::scaled(2000), &log));
        REQUIRE_NO_FAILURES(log);
    }
    REQUIRE(open_descriptors() == before);
}

TEST_CASE("UDP datagrams arrive with their sender, connected or not", "[net]") { run_checked(udp_exchange); }

TEST_CASE("a read cut off by a timeout gives errc::timed_out and leaves the stream usable", "[net]") {
    run_checked(timed_out_read);
}

TEST_CASE("set_nodelay and reuse_address take effect; sockets are non-blocking and close-on-exec", "[net]") {
    run_checked(options_take_effect);
}

TEST_CASE("when every registration is in use, sockets fail with errc::capacity_exhausted", "[net]") {
    run_checked<three_sources>(out_of_registrations);
}

#if defined(__cpp_exceptions) // what a throw reports: the -fno-exceptions suite leaves it out
TEST_CASE("creating a socket outside a task raises no_current_executor and leaks no descriptor", "[net]") {
    const std::size_t before = open_descriptors();
    REQUIRE_THROWS_AS(weft::tcp_listener::bind(socket_address::ipv4_loopback(0)), weft::error);
    REQUIRE_THROWS_AS(weft::udp_socket::bind(socket_address::ipv4_loopback(0)), weft::error);
    try {
        (void)weft::udp_socket::bind(socket_address::ipv4_loopback(0));
    } catch (const weft::error& e) {
        REQUIRE(e.code() == weft::errc::no_current_executor);
    }
    REQUIRE(open_descriptors() == before);
}
#endif

TEST_CASE("sockets close their descriptors when destroyed", "[net]") {
    const std::size_t before = open_descriptors();
    {
        weft::executor<2> ex;
        failure_log log;
        ex.block_on(half_close(&log));
        ex.block_on(udp_exchange(&log));
        ex.block_on(close_wakes_read(&log));
        REQUIRE_NO_FAILURES(log);
    }
    REQUIRE(open_descriptors() == before);
}
