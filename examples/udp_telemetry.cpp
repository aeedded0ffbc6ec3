// UDP telemetry: a sensor task sends a sample every 10 ms to a collector
// task on another socket (loopback); the collector reports every 20 samples
// how many arrived, the mean value and the worst inter-arrival gap, and
// gives up on a silent sensor after 500 ms (weft::timeout).
//
//   ./udp_telemetry [samples]     (default 100)
#include <weft/weft.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

using namespace std::chrono_literals;

namespace {

struct sample {
    std::uint32_t sequence;
    float value;
};

weft::task<int> sensor(weft::socket_address collector, std::uint32_t count) {
    auto socket = weft::udp_socket::bind(weft::socket_address::ipv4_loopback(0));
    if (!socket || !socket->connect(collector)) {
        co_return 1;
    }
    weft::interval every(10ms, weft::missed_tick::skip);
    for (std::uint32_t i = 0; i < count; ++i) {
        (void)co_await every.tick();
        const sample s{i, 20.0f + static_cast<float>(i % 10) * 0.5f};
        std::byte datagram[sizeof(sample)];
        std::memcpy(datagram, &s, sizeof s);
        if (!co_await socket->send(datagram)) {
            co_return 1;
        }
    }
    co_return 0;
}

weft::task<int> collect(weft::udp_socket socket, std::uint32_t count) {
    std::uint32_t received = 0;
    double sum = 0;
    weft::clock::duration worst_gap{};
    auto last = weft::clock::now();
    while (received < count) {
        std::byte datagram[64];
        auto got = co_await weft::timeout(500ms, socket.recv_from(datagram));
        if (!got) {
            std::printf("collector: no sample for 500 ms, giving up\n");
            break;
        }
        if (!*got || (*got)->size != sizeof(sample)) {
            continue; // a receive error or a foreign datagram
        }
        sample s;
        std::memcpy(&s, datagram, sizeof s);
        const auto now = weft::clock::now();
        if (received > 0 && now - last > worst_gap) {
            worst_gap = now - last;
        }
        last = now;
        sum += s.value;
        ++received;
        if (received % 20 == 0) {
            std::printf("collector: %u samples from %s, mean %.2f, worst gap %lld us\n", received,
                        (*got)->sender.to_string().c_str(), sum / received,
                        static_cast<long long>(
                            std::chrono::duration_cast<std::chrono::microseconds>(worst_gap).count()));
        }
    }
    co_return received == count ? 0 : 1;
}

weft::task<int> run(std::uint32_t count) {
    auto collector = weft::udp_socket::bind(weft::socket_address::ipv4_loopback(0));
    if (!collector) {
        std::fprintf(stderr, "bind: %s\n", collector.error().message().c_str());
        co_return 1;
    }
    const weft::socket_address address = *collector->local_address();
    auto receiving = weft::spawn(collect(std::move(*collector), count));
    auto sending = weft::spawn(sensor(address, count));
    const int sent = co_await sending;
    const int got = co_await receiving;
    std::printf("sensor %s, collector %s\n", sent == 0 ? "done" : "failed",
                got == 0 ? "got every sample" : "missed samples");
    co_return sent | got;
}

} // namespace

int main(int argc, char** argv) {
    const auto count = static_cast<std::uint32_t>(argc > 1 ? std::atoi(argv[1]) : 100);
    weft::executor<2> ex;
    return ex.block_on(run(count));
}
