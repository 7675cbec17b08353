#pragma once
// The vector instruction set a CPU kernel runs with, chosen at run time from what the CPU
// supports (cpuid), so a build without -march=native still runs AVX2 or AVX-512 code
// where the CPU has it, and the scalar code everywhere else.
#include <string_view>

namespace sspan::cpu {

enum class Isa { Scalar, Avx2, Avx512 };

std::string_view isa_name(Isa isa);  // "scalar", "avx2", "avx512"

// Compiled into this build and supported by this CPU: AVX2 means AVX2 + FMA + F16C;
// AVX-512 means AVX-512F (with AVX2 + FMA + F16C).
bool isa_supported(Isa isa);

// The widest supported Isa. The environment variable SSPAN_CPU_ISA (scalar, avx2 or
// avx512) caps it, e.g. to compare paths; a value this CPU cannot run is an error.
Isa best_isa();

}  // namespace sspan::cpu
