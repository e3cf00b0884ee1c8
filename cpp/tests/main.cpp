// C++ tests of the kernel library, no Python: proof that the kernels are reusable from C++.
// Each test_* function returns the number of failed checks.
#include <cstdio>

#include "tests.h"

int main() {
  int failed = 0;
  for (const auto& t : csdkit_tests::registry()) {
    const int f = t.fn();
    std::printf("%-40s %s\n", t.name, f == 0 ? "ok" : "FAILED");
    failed += f != 0;
  }
  std::printf("%d passed, %d failed\n", int(csdkit_tests::registry().size()) - failed, failed);
  return failed == 0 ? 0 : 1;
}
