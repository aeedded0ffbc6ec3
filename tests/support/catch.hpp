// tests/support/catch.hpp
//
// The one Catch2 include for weft's tests, whatever the installed major
// version: Catch2 v2 is a single header, v3 is split (tests/CMakeLists.txt
// defines WEFT_CATCH2_V3 when it found v3). Tests include "support/catch.hpp"
// and use TEST_CASE, TEMPLATE_TEST_CASE, SECTION, REQUIRE, CHECK, GENERATE.
#pragma once

#if defined(WEFT_CATCH2_V3)
#include <catch2/catch_approx.hpp>
#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#else
#include <catch2/catch.hpp>
#endif
