// expect: Options::budget must be at least 1
#include <weft/weft.hpp>

struct no_budget : weft::default_options {
    static constexpr std::uint32_t budget = 0;
};

int main() { weft::executor<2, 64, no_budget> ex; }
