#include "io/json_strict.h"

#include <set>
#include <string>
#include <vector>

#include "common/check.h"

namespace sspan::io {

size_t find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp, min;
    if ((c & 0xe0) == 0xc0) {
      len = 2, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return i;  // continuation byte without a lead, or 0xf8..0xff
    }
    if (n - i < len) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += len;
  }
  return std::string_view::npos;
}

nlohmann::json parse_json_strict(std::string_view text, std::string_view source) {
  if (size_t bad = find_invalid_utf8(text); bad != std::string_view::npos)
    SSPAN_FAIL("{}: not valid UTF-8 (byte {} of the JSON text)", source, bad);

  // One set of seen keys per open object; the first repeated key is remembered and
  // reported after the parse (throwing from inside the callback is avoided on purpose:
  // the parser's own error paths stay the only ones that unwind through it).
  // A container that opens at depth kMaxJsonDepth is discarded (callback returns false)
  // and the parse reported as refused afterwards; the discarded parts are never built.
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  bool too_deep = false;
  auto callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& value) {
    using E = nlohmann::json::parse_event_t;
    if ((event == E::object_start || event == E::array_start) && depth >= kMaxJsonDepth) {
      too_deep = true;
      return false;
    }
    if (event == E::object_start) {
      open_objects.emplace_back();
    } else if (event == E::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == E::key && !open_objects.empty() && duplicate.empty()) {
      const auto& key = value.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second) duplicate = key;
    }
    return true;
  };

  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for 1e999
    SSPAN_FAIL("{}: invalid JSON: {}", source, e.what());
  }
  SSPAN_CHECK(!too_deep, "{}: JSON nested deeper than {} levels", source, kMaxJsonDepth);
  SSPAN_CHECK(duplicate.empty(), "{}: duplicate key '{}'", source, duplicate);
  return j;
}

std::string brief_text(std::string_view s) {
  constexpr size_t kMax = 40;
  if (s.size() <= kMax) return std::string(s);
  size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;  // a character boundary
  return fmt::format("{}... (cut, {} bytes)", s.substr(0, cut), s.size());
}

std::string json_summary(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::array: return fmt::format("an array of {} values", v.size());
    case nlohmann::json::value_t::object: return fmt::format("an object of {} keys", v.size());
    case nlohmann::json::value_t::string:
      return brief_text(v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    default: return v.dump();
  }
}

}  // namespace sspan::io
