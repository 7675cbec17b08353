// libFuzzer target: span grammar JSON into SpanGrammar::from_json. It parses or throws
// sspan::Error; a grammar that parses survives to_json -> from_json unchanged and runs a
// SpanState over text written in its own delimiters.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "sspan/error.h"
#include "sspan/span.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sspan::SpanGrammar g;
  try {
    g = sspan::SpanGrammar::from_json({reinterpret_cast<const char*>(data), size}, "fuzz/grammar.json");
  } catch (const sspan::Error&) {
    return 0;
  }
  if (sspan::SpanGrammar::from_json(g.to_json(), "round trip") != g) std::abort();
  // Lines that define anchors 1 and 2 and reference them, in the grammar's delimiters.
  const std::string anchor1 = g.anchor_open + "1" + g.anchor_close, anchor2 = g.anchor_open + "2" + g.anchor_close;
  const std::string refs = g.list_open + "1" + g.list_sep + "2" + g.list_close;
  const bool at_end = g.anchor_place == sspan::SpanGrammar::AnchorPlace::LineEnd;
  const std::string text = (at_end ? "a " + anchor1 : anchor1 + " a") + "\n" + (at_end ? "b " + anchor2 : anchor2 + " b") +
                           "\n" + refs + " c\n" + refs + " d\n";
  sspan::SpanState state(std::make_shared<const sspan::SpanGrammar>(g), 16);
  state.push("", true);
  for (char ch : text) {
    state.push(std::string_view(&ch, 1), false);
    if (state.last_attended().empty() || state.last_attended().back().end != state.last_pos() + 1) std::abort();
  }
  return 0;
}
