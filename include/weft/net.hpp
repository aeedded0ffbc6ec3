// weft/net.hpp: TCP and UDP sockets on the executor's reactor.
//
// `weft::tcp_listener`, `weft::tcp_stream` and `weft::udp_socket` each own a
// non-blocking, close-on-exec socket registered (through weft::async_fd)
// with the executor running the task that created it. `weft::socket_address`
// is an IPv4 or IPv6 address and port.
//
// ```cpp
// weft::task<> echo(weft::tcp_stream stream) {
//     std::array<std::byte, 4096> buf;
//     for (;;) {
//         auto n = co_await stream.read(buf);
//         if (!n || *n == 0) co_return; // error, or the peer closed
//         auto written = co_await stream.write_all(std::span(buf).first(*n));
//         if (!written) co_return; // named first: g++ 12 and co_await in an if
//     }
// }
//
// weft::task<> serve() {
//     auto listener = weft::tcp_listener::bind(weft::socket_address::ipv4_loopback(7000));
//     if (!listener) co_return; // listener.error() says why, e.g. std::errc::address_in_use
//     for (;;) {
//         auto stream = co_await listener->accept();
//         if (!stream) co_return;
//         weft::spawn(echo(std::move(*stream))).detach();
//     }
// }
// ```
//
// Errors are values: every operation returns a weft::result. An errno comes
// as std::error_code(errno, std::generic_category()), equal to the matching
// std::errc; weft's own conditions as weft::errc. Nothing is thrown for a
// run-time failure. Creating a socket outside a task run by a weft executor
// is a programming error: it raises errc::no_current_executor.
//
// The rules:
//   - A socket belongs to the executor that created it and must not outlive
//     it. The task returned by an operation refers to the socket and to the
//     buffer it was given: both must outlive it.
//   - Several tasks may use one socket at once, but only one at a time per
//     direction: a second concurrent reader (or accept) or writer gets
//     errc::busy.
//   - close() may be called by any task at any time, also while others wait
//     on the socket: they wake with errc::closed. Until the last operation
//     in flight has returned, the socket is only shut down (shutdown(2),
//     which sends the peer a FIN and wakes the waiters); the descriptor is
//     closed by whoever leaves last, so no operation can ever reach a
//     descriptor number that was closed and reused. An operation on a closed
//     (or moved-from) socket returns errc::closed.
//   - Moving or destroying a socket while an operation on it is in flight is
//     undefined behaviour, as for any object.
//   - Writes use MSG_NOSIGNAL: a peer that went away gives EPIPE, never SIGPIPE.
//   - An operation can be cancelled (weft::timeout, join_handle::abort):
//     a cancelled read or accept loses nothing, and the socket stays usable;
//     a cancelled write_all may have sent a prefix of its buffer.
//
// Registration happens after connect(2) / listen(2), never before: a TCP
// socket that is neither connected nor listening polls as hung up, and the
// reactor would remember that.
//
// The operations that are coroutines are marked WEFT_COMPILED_ON_USE (see
// detail/attributes.hpp): compiled only in the files that call them.
#pragma once

#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "detail/attributes.hpp"
#include "error.hpp"
#include "io.hpp"
#include "result.hpp"
#include "task.hpp"

namespace weft {

/// An IPv4 or IPv6 socket address (address and port), held in a
/// sockaddr_storage that can be passed to the socket API as it is.
///
/// ```cpp
/// auto a = weft::socket_address::parse("[::1]:8080");
/// if (a && a->is_ipv6() && a->port() == 8080) { /* a->to_string() == "[::1]:8080" */ }
/// ```
class socket_address {
public:
    /// 0.0.0.0:0, the IPv4 wildcard address with port 0.
    socket_address() noexcept { set_ipv4(INADDR_ANY, 0); }

    /// Parses a numeric address: "127.0.0.1:8080", "[::1]:8080",
    /// "[fe80::1%eth0]:80" (a scope as an interface name or index). Host
    /// names are not resolved. Anything else, a port above 65535 included,
    /// gives errc::invalid_argument.
    static result<socket_address> parse(std::string_view text) {
        constexpr errc invalid = errc::invalid_argument;
        const bool bracketed = !text.empty() && text.front() == '[';
        std::string_view host;
        std::string_view port_text;
        if (bracketed) {
            const std::size_t close = text.find(']');
            if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
                return invalid;
            }
            host = text.substr(1, close - 1);
            port_text = text.substr(close + 2);
        } else {
            const std::size_t colon = text.rfind(':');
            if (colon == std::string_view::npos) {
                return invalid;
            }
            host = text.substr(0, colon);
            port_text = text.substr(colon + 1);
        }
        std::uint32_t port = 0;
        if (port_text.size() > 5 || !parse_decimal(port_text, port) || port > 65535) {
            return invalid;
        }
        // The longest IPv6 text (45 characters) and a scope (at most
        // IF_NAMESIZE - 1) fit, with the terminating NUL inet_pton needs.
        std::array<char, 64> buffer{};
        socket_address address;
        if (!bracketed) {
            // inet_pton(AF_INET) takes exactly a.b.c.d, so "::1:80" fails here.
            in_addr v4{};
            if (!copy_terminated(host, buffer) || ::inet_pton(AF_INET, buffer.data(), &v4) != 1) {
                return invalid;
            }
            address.set_ipv4(ntohl(v4.s_addr), static_cast<std::uint16_t>(port));
            return address;
        }
        std::uint32_t scope = 0;
        if (const std::size_t percent = host.find('%'); percent != std::string_view::npos) {
            const std::string_view scope_text = host.substr(percent + 1);
            host = host.substr(0, percent);
            if (!parse_decimal(scope_text, scope)) {
                if (!copy_terminated(scope_text, buffer)) {
                    return invalid;
                }
                scope = ::if_nametoindex(buffer.data()); // 0: no such interface
                if (scope == 0) {
                    return invalid;
                }
            }
        }
        in6_addr v6{};
        if (!copy_terminated(host, buffer) || ::inet_pton(AF_INET6, buffer.data(), &v6) != 1) {
            return invalid;
        }
        address.set_ipv6(v6, static_cast<std::uint16_t>(port), scope);
        return address;
    }

    /// 127.0.0.1:port.
    static socket_address ipv4_loopback(std::uint16_t port) noexcept {
        socket_address address;
        address.set_ipv4(INADDR_LOOPBACK, port);
        return address;
    }
    /// [::1]:port.
    static socket_address ipv6_loopback(std::uint16_t port) noexcept {
        socket_address address;
        address.set_ipv6(in6addr_loopback, port, 0);
        return address;
    }
    /// 0.0.0.0:port, every IPv4 interface.
    static socket_address ipv4_any(std::uint16_t port) noexcept {
        socket_address address;
        address.set_ipv4(INADDR_ANY, port);
        return address;
    }
    /// [::]:port, every IPv6 interface (and IPv4 too unless the system sets
    /// IPV6_V6ONLY by default: net.ipv6.bindv6only).
    static socket_address ipv6_any(std::uint16_t port) noexcept {
        socket_address address;
        address.set_ipv6(in6addr_any, port, 0);
        return address;
    }

    /// Copies a sockaddr_in or sockaddr_in6 (as getsockname(2) or
    /// recvfrom(2) fill in). EAFNOSUPPORT for any other family, EINVAL if
    /// `size` is too short for its family.
    static result<socket_address> from_native(const sockaddr* address, socklen_t size) noexcept {
        if (address == nullptr || size < sizeof(sa_family_t)) {
            return std::error_code(EINVAL, std::generic_category());
        }
        sa_family_t family = 0;
        std::memcpy(&family, reinterpret_cast<const char*>(address) + offsetof(sockaddr, sa_family),
                    sizeof family);
        socklen_t needed = 0;
        if (family == AF_INET) {
            needed = sizeof(sockaddr_in);
        } else if (family == AF_INET6) {
            needed = sizeof(sockaddr_in6);
        } else {
            return std::error_code(EAFNOSUPPORT, std::generic_category());
        }
        if (size < needed) {
            return std::error_code(EINVAL, std::generic_category());
        }
        socket_address out;
        std::memset(&out.m_storage, 0, sizeof out.m_storage);
        std::memcpy(&out.m_storage, address, needed);
        out.m_size = needed;
        return out;
    }

    /// The port, in host byte order.
    std::uint16_t port() const noexcept {
        return is_ipv6() ? ntohs(ipv6().sin6_port) : ntohs(ipv4().sin_port);
    }
    /// True for an IPv6 address (an IPv4-mapped one, "::ffff:1.2.3.4", included).
    bool is_ipv6() const noexcept { return m_storage.ss_family == AF_INET6; }
    /// AF_INET or AF_INET6, as socket(2) takes it.
    int family() const noexcept { return m_storage.ss_family; }

    /// "127.0.0.1:8080" or "[::1]:8080" ("[fe80::1%2]:80" with a scope, as
    /// its index); parse() reads it back.
    std::string to_string() const {
        std::array<char, INET6_ADDRSTRLEN> text{};
        std::string out;
        if (is_ipv6()) {
            const sockaddr_in6 v6 = ipv6();
            ::inet_ntop(AF_INET6, &v6.sin6_addr, text.data(), static_cast<socklen_t>(text.size()));
            out += '[';
            out += text.data();
            if (v6.sin6_scope_id != 0) {
                out += '%';
                out += std::to_string(v6.sin6_scope_id);
            }
            out += ']';
        } else {
            const sockaddr_in v4 = ipv4();
            ::inet_ntop(AF_INET, &v4.sin_addr, text.data(), static_cast<socklen_t>(text.size()));
            out += text.data();
        }
        out += ':';
        out += std::to_string(port());
        return out;
    }

    /// The sockaddr to pass to bind(2), connect(2), sendto(2), ...
    const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&m_storage); }
    /// The size of the sockaddr at data(): sizeof(sockaddr_in) or sizeof(sockaddr_in6).
    socklen_t size() const noexcept { return m_size; }

    /// Same family, address, port (and IPv6 scope); the IPv6 flow label is
    /// ignored. An IPv4 address never equals its IPv4-mapped IPv6 form.
    friend bool operator==(const socket_address& a, const socket_address& b) noexcept {
        if (a.family() != b.family()) {
            return false;
        }
        if (a.is_ipv6()) {
            const sockaddr_in6 x = a.ipv6();
            const sockaddr_in6 y = b.ipv6();
            return x.sin6_port == y.sin6_port && x.sin6_scope_id == y.sin6_scope_id &&
                   std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
        }
        const sockaddr_in x = a.ipv4();
        const sockaddr_in y = b.ipv4();
        return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
    }

private:
    // `host_order` is in host byte order, as INADDR_LOOPBACK is.
    void set_ipv4(std::uint32_t host_order, std::uint16_t port) noexcept {
        sockaddr_in v4{};
        v4.sin_family = AF_INET;
        v4.sin_port = htons(port);
        v4.sin_addr.s_addr = htonl(host_order);
        std::memset(&m_storage, 0, sizeof m_storage);
        std::memcpy(&m_storage, &v4, sizeof v4);
        m_size = sizeof v4;
    }
    void set_ipv6(const in6_addr& address, std::uint16_t port, std::uint32_t scope) noexcept {
        sockaddr_in6 v6{};
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons(port);
        v6.sin6_addr = address;
        v6.sin6_scope_id = scope;
        std::memset(&m_storage, 0, sizeof m_storage);
        std::memcpy(&m_storage, &v6, sizeof v6);
        m_size = sizeof v6;
    }
    // Copies out rather than casting the storage, so no aliasing rule is bent.
    sockaddr_in ipv4() const noexcept {
        sockaddr_in v4{};
        std::memcpy(&v4, &m_storage, sizeof v4);
        return v4;
    }
    sockaddr_in6 ipv6() const noexcept {
        sockaddr_in6 v6{};
        std::memcpy(&v6, &m_storage, sizeof v6);
        return v6;
    }

    // Digits only (no sign, no space), at most 2^32 - 1.
    static bool parse_decimal(std::string_view text, std::uint32_t& value) noexcept {
        if (text.empty() || text.size() > 10) {
            return false;
        }
        std::uint64_t n = 0;
        for (const char c : text) {
            if (c < '0' || c > '9') {
                return false;
            }
            n = n * 10 + static_cast<std::uint64_t>(c - '0');
        }
        if (n > UINT32_MAX) {
            return false;
        }
        value = static_cast<std::uint32_t>(n);
        return true;
    }
    template <std::size_t N>
    static bool copy_terminated(std::string_view text, std::array<char, N>& out) noexcept {
        if (text.empty() || text.size() >= N || text.find('\0') != std::string_view::npos) {
            return false;
        }
        std::memcpy(out.data(), text.data(), text.size());
        out[text.size()] = '\0';
        return true;
    }

    sockaddr_storage m_storage{};
    socklen_t m_size = 0;
};

/// Which directions tcp_stream::shutdown() ends.
enum class shutdown_how {
    /// No more reading: later reads return 0 (end of stream).
    read,
    /// No more writing: the peer reads end of stream once it has read
    /// everything sent before (a half-close).
    write,
    /// Both.
    both,
};

/// What udp_socket::recv_from() received.
struct received_datagram {
    /// Bytes stored in the buffer.
    std::size_t size = 0;
    /// Who sent the datagram.
    socket_address sender;
    /// The datagram was longer than the buffer: the rest of it is lost.
    bool truncated = false;
};

class tcp_listener;
class tcp_stream;
class udp_socket;

namespace detail {

/// Closes a descriptor unless it was released: holds a new socket until it
/// is registered, whatever returns (or raises) in between.
class fd_guard {
public:
    explicit fd_guard(int fd) noexcept : m_fd(fd) {}
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() {
        if (m_fd >= 0) {
            ::close(m_fd);
        }
    }
    explicit operator bool() const noexcept { return m_fd >= 0; }
    int get() const noexcept { return m_fd; }
    int release() noexcept { return std::exchange(m_fd, -1); }

private:
    int m_fd;
};

/// The errors accept(2) reports for a connection that died in the queue,
/// or a network error pending on it (accept(2), "Error handling"): the next
/// queued connection may be fine, so accept again.
inline bool accept_error_is_transient(int error) noexcept {
    switch (error) {
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH: return true;
    default: return false;
    }
}

/// A socket descriptor, its registration, and the count of operations
/// using it; the part tcp_listener, tcp_stream and udp_socket share.
///
/// Invariants (the state word: a closed bit, and users in the bits above):
///   - An operation enters (users + 1) before it touches the descriptor or
///     the async_fd and leaves when it is done; once the closed bit is set
///     nobody enters, so the count only falls.
///   - Exactly one thread finishes the socket (deregisters the async_fd and
///     closes the descriptor): the one whose leave brings the count to zero
///     with the closed bit set. close() counts itself as a user while it
///     shuts the socket down, so the descriptor it passes to shutdown(2)
///     cannot be closed under it. The async_fd is thus only ever touched by
///     users, and closed when none is left.
///   - Like async_fd, it must not be moved or destroyed while in use.
class socket_core {
public:
    /// Closed, owning nothing.
    socket_core() noexcept = default;
    socket_core(int fd, async_fd io) noexcept : m_fd(fd), m_io(std::move(io)), m_state(0) {}
    socket_core(socket_core&& other) noexcept
        : m_fd(std::exchange(other.m_fd, -1)), m_io(std::move(other.m_io)),
          m_state(other.m_state.exchange(closed_bit, std::memory_order_relaxed)) {}
    socket_core& operator=(socket_core&& other) noexcept {
        if (this != &other) {
            close();
            m_fd = std::exchange(other.m_fd, -1);
            m_io = std::move(other.m_io);
            // Relaxed: a move is not concurrent with anything (see the header).
            m_state.store(other.m_state.exchange(closed_bit, std::memory_order_relaxed),
                          std::memory_order_relaxed);
        }
        return *this;
    }
    socket_core(const socket_core&) = delete;
    socket_core& operator=(const socket_core&) = delete;
    ~socket_core() { close(); }

    /// Registers the socket `owner` holds with the current executor and
    /// takes it over; on failure `owner` keeps it (and closes it).
    static result<socket_core> adopt(fd_guard& owner) {
        result<async_fd> io = async_fd::open(owner.get());
        if (!io) {
            return io.error();
        }
        return socket_core(owner.release(), std::move(*io));
    }

    /// One operation's use of the socket; converts to false if the socket
    /// was closed already (then nothing may be touched).
    class use {
    public:
        use() noexcept = default;
        explicit use(const socket_core* core) noexcept : m_core(core) {}
        use(use&& other) noexcept : m_core(std::exchange(other.m_core, nullptr)) {}
        use& operator=(use&&) = delete;
        ~use() {
            if (m_core != nullptr) {
                m_core->leave();
            }
        }
        explicit operator bool() const noexcept { return m_core != nullptr; }

    private:
        const socket_core* m_core = nullptr;
    };

    /// Enters as a user, unless the socket is closed.
    use enter() const noexcept {
        std::uint32_t cur = m_state.load(std::memory_order_relaxed);
        do {
            if ((cur & closed_bit) != 0) {
                return use();
            }
            // Relaxed: entering publishes nothing; the descriptor and the
            // async_fd were set before the socket was shared.
        } while (!m_state.compare_exchange_weak(cur, cur + user_one, std::memory_order_relaxed));
        return use(this);
    }

    /// True once close() has begun.
    bool closing() const noexcept {
        // Acquire: pairs with close()'s release. A waiter woken by the
        // shutdown(2) that close() makes sees the bit in practice; if not,
        // its system call fails or retries and it looks again.
        return (m_state.load(std::memory_order_acquire) & closed_bit) != 0;
    }

    /// The descriptor, or -1 once closed (read it only as a user).
    int fd() const noexcept { return m_fd; }

    /// Closes the socket: no operation may start any more; operations in
    /// flight are woken (shutdown(2)) and fail with errc::closed; the last
    /// one out closes the descriptor. Returns close(2)'s error if this call
    /// closed it. A second close() does nothing.
    result<void> close() noexcept {
        std::uint32_t cur = m_state.load(std::memory_order_relaxed);
        do {
            if ((cur & closed_bit) != 0) {
                return {};
            }
            // Acq_rel: release publishes the closed bit to closing();
            // acquire, when no user is left, orders the finish after
            // their leaves (which are releases).
        } while (!m_state.compare_exchange_weak(cur, (cur | closed_bit) + user_one, std::memory_order_acq_rel,
                                                std::memory_order_relaxed));
        if (cur >= user_one) {
            // Others are in flight: wake whoever waits (the reactor sees a
            // hang-up). ENOTCONN for a socket that is not connected still
            // wakes its waiters (Linux's inet_shutdown).
            ::shutdown(m_fd, SHUT_RDWR);
        }
        return leave();
    }

    /// Runs `op` (a system call giving a count, or -1 with errno set) once
    /// the socket is ready in `dir`, retrying on EAGAIN, as a user of the
    /// socket. errc::closed if the socket was closed before or while it
    /// ran; with `zero_means_closed`, a 0 from `op` while closing too (a
    /// stream read that met our own shutdown).
    template <class Op>
    task<result<std::size_t>> run(io_direction dir, Op op, bool zero_means_closed = false) {
        const use user = enter();
        if (!user) {
            co_return errc::closed;
        }
        auto checked = [this, &op]() noexcept {
            if (closing()) {
                errno = EBADF;
                return ssize_t{-1};
            }
            return static_cast<ssize_t>(op());
        };
        result<std::size_t> n = errc::closed;
        if (dir == io_direction::read) {
            n = co_await m_io.read_with(checked);
        } else {
            n = co_await m_io.write_with(checked);
        }
        if ((!n || (zero_means_closed && *n == 0)) && closing()) {
            co_return errc::closed;
        }
        co_return n;
    }

    /// A completed result as a task, for operations with nothing to wait for.
    WEFT_COMPILED_ON_USE
    task<result<std::size_t>> ready(result<std::size_t> value) const { co_return value; }

    /// getsockname(2), as a user.
    result<socket_address> local_address() const {
        const use user = enter();
        if (!user) {
            return errc::closed;
        }
        sockaddr_storage storage{};
        socklen_t size = sizeof storage;
        if (::getsockname(m_fd, reinterpret_cast<sockaddr*>(&storage), &size) != 0) {
            return last_error();
        }
        return socket_address::from_native(reinterpret_cast<const sockaddr*>(&storage), size);
    }

    /// setsockopt(2) of an int option, as a user.
    result<void> set_option(int level, int name, int value) const noexcept {
        const use user = enter();
        if (!user) {
            return errc::closed;
        }
        if (::setsockopt(m_fd, level, name, &value, sizeof value) != 0) {
            return last_error();
        }
        return {};
    }

    /// shutdown(2), as a user.
    result<void> shutdown(shutdown_how how) const noexcept {
        const use user = enter();
        if (!user) {
            return errc::closed;
        }
        const int flag = how == shutdown_how::read    ? SHUT_RD
                         : how == shutdown_how::write ? SHUT_WR
                                                      : SHUT_RDWR;
        if (::shutdown(m_fd, flag) != 0) {
            return last_error();
        }
        return {};
    }

private:
    static constexpr std::uint32_t closed_bit = 1;
    static constexpr std::uint32_t user_one = 2;

    // Drops a use; the last one out after close() finishes the socket.
    result<void> leave() const noexcept {
        // Acq_rel: release publishes this user's work to the finisher;
        // acquire makes the finisher see every other user's.
        if (m_state.fetch_sub(user_one, std::memory_order_acq_rel) != (closed_bit | user_one)) {
            return {};
        }
        // No user is left and none can come: the fields are ours alone.
        auto* self = const_cast<socket_core*>(this);
        self->m_io.close(); // deregister first: epoll must not watch a closed descriptor
        const int fd = std::exchange(self->m_fd, -1);
        if (::close(fd) != 0 && errno != EINTR) { // after EINTR Linux has closed it anyway
            return last_error();
        }
        return {};
    }

    int m_fd = -1;
    async_fd m_io;
    mutable std::atomic<std::uint32_t> m_state{closed_bit};
};

/// socket(2), non-blocking and close-on-exec: the descriptor, or -1 with errno set.
inline int new_socket(int family, int type) noexcept {
    return ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

/// Sets SO_REUSEADDR if asked, then binds.
inline result<void> bind_socket(int fd, const socket_address& address, bool reuse_address) noexcept {
    const int on = 1;
    if (reuse_address && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) {
        return last_error();
    }
    if (::bind(fd, address.data(), address.size()) != 0) {
        return last_error();
    }
    return {};
}

} // namespace detail

/// A connected TCP stream. Move-only; the destructor closes it (see
/// close()). Obtained from tcp_stream::connect() or tcp_listener::accept().
///
/// ```cpp
/// weft::task<weft::result<void>> hello(weft::socket_address server) {
///     auto stream = co_await weft::tcp_stream::connect(server);
///     if (!stream) co_return stream.error(); // e.g. std::errc::connection_refused
///     const char text[] = "hello";
///     co_return co_await stream->write_all(std::as_bytes(std::span(text)));
/// }
/// ```
class tcp_stream {
public:
    /// A closed stream: every operation returns errc::closed.
    tcp_stream() noexcept = default;
    /// Moves the socket; the source is left closed. Not while an operation is in flight.
    tcp_stream(tcp_stream&&) noexcept = default;
    /// Closes this stream, then takes the other's socket.
    tcp_stream& operator=(tcp_stream&&) noexcept = default;
    tcp_stream(const tcp_stream&) = delete;
    tcp_stream& operator=(const tcp_stream&) = delete;
    /// Closes the socket (see close()).
    ~tcp_stream() = default;

    /// Connects to `peer`: a non-blocking connect(2), then waits until the
    /// handshake is done and reads its outcome (SO_ERROR). Errors are the
    /// OS's: ECONNREFUSED, ETIMEDOUT, ENETUNREACH, ...; wrap it in
    /// weft::timeout for a shorter limit than the kernel's. Takes the
    /// address by value, so the task owns it whatever the caller does.
    WEFT_COMPILED_ON_USE
    WEFT_NO_SANITIZE_FUNCTION static task<result<tcp_stream>> connect(socket_address peer) {
        detail::fd_guard fd(detail::new_socket(peer.family(), SOCK_STREAM));
        if (!fd) {
            co_return detail::last_error();
        }
        const bool in_progress = ::connect(fd.get(), peer.data(), peer.size()) != 0;
        // A non-blocking connect(2) interrupted by a signal goes on in the background, as EINPROGRESS.
        if (in_progress && errno != EINPROGRESS && errno != EINTR) {
            co_return detail::last_error();
        }
        // Registered only now: before connect(2) the socket polls as hung up.
        result<detail::socket_core> core = detail::socket_core::adopt(fd);
        if (!core) {
            co_return core.error();
        }
        tcp_stream stream(std::move(*core), peer);
        if (in_progress) {
            const int handle = stream.native_handle();
            result<std::size_t> connected =
                co_await stream.m_core.run(detail::io_direction::write, [handle]() noexcept -> ssize_t {
                    int error = 0;
                    socklen_t size = sizeof error;
                    if (::getsockopt(handle, SOL_SOCKET, SO_ERROR, &error, &size) != 0) {
                        return -1;
                    }
                    if (error != 0) {
                        errno = error;
                        return -1;
                    }
                    // No error yet: connected, or (a stale wake-up) still connecting.
                    sockaddr_storage peer_storage{};
                    socklen_t peer_size = sizeof peer_storage;
                    if (::getpeername(handle, reinterpret_cast<sockaddr*>(&peer_storage), &peer_size) != 0) {
                        if (errno == ENOTCONN) {
                            errno = EAGAIN;
                        }
                        return -1;
                    }
                    return 0;
                });
            if (!connected) {
                co_return connected.error();
            }
        }
        co_return std::move(stream);
    }

    /// Reads at most `buffer.size()` bytes, waiting until some are there.
    /// Returns how many were read; 0 means the peer shut down its side
    /// (end of stream), or that `buffer` is empty. ECONNRESET if the peer
    /// reset the connection.
    WEFT_COMPILED_ON_USE
    [[nodiscard]] task<result<std::size_t>> read(std::span<std::byte> buffer) {
        if (buffer.empty()) {
            return m_core.ready(std::size_t{0});
        }
        return m_core.run(
            detail::io_direction::read,
            [this, buffer]() noexcept { return ::recv(m_core.fd(), buffer.data(), buffer.size(), 0); }, true);
    }

    /// Writes at most `buffer.size()` bytes, waiting until the socket can
    /// take some. Returns how many went (0 only for an empty buffer).
    /// EPIPE or ECONNRESET if the peer is gone.
    WEFT_COMPILED_ON_USE
    [[nodiscard]] task<result<std::size_t>> write(std::span<const std::byte> buffer) {
        if (buffer.empty()) {
            return m_core.ready(std::size_t{0});
        }
        return m_core.run(detail::io_direction::write, [this, buffer]() noexcept {
            return ::send(m_core.fd(), buffer.data(), buffer.size(), MSG_NOSIGNAL);
        });
    }

    /// Reads exactly `buffer.size()` bytes. errc::unexpected_eof if the
    /// stream ends first; then (as after any error) how much of `buffer`
    /// was filled is unspecified.
    WEFT_COMPILED_ON_USE
    [[nodiscard]] task<result<void>> read_exact(std::span<std::byte> buffer) {
        while (!buffer.empty()) {
            result<std::size_t> n = co_await read(buffer);
            if (!n) {
                co_return n.error();
            }
            if (*n == 0) {
                co_return errc::unexpected_eof;
            }
            buffer = buffer.subspan(*n);
        }
        co_return result<void>();
    }

    /// Writes all of `buffer`. On an error, how much went is unspecified.
    WEFT_COMPILED_ON_USE
    [[nodiscard]] task<result<void>> write_all(std::span<const std::byte> buffer) {
        while (!buffer.empty()) {
            result<std::size_t> n = co_await write(buffer);
            if (!n) {
                co_return n.error();
            }
            buffer = buffer.subspan(*n);
        }
        co_return result<void>();
    }

    /// Ends reading, writing or both (shutdown(2)) without closing: after
    /// shutdown_how::write the peer reads end of stream, and this side can
    /// still read its answer. ENOTCONN if the peer is gone already.
    result<void> shutdown(shutdown_how how) const noexcept { return m_core.shutdown(how); }

    /// TCP_NODELAY: true sends small writes at once instead of coalescing
    /// them (Nagle's algorithm) while earlier data is unacknowledged.
    result<void> set_nodelay(bool enabled) const noexcept {
        return m_core.set_option(IPPROTO_TCP, TCP_NODELAY, enabled ? 1 : 0);
    }

    /// The local end's address (getsockname(2)).
    result<socket_address> local_address() const { return m_core.local_address(); }

    /// The peer's address: the one given to connect(), or the one accept(2)
    /// reported. Remembered, so still known after the peer has gone;
    /// errc::closed once the stream is closed.
    result<socket_address> peer_address() const noexcept {
        if (m_core.closing()) {
            return errc::closed;
        }
        return m_peer;
    }

    /// The socket descriptor (owned by the stream), or -1 once closed.
    int native_handle() const noexcept { return m_core.fd(); }
    /// False once closed (or moved from).
    bool is_open() const noexcept { return !m_core.closing(); }

    /// Closes the stream (the peer reads end of stream; ECONNRESET if
    /// unread data was left here). Callable from any task: tasks waiting on
    /// it wake with errc::closed (see the header). Returns close(2)'s
    /// error, if this call closed the descriptor.
    result<void> close() noexcept { return m_core.close(); }

private:
    friend class tcp_listener;
    tcp_stream(detail::socket_core core, const socket_address& peer) noexcept
        : m_core(std::move(core)), m_peer(peer) {}

    detail::socket_core m_core;
    socket_address m_peer;
};

/// A listening TCP socket. Move-only; the destructor closes it.
///
/// ```cpp
/// weft::task<> first_client() {
///     auto listener = weft::tcp_listener::bind(weft::socket_address::ipv4_any(0));
///     if (!listener) co_return;
///     auto local = listener->local_address(); // local->port(): the port the OS chose
///     auto stream = co_await listener->accept();
///     if (stream) { auto who = stream->peer_address(); }
/// }
/// ```
class tcp_listener {
public:
    /// A closed listener: every operation returns errc::closed.
    tcp_listener() noexcept = default;
    /// Moves the socket; the source is left closed. Not while an accept is in flight.
    tcp_listener(tcp_listener&&) noexcept = default;
    /// Closes this listener, then takes the other's socket.
    tcp_listener& operator=(tcp_listener&&) noexcept = default;
    tcp_listener(const tcp_listener&) = delete;
    tcp_listener& operator=(const tcp_listener&) = delete;
    /// Closes the socket (see close()).
    ~tcp_listener() = default;

    /// Creates a socket, binds it to `address` (port 0: the OS picks one,
    /// see local_address()), listens with `backlog`, and registers it with
    /// the executor running the calling task. `reuse_address` sets
    /// SO_REUSEADDR (rebinding a port whose old connections linger in
    /// TIME_WAIT). IPV6_V6ONLY is left at the system's default. Errors:
    /// EADDRINUSE, EACCES, EADDRNOTAVAIL, EAFNOSUPPORT (no IPv6), ...,
    /// errc::capacity_exhausted (no free reactor registration). Raises
    /// errc::no_current_executor outside a weft task.
    static result<tcp_listener> bind(const socket_address& address, int backlog = 128,
                                     bool reuse_address = true) {
        detail::fd_guard fd(detail::new_socket(address.family(), SOCK_STREAM));
        if (!fd) {
            return detail::last_error();
        }
        if (result<void> bound = detail::bind_socket(fd.get(), address, reuse_address); !bound) {
            return bound.error();
        }
        if (::listen(fd.get(), backlog) != 0) {
            return detail::last_error();
        }
        // Registered only now: before listen(2) the socket polls as hung up.
        result<detail::socket_core> core = detail::socket_core::adopt(fd);
        if (!core) {
            return core.error();
        }
        return tcp_listener(std::move(*core));
    }

    /// Waits for the next connection (accept4(2), non-blocking and
    /// close-on-exec) and registers it with the calling task's executor;
    /// the peer's address is the stream's peer_address(). Connections that
    /// died in the queue are skipped. Errors: EMFILE / ENFILE (out of
    /// descriptors: the connection stays queued), errc::capacity_exhausted
    /// (no free reactor registration: the connection is closed),
    /// errc::closed, errc::busy (another task is accepting).
    WEFT_COMPILED_ON_USE
    [[nodiscard]] task<result<tcp_stream>> accept() {
        sockaddr_storage peer{};
        socklen_t peer_size = 0;
        result<std::size_t> accepted =
            co_await m_core.run(detail::io_direction::read, [this, &peer, &peer_size]() noexcept -> ssize_t {
                for (;;) {
                    peer_size = sizeof peer;
                    const int fd = ::accept4(m_core.fd(), reinterpret_cast<sockaddr*>(&peer), &peer_size,
                                             SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd >= 0 || !detail::accept_error_is_transient(errno)) {
                        return fd;
                    }
                }
            });
        if (!accepted) {
            co_return accepted.error();
        }
        detail::fd_guard fd(static_cast<int>(*accepted));
        result<socket_address> address =
            socket_address::from_native(reinterpret_cast<const sockaddr*>(&peer), peer_size);
        if (!address) {
            co_return address.error();
        }
        result<detail::socket_core> core = detail::socket_core::adopt(fd);
        if (!core) {
            co_return core.error();
        }
        co_return tcp_stream(std::move(*core), *address);
    }

    /// The address it listens on (getsockname(2)): the port the OS chose for port 0.
    result<socket_address> local_address() const { return m_core.local_address(); }
    /// The socket descriptor (owned by the listener), or -1 once closed.
    int native_handle() const noexcept { return m_core.fd(); }
    /// False once closed (or moved from).
    bool is_open() const noexcept { return !m_core.closing(); }

    /// Stops listening; connections still queued are reset. Callable from
    /// any task: a task waiting in accept() wakes with errc::closed.
    result<void> close() noexcept { return m_core.close(); }

private:
    explicit tcp_listener(detail::socket_core core) noexcept : m_core(std::move(core)) {}

    detail::socket_core m_core;
};

/// A UDP socket. Move-only; the destructor closes it.
///
/// ```cpp
/// weft::task<> ping(weft::socket_address peer) {
///     auto socket = weft::udp_socket::bind(weft::socket_address::ipv4_any(0));
///     if (!socket) co_return;
///     const char ping[] = "ping";
///     co_await socket->send_to(std::as_bytes(std::span(ping)), peer);
///     std::array<std::byte, 1500> buf;
///     auto got = co_await socket->recv_from(buf); // got->size bytes from got->sender
/// }
/// ```
class udp_socket {
public:
    /// A closed socket: every operation returns errc::closed.
    udp_socket() noexcept = default;
    /// Moves the socket; the source is left closed. Not while an operation is in flight.
    udp_socket(udp_socket&&) noexcept = default;
    /// Closes this socket, then takes the other's.
    udp_socket& operator=(udp_socket&&) noexcept = default;
    udp_socket(const udp_socket&) = delete;
    udp_socket& operator=(const udp_socket&) = delete;
    /// Closes the socket (see close()).
    ~udp_socket() = default;

    /// Creates a socket bound to `address` (port 0: the OS picks one) and
    /// registers it with the executor running the calling task.
    /// `reuse_address` sets SO_REUSEADDR (several sockets on one multicast
    /// port). Errors as tcp_listener::bind().
    static result<udp_socket> bind(const socket_address& address, bool reuse_address = false) {
        detail::fd_guard fd(detail::new_socket(address.family(), SOCK_DGRAM));
        if (!fd) {
            return detail::last_error();
        }
        if (result<void> bound = detail::bind_socket(fd.get(), address, reuse_address); !bound) {
            return bound.error();
        }
        result<detail::socket_core> core = detail::socket_core::adopt(fd);
        if (!core) {
            return core.error();
        }
        return udp_socket(std::move(*core));
    }

    /// Sets the default destination for send() and accepts datagrams from
    /// `peer` only (connect(2); nothing is sent). On a connected socket,
    /// an ICMP "port unreachable" for an earlier datagram may make a later
    /// operation fail with ECONNREFUSED.
    result<void> connect(const socket_address& peer) noexcept {
        const detail::socket_core::use user = m_core.enter();
        if (!user) {
            return errc::closed;
        }
        if (::connect(m_core.fd(), peer.data(), peer.size()) != 0) {
            return detail::last_error();
        }
        return {};
    }

    /// Sends one datagram to `to`; returns its size. EMSGSIZE if it is
    /// too large. Takes the address by value: the task owns it.
    WEFT_COMPILED_ON_USE
    [[nodiscard]] task<result<std::size_t>> send_to(std::span<const std::byte> datagram, socket_address to) {
        co_return co_await m_core.run(detail::io_direction::write, [this, datagram, &to]() noexcept {
            return ::sendto(m_core.fd(), datagram.data(), datagram.size(), MSG_NOSIGNAL, to.data(),
                            to.size());
        });
    }

    /// Sends one datagram to the connected peer (EDESTADDRREQ if not connected).
    WEFT_COMPILED_ON_USE
    [[nodiscard]] task<result<std::size_t>> send(std::span<const std::byte> datagram) {
        return m_core.run(detail::io_direction::write, [this, datagram]() noexcept {
            return ::send(m_core.fd(), datagram.data(), datagram.size(), MSG_NOSIGNAL);
        });
    }

    /// Waits for one datagram and stores as much of it as `buffer` holds;
    /// says how much, from whom, and whether the rest was cut off.
    WEFT_COMPILED_ON_USE
    [[nodiscard]] task<result<received_datagram>> recv_from(std::span<std::byte> buffer) {
        sockaddr_storage sender{};
        iovec part{buffer.data(), buffer.size()};
        msghdr message{};
        result<std::size_t> n =
            co_await m_core.run(detail::io_direction::read, [this, &sender, &part, &message]() noexcept {
                message = msghdr{};
                message.msg_name = &sender;
                message.msg_namelen = sizeof sender;
                message.msg_iov = &part;
                message.msg_iovlen = 1;
                return ::recvmsg(m_core.fd(), &message, 0);
            });
        if (!n) {
            co_return n.error();
        }
        result<socket_address> from =
            socket_address::from_native(reinterpret_cast<const sockaddr*>(&sender), message.msg_namelen);
        if (!from) {
            co_return from.error();
        }
        co_return received_datagram{*n, *from, (message.msg_flags & MSG_TRUNC) != 0};
    }

    /// Waits for one datagram (from the connected peer, if connected) and
    /// stores as much of it as `buffer` holds, dropping the rest; returns
    /// how much. A zero-length datagram gives 0.
    WEFT_COMPILED_ON_USE
    [[nodiscard]] task<result<std::size_t>> recv(std::span<std::byte> buffer) {
        return m_core.run(detail::io_direction::read, [this, buffer]() noexcept {
            return ::recv(m_core.fd(), buffer.data(), buffer.size(), 0);
        });
    }

    /// The address it is bound to (getsockname(2)).
    result<socket_address> local_address() const { return m_core.local_address(); }
    /// The socket descriptor (owned by the socket), or -1 once closed.
    int native_handle() const noexcept { return m_core.fd(); }
    /// False once closed (or moved from).
    bool is_open() const noexcept { return !m_core.closing(); }

    /// Closes the socket. Callable from any task: tasks waiting on it
    /// wake with errc::closed.
    result<void> close() noexcept { return m_core.close(); }

private:
    explicit udp_socket(detail::socket_core core) noexcept : m_core(std::move(core)) {}

    detail::socket_core m_core;
};

} // namespace weft
