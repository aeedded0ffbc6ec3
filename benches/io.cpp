// io: TCP echo over loopback, weft against asio; and asio's side of the
// http_hello workload.
//
//   echo_tcp      an echo server and 64 client connections each doing 2,000
//                 round trips of 64 bytes, the clients in the same runtime
//                 as the server (the setup of Tokio's published figure):
//                 round trips per second
//   echo_tcp_ext  the same server driven by one load-generator thread (one
//                 epoll loop over the 64 connections), the same code for
//                 every server: round trips per second
//
// Runtimes: weft (server and clients are tasks; one per connection, as
// examples/echo_server.cpp); asio (the classic callback echo server of
// asio's examples, io_context run by `workers` threads).
//
// `io --serve-http 1 [--port P] [--workers N]` instead serves http_hello
// with asio until killed, answering as examples/http_hello.cpp does (every
// complete request head gets the same 13-byte "Hello, world!" response,
// keep-alive): benches/run points wrk at it and at examples/http_hello.
//
//   usage: io [--workers N] [--reps N] [--quick] [--runtime ...] [--workload ...]
//             [--connections N] [--trips N]
#include <weft/weft.hpp>

#include "support/harness.hpp"
#include "support/peers.hpp"
#include "support/workers.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#if WEFT_BENCH_HAVE_ASIO
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#endif

namespace {

constexpr const char* family = "io";
constexpr std::size_t message_size = 64;

struct settings {
    std::size_t connections = 64;
    std::size_t trips = 2'000;
};

/// Room for the listener, 64 server-side and 64 client-side connections.
struct io_options : weft::default_options {
    static constexpr std::uint32_t max_io_sources = 1024;
};

/// Runs `one_rep()` (which returns its elapsed ns) once to warm up and then
/// --reps times, and prints round trips per second.
template <class OneRep>
void measure(const bench::options& opts, const settings& s, const char* workload, const char* runtime,
             OneRep&& one_rep) {
    bench::result r = bench::make_result(opts, family, workload, runtime, "trips/s", false);
    const double trips = static_cast<double>(s.connections * s.trips);
    r.samples = bench::repeat(opts.reps(), [&] { return trips / (one_rep() / 1e9); });
    bench::print(r);
}

// ---- the shared load generator (echo_tcp_ext) ---------------------------------

/// One thread, one epoll loop: `connections` connections to 127.0.0.1:port,
/// each sends 64 bytes, waits for all 64 back, `trips` times. Returns the
/// elapsed ns (connecting included, as the in-runtime clients include it).
double drive_echo(std::uint16_t port, const settings& s) {
    struct connection {
        int fd = -1;
        std::size_t trips_left = 0;
        std::size_t received = 0;
    };
    const auto start = bench::clock::now();
    std::vector<connection> conns(s.connections);
    const int poller = ::epoll_create1(EPOLL_CLOEXEC);
    sockaddr_in server{};
    server.sin_family = AF_INET;
    server.sin_port = htons(port);
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const std::array<char, message_size> message{};
    for (std::size_t i = 0; i < conns.size(); ++i) {
        connection& c = conns[i];
        c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c.fd < 0 || ::connect(c.fd, reinterpret_cast<const sockaddr*>(&server), sizeof server) != 0) {
            bench::fail("echo_tcp_ext: cannot connect to the server");
        }
        const int on = 1;
        ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        c.trips_left = s.trips;
        epoll_event interest{};
        interest.events = EPOLLIN;
        interest.data.u64 = i;
        ::epoll_ctl(poller, EPOLL_CTL_ADD, c.fd, &interest);
        if (::send(c.fd, message.data(), message.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(message.size())) {
            bench::fail("echo_tcp_ext: send failed");
        }
    }
    std::size_t active = conns.size();
    std::array<epoll_event, 64> events;
    std::array<char, 4096> buffer;
    while (active > 0) {
        const int ready = ::epoll_wait(poller, events.data(), static_cast<int>(events.size()), 10'000);
        if (ready <= 0) {
            bench::fail("echo_tcp_ext: the server stopped answering");
        }
        for (int e = 0; e < ready; ++e) {
            connection& c = conns[events[static_cast<std::size_t>(e)].data.u64];
            const ssize_t n = ::recv(c.fd, buffer.data(), message_size - c.received, 0);
            if (n <= 0) {
                bench::fail("echo_tcp_ext: the server closed a connection");
            }
            c.received += static_cast<std::size_t>(n);
            if (c.received < message_size) {
                continue;
            }
            c.received = 0;
            if (--c.trips_left == 0) {
                ::close(c.fd);
                --active;
            } else if (::send(c.fd, message.data(), message.size(), MSG_NOSIGNAL) !=
                       static_cast<ssize_t>(message.size())) {
                bench::fail("echo_tcp_ext: send failed");
            }
        }
    }
    ::close(poller);
    return bench::ns_between(start, bench::clock::now());
}

// ---- weft ---------------------------------------------------------------------

weft::task<> echo_session(weft::tcp_stream stream) {
    (void)stream.set_nodelay(true);
    std::array<std::byte, 4096> buffer;
    for (;;) {
        auto n = co_await stream.read(buffer);
        if (!n || *n == 0) {
            co_return;
        }
        if (!co_await stream.write_all(std::span(buffer).first(*n))) {
            co_return;
        }
    }
}

weft::task<> accept_loop(weft::tcp_listener& listener) {
    for (;;) {
        auto stream = co_await listener.accept();
        if (stream) {
            weft::spawn(echo_session(std::move(*stream))).detach();
        } else if (stream.error() == weft::errc::closed) {
            co_return;
        }
    }
}

/// The server for a whole workload: listens on a free loopback port,
/// publishes it, serves until `stop` is notified.
struct weft_server {
    std::atomic<std::uint16_t> port{0};
    bench::latch ready{1};
    weft::notify stop;
};

weft::task<> serve_echo(weft_server& server) {
    auto listener = weft::tcp_listener::bind(weft::socket_address::ipv4_loopback(0), 1024);
    if (!listener) {
        bench::fail("echo_tcp: weft cannot listen on loopback");
    }
    server.port.store(listener->local_address()->port());
    server.ready.count_down();
    auto acceptor = weft::spawn(accept_loop(*listener));
    co_await server.stop.notified();
    (void)listener->close();
    co_await acceptor;
}

weft::task<> echo_client(std::uint16_t port, std::size_t trips, std::atomic<std::size_t>& failures) {
    auto stream = co_await weft::tcp_stream::connect(weft::socket_address::ipv4_loopback(port));
    if (!stream) {
        failures.fetch_add(1);
        co_return;
    }
    (void)stream->set_nodelay(true);
    std::array<std::byte, message_size> out{};
    std::array<std::byte, message_size> in{};
    for (std::size_t i = 0; i < trips; ++i) {
        if (!co_await stream->write_all(out) || !co_await stream->read_exact(in)) {
            failures.fetch_add(1);
            co_return;
        }
    }
}

template <class Executor>
void run_weft(const bench::options& opts, const settings& s) {
    for (const char* workload : {"echo_tcp", "echo_tcp_ext"}) {
        if (!opts.wants(workload, "weft")) {
            continue;
        }
        Executor ex;
        weft_server server;
        auto served = ex.spawn(serve_echo(server));
        server.ready.wait();
        const std::uint16_t port = server.port.load();
        std::atomic<std::size_t> failures{0};
        std::vector<weft::join_handle<void>> clients;
        measure(opts, s, workload, "weft", [&] {
            if (std::string_view(workload) == "echo_tcp_ext") {
                return drive_echo(port, s);
            }
            const auto start = bench::clock::now();
            for (std::size_t i = 0; i < s.connections; ++i) {
                clients.push_back(ex.spawn(echo_client(port, s.trips, failures)));
            }
            for (auto& c : clients) {
                c.get();
            }
            clients.clear();
            return bench::ns_between(start, bench::clock::now());
        });
        server.stop.notify_one();
        served.get();
        if (failures.load() != 0) {
            bench::fail("echo_tcp: a weft client failed");
        }
    }
}

// ---- asio ---------------------------------------------------------------------

#if WEFT_BENCH_HAVE_ASIO
using asio::ip::tcp;

/// asio's classic echo session: read some, write it all back, repeat.
class asio_echo_session : public std::enable_shared_from_this<asio_echo_session> {
public:
    explicit asio_echo_session(tcp::socket socket) : m_socket(std::move(socket)) {}
    void start() {
        m_socket.set_option(tcp::no_delay(true));
        read();
    }

private:
    void read() {
        m_socket.async_read_some(asio::buffer(m_buffer),
                                 [self = shared_from_this()](std::error_code error, std::size_t n) {
                                     if (!error) {
                                         self->write(n);
                                     }
                                 });
    }
    void write(std::size_t n) {
        asio::async_write(m_socket, asio::buffer(m_buffer, n),
                          [self = shared_from_this()](std::error_code error, std::size_t) {
                              if (!error) {
                                  self->read();
                              }
                          });
    }

    tcp::socket m_socket;
    std::array<char, 4096> m_buffer;
};

/// Accepts connections and gives each to a new session made by `Session`.
template <class Session>
class asio_server {
public:
    explicit asio_server(asio::io_context& io, std::uint16_t port = 0)
        : m_acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), port)) {
        accept();
    }
    std::uint16_t port() const { return m_acceptor.local_endpoint().port(); }
    /// Stops accepting; from a thread of the io_context (post it).
    void close() { m_acceptor.close(); }

private:
    void accept() {
        m_acceptor.async_accept([this](std::error_code error, tcp::socket socket) {
            if (error == asio::error::operation_aborted) {
                return;
            }
            if (!error) {
                std::make_shared<Session>(std::move(socket))->start();
            }
            accept();
        });
    }

    tcp::acceptor m_acceptor;
};

/// One client connection: connect, then `trips` times write 64 bytes and
/// read 64 back; counts down `done` at the end.
class asio_echo_client : public std::enable_shared_from_this<asio_echo_client> {
public:
    asio_echo_client(asio::io_context& io, std::size_t trips, bench::latch& done,
                     std::atomic<std::size_t>& failures)
        : m_socket(io), m_left(trips), m_done(done), m_failures(failures) {}

    void start(std::uint16_t port) {
        m_socket.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), port),
                               [self = shared_from_this()](std::error_code error) {
                                   if (self->check(error)) {
                                       self->m_socket.set_option(tcp::no_delay(true));
                                       self->trip();
                                   }
                               });
    }

private:
    bool check(std::error_code error) {
        if (error) {
            m_failures.fetch_add(1);
            m_done.count_down();
        }
        return !error;
    }
    void trip() {
        if (m_left-- == 0) {
            m_done.count_down();
            return;
        }
        asio::async_write(m_socket, asio::buffer(m_out),
                          [self = shared_from_this()](std::error_code error, std::size_t) {
                              if (self->check(error)) {
                                  asio::async_read(self->m_socket, asio::buffer(self->m_in),
                                                   [self](std::error_code read_error, std::size_t) {
                                                       if (self->check(read_error)) {
                                                           self->trip();
                                                       }
                                                   });
                              }
                          });
    }

    tcp::socket m_socket;
    std::size_t m_left;
    bench::latch& m_done;
    std::atomic<std::size_t>& m_failures;
    std::array<char, message_size> m_out{};
    std::array<char, message_size> m_in{};
};

void run_asio(const bench::options& opts, const settings& s) {
    for (const char* workload : {"echo_tcp", "echo_tcp_ext"}) {
        if (!opts.wants(workload, "asio")) {
            continue;
        }
        bench::asio_pool pool(opts.workers());
        asio_server<asio_echo_session> server(pool.context());
        std::atomic<std::size_t> failures{0};
        bench::latch done;
        measure(opts, s, workload, "asio", [&] {
            if (std::string_view(workload) == "echo_tcp_ext") {
                return drive_echo(server.port(), s);
            }
            const auto start = bench::clock::now();
            done.reset(static_cast<std::uint32_t>(s.connections));
            for (std::size_t i = 0; i < s.connections; ++i) {
                std::make_shared<asio_echo_client>(pool.context(), s.trips, done, failures)
                    ->start(server.port());
            }
            done.wait();
            return bench::ns_between(start, bench::clock::now());
        });
        bench::latch closed;
        pool.post([&] {
            server.close();
            closed.count_down();
        });
        closed.wait();
        if (failures.load() != 0) {
            bench::fail("echo_tcp: an asio client failed");
        }
    }
}

/// http_hello with asio: examples/http_hello.cpp's protocol, asio's way.
class asio_http_session : public std::enable_shared_from_this<asio_http_session> {
public:
    explicit asio_http_session(tcp::socket socket) : m_socket(std::move(socket)) {}
    void start() {
        m_socket.set_option(tcp::no_delay(true));
        read();
    }

private:
    static constexpr std::string_view response = "HTTP/1.1 200 OK\r\n"
                                                 "Content-Type: text/plain\r\n"
                                                 "Content-Length: 13\r\n"
                                                 "\r\n"
                                                 "Hello, world!";

    void read() {
        m_socket.async_read_some(asio::buffer(m_buffer.data() + m_filled, m_buffer.size() - m_filled),
                                 [self = shared_from_this()](std::error_code error, std::size_t n) {
                                     if (!error) {
                                         self->answer(n);
                                     }
                                 });
    }

    void answer(std::size_t n) {
        m_filled += n;
        std::string_view pending(m_buffer.data(), m_filled);
        m_out.clear();
        bool close_after = false;
        for (std::size_t end; (end = pending.find("\r\n\r\n")) != std::string_view::npos;) {
            close_after =
                close_after || pending.substr(0, end).find("Connection: close") != std::string_view::npos;
            pending.remove_prefix(end + 4);
            m_out += response;
        }
        std::memmove(m_buffer.data(), pending.data(), pending.size());
        m_filled = pending.size();
        if (m_filled == m_buffer.size()) {
            return; // a request head larger than the buffer: give up on it
        }
        if (m_out.empty()) {
            read();
            return;
        }
        asio::async_write(m_socket, asio::buffer(m_out),
                          [self = shared_from_this(), close_after](std::error_code error, std::size_t) {
                              if (!error && !close_after) {
                                  self->read();
                              }
                          });
    }

    tcp::socket m_socket;
    std::array<char, 8192> m_buffer;
    std::size_t m_filled = 0;
    std::string m_out;
};

int serve_http(const bench::options& opts) {
    bench::asio_pool pool(opts.workers());
    asio_server<asio_http_session> server(pool.context(), static_cast<std::uint16_t>(opts.integer("port")));
    std::printf("http_hello (asio, %u threads) listening on 127.0.0.1:%u\n", opts.workers(), server.port());
    std::fflush(stdout);
    for (;;) {
        ::pause(); // until killed
    }
}
#endif

} // namespace

int main(int argc, char** argv) {
    const bench::options opts(argc, argv,
                              {{"connections", "64"}, {"trips", "2000"}, {"serve-http", "0"}, {"port", "0"}});
    if (opts.list()) {
        std::vector<const char*> runtimes{"weft"};
#if WEFT_BENCH_HAVE_ASIO
        runtimes.push_back("asio");
#endif
        bench::print_list(family, {"echo_tcp", "echo_tcp_ext"}, runtimes);
        return 0;
    }
    if (opts.integer("serve-http") != 0) {
#if WEFT_BENCH_HAVE_ASIO
        return serve_http(opts);
#else
        bench::fail("--serve-http: this build has no asio");
#endif
    }
    settings s;
    s.connections = static_cast<std::size_t>(std::max(1LL, opts.integer("connections")));
    s.trips = static_cast<std::size_t>(std::max(1LL, opts.integer("trips")));
    if (opts.quick()) {
        s.connections = std::min<std::size_t>(s.connections, 8);
        s.trips = std::min<std::size_t>(s.trips, 100);
    }
    bench::with_workers<io_options>(opts.workers(),
                                    [&](auto tag) { run_weft<bench::executor_of<decltype(tag)>>(opts, s); });
#if WEFT_BENCH_HAVE_ASIO
    run_asio(opts, s);
#endif
    return 0;
}
