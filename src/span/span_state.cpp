// SpanState: the span rule of docs/span-semantics.md applied to one request, token by
// token, over the decoded text stream.
#include <algorithm>
#include <unordered_map>

#include "common/check.h"
#include "span/block_encoding.h"
#include "span/line_syntax.h"

namespace sspan {

using span_detail::ListReader;

namespace {

// One line of the text. Its positions are [first, end); a line that lies wholly inside
// one token's text has none (first == end == -1).
struct Line {
  int32_t first = -1;
  int32_t end = -1;
  bool prompt = false;     // its first token is a prompt token
  bool ref_list = false;   // it began with a closed, well-formed reference list
  bool anchored = false;   // it defines an anchor
  bool has_positions() const { return first >= 0; }
};

}  // namespace

struct SpanState::Impl {
  std::shared_ptr<const SpanGrammar> grammar;  // null: dense policy
  int block_size = 64;

  std::vector<Line> lines{Line{}};  // lines.back() is the current line
  std::string line_text;            // current line's text so far, without '\n'
  std::unique_ptr<ListReader> list; // null under the dense policy
  std::unordered_map<int64_t, int32_t> anchors;  // anchor id -> line index
  int32_t first_anchored_line = -1;
  int32_t last_ref_list_line = -1;  // latest ended line with ref_list

  // The current line's sparse span, resolved once when its list completes.
  bool line_sparse = false;
  int32_t tail_start = 0;              // first position of the current line
  std::vector<PosRange> before_tail;   // header + named + implicit lines, all < tail_start
  int64_t before_count = 0;            // positions in before_tail
  std::vector<int32_t> cached_blocks;  // [n_blocks] blocked form of before_tail
  std::vector<uint32_t> cached_masks;  // [n_blocks * words_per_block]

  // The last pushed token.
  int32_t t = -1;
  int32_t t_line = 0;
  bool t_sparse = false;

  SpanEvents events;

  int32_t current() const { return int32_t(lines.size()) - 1; }
  // The position the current line's first token has or will have.
  int32_t current_first_pos() const {
    return lines.back().has_positions() ? lines.back().first : t + 1;
  }

  void push(std::string_view text, bool in_prompt);
  void add_line_text(std::string_view text, bool ends_line);
  void resolve_list();
  bool add_named_lines(std::vector<int32_t>& named) const;
  void end_line();
};

void SpanState::Impl::push(std::string_view text, bool in_prompt) {
  SSPAN_CHECK(t < INT32_MAX - 1, "span state: sequence longer than {} positions", INT32_MAX);
  ++t;
  Line& line = lines.back();
  if (!line.has_positions()) {
    line.first = t;
    line.prompt = in_prompt;
  }
  line.end = t + 1;
  t_line = current();

  const size_t newline = text.find('\n');
  const bool ends_line = newline != std::string_view::npos;
  add_line_text(text.substr(0, newline), ends_line);
  t_sparse = line_sparse && !ends_line;
  if (!ends_line) return;

  end_line();
  // Text after the first '\n' belongs to lines that have no positions of their own,
  // except the last piece, which begins the next line.
  std::string_view rest = text.substr(newline + 1);
  for (size_t nl; (nl = rest.find('\n')) != std::string_view::npos; rest.remove_prefix(nl + 1)) {
    add_line_text(rest.substr(0, nl), true);
    end_line();
  }
  add_line_text(rest, false);
}

void SpanState::Impl::add_line_text(std::string_view text, bool ends_line) {
  line_text.append(text);
  if (!list) return;
  const auto before = list->status();
  if (before != ListReader::Status::Undecided && before != ListReader::Status::Open) return;
  const auto now = list->update(line_text, ends_line);
  if (now == ListReader::Status::Complete) {
    lines.back().ref_list = true;
    resolve_list();
  } else if (now == ListReader::Status::Malformed) {
    ++events.malformed_lists;
    ++events.dense_fallbacks;
  }
}

// Collects the lines the current line's list names into `named`; false when one of
// them does not exist (yet).
bool SpanState::Impl::add_named_lines(std::vector<int32_t>& named) const {
  for (const auto& item : list->items()) {
    if (item.previous_line) {
      if (current() == 0) return false;
      named.push_back(current() - 1);
      continue;
    }
    // Every id of a range must exist; the loop ends at the first missing one, so a huge
    // range costs at most one step per existing anchor.
    for (int64_t id = item.first; id <= item.last; ++id) {
      const auto it = anchors.find(id);
      if (it == anchors.end()) return false;
      named.push_back(it->second);
    }
  }
  return true;
}

void SpanState::Impl::resolve_list() {
  std::vector<int32_t> named;  // line indices, all < current()
  if (!add_named_lines(named)) {
    ++events.unknown_anchors;
    ++events.dense_fallbacks;
    return;
  }
  ++events.sparse_lines;
  // Header: prompt lines before the first anchored line; before any anchored line has
  // ended, every ended prompt line so far.
  const int32_t header_end = first_anchored_line >= 0 ? first_anchored_line : current();
  for (int32_t i = 0; i < header_end; ++i)
    if (lines[size_t(i)].prompt) named.push_back(i);
  if (grammar->implicit_prev_ref_line && last_ref_list_line >= 0) named.push_back(last_ref_list_line);
  std::sort(named.begin(), named.end());
  named.erase(std::unique(named.begin(), named.end()), named.end());

  line_sparse = true;
  tail_start = current_first_pos();
  before_tail.clear();
  if (tail_start > 0) before_tail.push_back({0, 1});  // BOS
  for (int32_t i : named) {
    const Line& l = lines[size_t(i)];
    if (l.has_positions()) span_detail::append_merged(before_tail, {l.first, l.end});
  }
  before_count = 0;
  for (const auto& r : before_tail) before_count += r.end - r.begin;
  cached_blocks.clear();
  cached_masks.clear();
  span_detail::append_blocks(before_tail, block_size, cached_blocks, cached_masks);
}

void SpanState::Impl::end_line() {
  const int32_t index = current();
  Line& line = lines.back();
  if (grammar) {
    const auto anchor = span_detail::parse_anchor(*grammar, line_text, list->list_end());
    if (anchor) {
      line.anchored = true;
      const auto [it, inserted] = anchors.try_emplace(*anchor, index);
      if (!inserted) {
        ++events.redefined_anchors;
        it->second = index;  // the later definition wins
      }
      if (first_anchored_line < 0) first_anchored_line = index;
    }
    if (line.ref_list) last_ref_list_line = index;
    list->reset();
  }
  lines.push_back(Line{});
  line_text.clear();
  line_sparse = false;
  before_tail.clear();
  before_count = 0;
  cached_blocks.clear();
  cached_masks.clear();
}

SpanState::SpanState(std::shared_ptr<const SpanGrammar> grammar, int block_size)
    : impl_(std::make_unique<Impl>()) {
  SSPAN_CHECK(valid_block_size(block_size), "span block size {} is not one of 16, 32, 64, 128, 256",
              block_size);
  impl_->block_size = block_size;
  impl_->grammar = std::move(grammar);
  if (impl_->grammar) impl_->list = std::make_unique<ListReader>(*impl_->grammar);
}
SpanState::~SpanState() = default;
SpanState::SpanState(SpanState&&) noexcept = default;
SpanState& SpanState::operator=(SpanState&&) noexcept = default;

void SpanState::push(std::string_view text, bool in_prompt) { impl_->push(text, in_prompt); }

const SpanState::Impl& SpanState::pushed() const {
  SSPAN_CHECK(impl_ && impl_->t >= 0, "span state: no token has been pushed yet");
  return *impl_;
}

int32_t SpanState::last_pos() const { return pushed().t; }
bool SpanState::last_sparse() const { return pushed().t_sparse; }
int32_t SpanState::last_line() const { return pushed().t_line; }
int32_t SpanState::last_tail_start() const {
  const Impl& s = pushed();
  return s.t_sparse ? s.tail_start : 0;
}

std::vector<PosRange> SpanState::last_attended() const {
  const Impl& s = pushed();
  if (!s.t_sparse) return {{0, s.t + 1}};
  std::vector<PosRange> out = s.before_tail;
  span_detail::append_merged(out, {s.tail_start, s.t + 1});
  return out;
}

int64_t SpanState::last_count() const {
  const Impl& s = pushed();
  return s.t_sparse ? s.before_count + (s.t - s.tail_start + 1) : int64_t(s.t) + 1;
}

void SpanState::append_last(SpanBatch& batch) const {
  const Impl& s = pushed();
  SSPAN_CHECK(batch.block_size == s.block_size,
              "span batch block size {} differs from the span state's {}", batch.block_size,
              s.block_size);
  if (!s.t_sparse) {
    batch.add_dense_row(s.t);
    return;
  }
  batch.block_ids.insert(batch.block_ids.end(), s.cached_blocks.begin(), s.cached_blocks.end());
  batch.masks.insert(batch.masks.end(), s.cached_masks.begin(), s.cached_masks.end());
  batch.indptr.push_back(int32_t(batch.block_ids.size()));
  batch.tail_start.push_back(s.tail_start);
  batch.pos.push_back(s.t);
}

int SpanState::block_size() const { return impl_->block_size; }
bool SpanState::dense_policy() const { return impl_->grammar == nullptr; }
const SpanEvents& SpanState::events() const { return impl_->events; }

}  // namespace sspan
