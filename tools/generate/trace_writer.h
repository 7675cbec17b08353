#pragma once
// --span-trace: one JSON object per processed position, then one summary object.
// Keys of a position: pos, id, piece, text, generated, line, mode, attended, n_attended,
// sparsity.
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sspan/engine.h"

namespace sspan::tools {

nlohmann::json events_json(const SpanEvents& e);

class TraceWriter {
 public:
  // `requests` > 1 writes one file per request: FILE.0.jsonl, FILE.1.jsonl, ...
  // "-" is standard output (one request only).
  TraceWriter(const std::string& path, int requests);
  bool enabled() const { return !files_.empty(); }
  void write(const TraceRecord& r);
  // The summary object of each request, then close.
  void finish(const std::vector<SpanStats>& stats);

 private:
  std::vector<std::unique_ptr<std::ofstream>> owned_;
  std::vector<std::ostream*> files_;  // [requests]
  std::vector<std::string> paths_;
};

}  // namespace sspan::tools
