// expect: T's destructor must not throw
#include <weft/weft.hpp>

#include <stdexcept>

struct throws_when_destroyed {
    ~throws_when_destroyed() noexcept(false) { throw std::runtime_error("no"); }
};

weft::task<throws_when_destroyed> make() { co_return throws_when_destroyed{}; }

int main() {
    weft::executor<1> ex;
    (void)ex.spawn(make());
}
