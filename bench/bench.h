#pragma once
// Subcommands of sspan-bench. Each registers itself on the app; the benchmark validates
// its configuration against a CPU reference before it times anything.
#include <CLI/CLI.hpp>
#include <string>

namespace sspan::bench {

// Build and machine description printed with every result table.
std::string build_description();

// `span-encode`: host cost of the span state and the blocked encoding per decode step.
void add_span_bench(CLI::App& app);

}  // namespace sspan::bench
