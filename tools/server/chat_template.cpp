#include "server/chat_template.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "io/json_strict.h"
#include "io/untrusted_files.h"
#include "sspan/error.h"

namespace sspan::server {
namespace {

// The id of an added token whose content is `text` in tokenizer_config.json, or -1.
int32_t added_token_id(const nlohmann::json& cfg, const std::string& text) {
  if (!cfg.contains("added_tokens_decoder") || !cfg["added_tokens_decoder"].is_object()) return -1;
  for (const auto& [id, tok] : cfg["added_tokens_decoder"].items())
    if (tok.is_object() && tok.value("content", "") == text) {
      try {
        return int32_t(std::stol(id));
      } catch (const std::exception&) {
        return -1;
      }
    }
  return -1;
}

void append(std::vector<int32_t>& out, const std::vector<int>& ids) { out.insert(out.end(), ids.begin(), ids.end()); }

std::string strip(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return {};
  const size_t b = s.find_last_not_of(" \t\r\n");
  return s.substr(a, b - a + 1);
}

}  // namespace

std::optional<ChatTemplate> ChatTemplate::from_string(const std::string& jinja, bool add_bos, int32_t im_start_id,
                                                      int32_t im_end_id) {
  ChatTemplate t;
  t.add_bos_ = add_bos;
  t.im_start_ = im_start_id;
  t.im_end_ = im_end_id;
  if (jinja.find("<|im_start|>") != std::string::npos) {
    t.kind_ = Kind::ChatML;
    return t;
  }
  if (jinja.find("[INST]") != std::string::npos && jinja.find("[/INST]") != std::string::npos) {
    t.kind_ = Kind::Llama2;
    return t;
  }
  return std::nullopt;
}

std::optional<ChatTemplate> ChatTemplate::load(const std::filesystem::path& model_dir, std::string* why_not) {
  const auto path = model_dir / "tokenizer_config.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    *why_not = "the model has no tokenizer_config.json, so it has no chat template";
    return std::nullopt;
  }
  nlohmann::json cfg;
  try {  // a file of the model directory: a bounded regular file of strict JSON
    cfg = io::parse_json_strict(io::read_regular_file(path, size_t(16) << 20, "tokenizer config"), path.string());
  } catch (const Error& e) {
    *why_not = e.what();
    return std::nullopt;
  }
  if (!cfg.is_object()) {
    *why_not = fmt::format("{} is not a JSON object", path.string());
    return std::nullopt;
  }
  if (!cfg.contains("chat_template") || !cfg["chat_template"].is_string()) {
    *why_not = "the model's tokenizer_config.json has no chat_template";
    return std::nullopt;
  }
  const bool add_bos = !cfg.contains("add_bos_token") || !cfg["add_bos_token"].is_boolean() || cfg["add_bos_token"].get<bool>();
  auto t = from_string(cfg["chat_template"].get<std::string>(), add_bos, added_token_id(cfg, "<|im_start|>"),
                       added_token_id(cfg, "<|im_end|>"));
  if (!t) *why_not = "the model's chat template is neither the LLaMA-2 nor the ChatML form, the two this server renders";
  return t;
}

std::vector<std::string> ChatTemplate::stop_strings() const {
  if (kind_ == Kind::ChatML) return {"<|im_end|>"};
  return {};
}

std::vector<int32_t> ChatTemplate::render(const std::vector<ChatMessage>& messages, const Tokenizer& tok,
                                          int32_t bos_id, int32_t eos_id) const {
  if (messages.empty()) throw Error("'messages' is empty");
  for (const auto& m : messages)
    if (m.role != "system" && m.role != "user" && m.role != "assistant")
      throw Error(fmt::format("unknown message role '{}': use system, user or assistant", m.role));
  if (messages.back().role != "user") throw Error("the last message must be the user's");
  std::vector<int32_t> ids;
  if (kind_ == Kind::ChatML) {
    // A marker the vocabulary has is one id; otherwise it is text.
    auto marker = [&](int32_t id, const char* text, std::string& pending) {
      if (id >= 0 && id < tok.vocab_size()) {
        if (!pending.empty()) append(ids, tok.encode_continuation(pending));
        pending.clear();
        ids.push_back(id);
      } else {
        pending += text;
      }
    };
    if (add_bos_) ids.push_back(bos_id);
    std::string pending;
    for (const auto& m : messages) {
      marker(im_start_, "<|im_start|>", pending);
      pending += m.role + "\n" + m.content;
      marker(im_end_, "<|im_end|>", pending);
      pending += "\n";
    }
    marker(im_start_, "<|im_start|>", pending);
    pending += "assistant\n";
    append(ids, tok.encode_continuation(pending));
    return ids;
  }
  // LLaMA-2: an optional system message folded into the first user turn, then strictly
  // alternating user / assistant turns.
  size_t first = 0;
  std::string system;
  if (messages[0].role == "system") {
    system = messages[0].content;
    first = 1;
  }
  for (size_t i = first; i < messages.size(); ++i) {
    const bool user_turn = (i - first) % 2 == 0;
    const auto& m = messages[i];
    if ((m.role == "user") != user_turn || m.role == "system")
      throw Error("LLaMA-2 chat needs alternating user and assistant messages (after an optional first system message)");
    if (m.role == "user") {
      std::string content = strip(m.content);
      if (i == first && first == 1) content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
      const auto turn = tok.encode("[INST] " + content + " [/INST]", /*add_bos=*/false);
      ids.push_back(bos_id);
      append(ids, turn);
    } else {
      append(ids, tok.encode_continuation(fmt::format(" {} ", strip(m.content))));
      ids.push_back(eos_id);
    }
  }
  return ids;
}

}  // namespace sspan::server
