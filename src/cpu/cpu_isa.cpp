#include "cpu/cpu_isa.h"

#include <cstdlib>
#include <string>

#include "common/check.h"

#ifdef SSPAN_CPU_X86
#include <cpuid.h>
#endif

namespace sspan::cpu {
namespace {
#ifdef SSPAN_CPU_X86
// F16C from CPUID leaf 1 (ECX bit 29): not every compiler's __builtin_cpu_supports knows
// the name (clang 14 does not), and it needs no OS support beyond AVX's.
bool has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
}
#endif
}  // namespace

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
#ifdef SSPAN_CPU_X86
    // libgcc's cpuid check includes the OS's support for the wider registers (XGETBV).
    case Isa::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
    case Isa::Avx512: return isa_supported(Isa::Avx2) && __builtin_cpu_supports("avx512f");
#else
    default: return false;
#endif
  }
  return false;
}

Isa best_isa() {
  Isa best = Isa::Scalar;
  for (Isa isa : {Isa::Avx2, Isa::Avx512})
    if (isa_supported(isa)) best = isa;
  const char* cap = std::getenv("SSPAN_CPU_ISA");
  if (cap == nullptr || *cap == '\0') return best;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
    if (isa_name(isa) == cap) {
      SSPAN_CHECK(isa_supported(isa), "SSPAN_CPU_ISA={}: this CPU or build cannot run {} code (best here: {})", cap,
                  isa_name(isa), isa_name(best));
      return isa;
    }
  SSPAN_FAIL("SSPAN_CPU_ISA='{}' is not one of scalar, avx2, avx512", cap);
}

}  // namespace sspan::cpu
