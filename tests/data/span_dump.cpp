// Reads JSONL cases {"grammar", "n_prompt", "texts": [...]} on stdin and writes, per case,
// one JSON line [[sparse, [[begin, end], ...]], ...] from sspan::SpanState, plus the
// event counters. tests/data/span_rule_parity.py compares it with scripts/span_rule.py.
#include <iostream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "sspan/span.h"

int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    const auto c = nlohmann::json::parse(line);
    auto grammar = std::make_shared<const sspan::SpanGrammar>(
        sspan::SpanGrammar::builtin(c["grammar"].get<std::string>()));
    sspan::SpanState state(grammar);
    const int n_prompt = c["n_prompt"].get<int>();
    nlohmann::json rows = nlohmann::json::array();
    int t = 0;
    for (const auto& text : c["texts"]) {
      state.push(text.get<std::string>(), t++ < n_prompt);
      nlohmann::json ranges = nlohmann::json::array();
      for (const auto& r : state.last_attended()) ranges.push_back({r.begin, r.end});
      rows.push_back({state.last_sparse(), ranges});
    }
    const auto& ev = state.events();
    std::cout << nlohmann::json{{"rows", rows},
                                {"events", {ev.sparse_lines, ev.dense_fallbacks, ev.unknown_anchors,
                                            ev.malformed_lists, ev.redefined_anchors}}}
                     .dump()
              << '\n';
  }
  return 0;
}
