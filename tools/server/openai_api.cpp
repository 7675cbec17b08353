#include "server/openai_api.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <random>

#include "sspan/error.h"

namespace sspan::server {
namespace {

using nlohmann::json;

ApiError bad(const std::string& param, const std::string& message) { return ApiError(400, message, param); }

// Typed optional fields; null counts as absent (OpenAI clients send null for defaults).
const json* field(const json& body, const char* name) {
  const auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

std::optional<double> number(const json& body, const char* name) {
  const json* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number()) throw bad(name, fmt::format("'{}' must be a number", name));
  const double x = v->get<double>();
  if (!std::isfinite(x)) throw bad(name, fmt::format("'{}' must be finite", name));
  return x;
}

std::optional<int64_t> integer(const json& body, const char* name) {
  const json* v = field(body, name);
  if (!v) return std::nullopt;
  if (v->is_number_integer()) return v->get<int64_t>();
  if (v->is_number_float()) {  // 16.0 is an integer; 16.5 is not
    const double x = v->get<double>();
    if (std::floor(x) == x && std::abs(x) < 9e15) return int64_t(x);
  }
  throw bad(name, fmt::format("'{}' must be an integer", name));
}

std::optional<bool> boolean(const json& body, const char* name) {
  const json* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) throw bad(name, fmt::format("'{}' must be true or false", name));
  return v->get<bool>();
}

std::optional<std::string> string(const json& body, const char* name) {
  const json* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_string()) throw bad(name, fmt::format("'{}' must be a string", name));
  return v->get<std::string>();
}

int to_int(int64_t v, const char* name) {
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
    throw bad(name, fmt::format("'{}' is out of range", name));
  return int(v);
}

// Fields shared by both endpoints: sampling, limits, stop strings, the span extension.
void parse_common(const json& body, const ApiDefaults& d, ParsedRequest& p, int default_max_tokens) {
  GenerateOptions& o = p.request.options;
  if (!body.is_object()) throw bad("", "the request body must be a JSON object");
  string(body, "model");  // any name: one model is served, but the type is checked
  const auto n = integer(body, "n");
  if (n && *n != 1) throw bad("n", "'n' must be 1: one choice per request");
  for (const char* penalty : {"presence_penalty", "frequency_penalty"})
    if (const auto v = number(body, penalty); v && *v != 0.0)
      throw bad(penalty, fmt::format("'{}' is not supported; use 'repetition_penalty'", penalty));
  if (const json* lb = field(body, "logit_bias"); lb && !(lb->is_object() && lb->empty()))
    throw bad("logit_bias", "'logit_bias' is not supported");

  const auto max_tokens = integer(body, p.chat && field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens");
  o.max_new_tokens = max_tokens ? to_int(*max_tokens, "max_tokens") : default_max_tokens;
  if (o.max_new_tokens <= 0) throw bad("max_tokens", fmt::format("'max_tokens' must be at least 1, got {}", o.max_new_tokens));

  SamplingOptions& s = o.sampling;
  s.temperature = float(number(body, "temperature").value_or(1.0));
  if (s.temperature < 0 || s.temperature > 100)
    throw bad("temperature", fmt::format("'temperature' must be in [0, 100], got {}", s.temperature));
  s.top_p = float(number(body, "top_p").value_or(1.0));
  if (!(s.top_p > 0 && s.top_p <= 1)) throw bad("top_p", fmt::format("'top_p' must be in (0, 1], got {}", s.top_p));
  s.top_k = to_int(integer(body, "top_k").value_or(0), "top_k");
  if (s.top_k < 0) throw bad("top_k", "'top_k' must be >= 0");
  s.min_p = float(number(body, "min_p").value_or(0.0));
  if (s.min_p < 0 || s.min_p > 1) throw bad("min_p", fmt::format("'min_p' must be in [0, 1], got {}", s.min_p));
  const char* penalty = field(body, "repeat_penalty") ? "repeat_penalty" : "repetition_penalty";
  s.repeat_penalty = float(number(body, penalty).value_or(1.0));
  if (!(s.repeat_penalty > 0)) throw bad(penalty, fmt::format("'{}' must be > 0", penalty));
  if (const auto seed = integer(body, "seed")) {
    s.seed = uint64_t(*seed);
  } else {
    static thread_local std::random_device rd;  // no seed: a fresh stream, as OpenAI
    s.seed = (uint64_t(rd()) << 32) ^ rd();
  }

  if (const json* stop = field(body, "stop")) {
    if (stop->is_string()) {
      o.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array() && stop->size() <= 4) {
      for (const auto& x : *stop) {
        if (!x.is_string()) throw bad("stop", "'stop' must be a string or an array of up to 4 strings");
        o.stop.push_back(x.get<std::string>());
      }
    } else {
      throw bad("stop", "'stop' must be a string or an array of up to 4 strings");
    }
  }
  p.stream = boolean(body, "stream").value_or(false);
  o.stop_at_eos = !boolean(body, "ignore_eos").value_or(false);
  o.span.policy = string(body, "span").value_or(d.span);
  if (o.span.policy.empty()) throw bad("span", "'span' must name a span policy");
  o.span.block_size = to_int(integer(body, "span_block").value_or(d.span_block), "span_block");
}

}  // namespace

nlohmann::json error_body(const std::string& message, const std::string& type, const std::string& param) {
  return {{"error",
           {{"message", message}, {"type", type}, {"param", param.empty() ? json() : json(param)}, {"code", json()}}}};
}

ParsedRequest parse_completion(const json& body, const ApiDefaults& d) {
  ParsedRequest p;
  parse_common(body, d, p, /*default_max_tokens=*/16);
  const json* prompt = field(body, "prompt");
  if (!prompt) throw bad("prompt", "'prompt' is required");
  if (prompt->is_string()) {
    p.request.prompt = prompt->get<std::string>();
  } else if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) {
    p.request.prompt = (*prompt)[0].get<std::string>();
  } else if (prompt->is_array() && !prompt->empty() && std::all_of(prompt->begin(), prompt->end(), [](const json& x) {
               return x.is_number_integer();
             })) {
    for (const auto& x : *prompt) p.request.prompt_ids.push_back(int32_t(x.get<int64_t>()));
  } else {
    throw bad("prompt", "'prompt' must be a string, an array of one string, or an array of token ids");
  }
  if (boolean(body, "echo").value_or(false)) throw bad("echo", "'echo' is not supported");
  if (const auto best = integer(body, "best_of"); best && *best != 1) throw bad("best_of", "'best_of' must be 1");
  if (const auto lp = integer(body, "logprobs")) {
    if (*lp < 0 || *lp > 5) throw bad("logprobs", "'logprobs' must be in [0, 5]");
    p.logprobs = int(*lp);
    p.request.options.logprobs = true;
    p.request.options.top_logprobs = p.logprobs;
  }
  return p;
}

ParsedRequest parse_chat(const json& body, const ApiDefaults& d, const ChatTemplate* chat, const std::string& why_not,
                         const Tokenizer& tok, int32_t bos_id, int32_t eos_id) {
  ParsedRequest p;
  p.chat = true;
  parse_common(body, d, p, /*default_max_tokens=*/d.max_context);
  const json* msgs = field(body, "messages");
  if (!msgs || !msgs->is_array()) throw bad("messages", "'messages' must be an array of {role, content} objects");
  std::vector<ChatMessage> messages;
  for (const auto& m : *msgs) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string())
      throw bad("messages", "each message must be an object with string 'role' and 'content'");
    messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  if (!chat) throw ApiError(400, "chat completions are not available for this model: " + why_not, "messages");
  try {
    p.request.prompt_ids = chat->render(messages, tok, bos_id, eos_id);
  } catch (const Error& e) {
    throw bad("messages", e.what());
  }
  for (const auto& s : chat->stop_strings()) p.request.options.stop.push_back(s);
  if (boolean(body, "logprobs").value_or(false)) {
    p.request.options.logprobs = true;
    const int top = to_int(integer(body, "top_logprobs").value_or(0), "top_logprobs");
    if (top < 0 || top > 20) throw bad("top_logprobs", "'top_logprobs' must be in [0, 20]");
    p.request.options.top_logprobs = top;
    p.logprobs = top;
  }
  return p;
}

std::string finish_reason(StopReason r) {
  switch (r) {
    case StopReason::Eos:
    case StopReason::StopString: return "stop";
    case StopReason::Length:
    case StopReason::Context:
    case StopReason::Forced: return "length";
    case StopReason::Cancelled: return "cancelled";
    case StopReason::Error: return "error";
  }
  return "stop";
}

json span_json(const SpanStats& s, const std::string& policy) {
  return {{"policy", policy},
          {"mean_sparsity", s.mean_sparsity},
          {"sparse_tokens", s.sparse_tokens},
          {"dense_tokens", s.dense_tokens},
          {"events",
           {{"sparse_lines", s.events.sparse_lines},
            {"dense_fallbacks", s.events.dense_fallbacks},
            {"unknown_anchors", s.events.unknown_anchors},
            {"malformed_lists", s.events.malformed_lists},
            {"redefined_anchors", s.events.redefined_anchors}}}};
}

json usage_json(const GenerationResult& r) {
  const int p = int(r.prompt_ids.size()), c = int(r.ids.size());
  return {{"prompt_tokens", p}, {"completion_tokens", c}, {"total_tokens", p + c}};
}

namespace {

json timings_json(const RequestStats& s) {
  return {{"queue_s", s.queue_seconds},
          {"prefill_s", s.prefill_seconds},
          {"ttft_s", s.ttft_seconds},
          {"decode_s", s.decode_seconds},
          {"decode_tokens_per_s", s.decode_tokens_per_s()}};
}

std::string token_str(const Tokenizer& tok, int32_t id) { return tok.token_bytes(id); }

json completion_logprobs(const GenerationResult& r, const Tokenizer& tok) {
  json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  size_t offset = 0;
  for (const auto& t : r.logprobs) {
    const std::string s = token_str(tok, t.id);
    tokens.push_back(s);
    lps.push_back(t.logprob);
    json top = json::object();
    for (const auto& [id, lp] : t.top) top[token_str(tok, id)] = lp;
    tops.push_back(top);
    offsets.push_back(offset);
    offset += s.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json chat_logprobs(const GenerationResult& r, const Tokenizer& tok) {
  json content = json::array();
  for (const auto& t : r.logprobs) {
    const std::string s = token_str(tok, t.id);
    json top = json::array();
    for (const auto& [id, lp] : t.top) top.push_back({{"token", token_str(tok, id)}, {"logprob", lp}});
    content.push_back({{"token", s}, {"logprob", t.logprob}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

}  // namespace

json response_json(const ParsedRequest& p, const ResponseMeta& m, const GenerationResult& r, const Tokenizer& tok) {
  json choice = {{"index", 0}, {"finish_reason", finish_reason(r.stop)}};
  const bool lp = p.request.options.logprobs;
  if (p.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", r.text}};
    choice["logprobs"] = lp ? chat_logprobs(r, tok) : json();
  } else {
    choice["text"] = r.text;
    choice["logprobs"] = lp ? completion_logprobs(r, tok) : json();
  }
  return {{"id", m.id},
          {"object", p.chat ? "chat.completion" : "text_completion"},
          {"created", m.created},
          {"model", m.model},
          {"choices", json::array({choice})},
          {"usage", usage_json(r)},
          {"span", span_json(r.span, m.span_policy)},
          {"timings", timings_json(r.stats)}};
}

json chunk_json(bool chat, const ResponseMeta& m, const std::string& text, const GenerationResult* final_result,
                bool first_chat_delta) {
  json choice = {{"index", 0}, {"logprobs", json()}};
  choice["finish_reason"] = final_result ? json(finish_reason(final_result->stop)) : json();
  if (chat) {
    json delta = json::object();
    if (first_chat_delta) delta["role"] = "assistant";
    if (!text.empty()) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  json out = {{"id", m.id},
              {"object", chat ? "chat.completion.chunk" : "text_completion"},
              {"created", m.created},
              {"model", m.model},
              {"choices", json::array({choice})}};
  if (final_result) {
    out["usage"] = usage_json(*final_result);
    out["span"] = span_json(final_result->span, m.span_policy);
    out["timings"] = timings_json(final_result->stats);
  }
  return out;
}

}  // namespace sspan::server
