#include "generate/trace_writer.h"

#include <filesystem>
#include <iostream>

#include "sspan/error.h"

namespace sspan::tools {

nlohmann::json events_json(const SpanEvents& e) {
  return {{"sparse_lines", e.sparse_lines},       {"dense_fallbacks", e.dense_fallbacks},
          {"unknown_anchors", e.unknown_anchors}, {"malformed_lists", e.malformed_lists},
          {"redefined_anchors", e.redefined_anchors}};
}

TraceWriter::TraceWriter(const std::string& path, int requests) {
  if (path.empty()) return;
  if (path == "-") {
    if (requests != 1) throw Error("--span-trace - takes one request");
    files_.push_back(&std::cout);
    paths_.push_back("standard output");
    return;
  }
  for (int i = 0; i < requests; ++i) {
    std::string p = path;
    if (requests > 1) {
      std::filesystem::path fp(path);
      p = (fp.parent_path() / (fp.stem().string() + "." + std::to_string(i) + fp.extension().string())).string();
    }
    auto f = std::make_unique<std::ofstream>(p, std::ios::binary | std::ios::trunc);
    if (!*f) throw Error("cannot write span trace '" + p + "'");
    files_.push_back(f.get());
    owned_.push_back(std::move(f));
    paths_.push_back(p);
  }
}

void TraceWriter::write(const TraceRecord& r) {
  nlohmann::json ranges = nlohmann::json::array();
  for (const auto& a : r.attended) ranges.push_back({a.begin, a.end});
  nlohmann::ordered_json j;
  j["pos"] = r.pos;
  j["id"] = r.id;
  j["piece"] = r.piece;
  j["text"] = r.text;
  j["generated"] = r.generated;
  j["line"] = r.line;
  j["mode"] = r.sparse ? "sparse" : "dense";
  j["attended"] = ranges;
  j["n_attended"] = r.n_attended;
  j["sparsity"] = r.sparsity;
  *files_.at(size_t(r.request)) << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

void TraceWriter::finish(const std::vector<SpanStats>& stats) {
  for (size_t i = 0; i < files_.size() && i < stats.size(); ++i) {
    nlohmann::ordered_json j;
    j["summary"] = true;
    j["mean_sparsity"] = stats[i].mean_sparsity;
    j["sparse_tokens"] = stats[i].sparse_tokens;
    j["dense_tokens"] = stats[i].dense_tokens;
    j["events"] = events_json(stats[i].events);
    *files_[i] << j.dump() << "\n";
    files_[i]->flush();
    if (!*files_[i]) throw Error("writing span trace '" + paths_[i] + "' failed");
  }
}

}  // namespace sspan::tools
