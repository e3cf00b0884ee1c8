// Minimal test registry for the C++ tests (no framework dependency).
#pragma once

#include <cmath>
#include <cstdio>
#include <vector>

namespace csdkit_tests {

struct Test {
  const char* name;
  int (*fn)();
};

inline std::vector<Test>& registry() {
  static std::vector<Test> tests;
  return tests;
}

struct Register {
  Register(const char* name, int (*fn)()) { registry().push_back({name, fn}); }
};

inline int expect_near(double got, double want, double tol, const char* what) {
  if (std::fabs(got - want) <= tol) return 0;
  std::printf("  %s: got %.9g, want %.9g (tol %.3g)\n", what, got, want, tol);
  return 1;
}

}  // namespace csdkit_tests

#define CSDKIT_TEST(name)                                           \
  static int name();                                                \
  static csdkit_tests::Register register_##name(#name, &name);      \
  static int name()
