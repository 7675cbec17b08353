#pragma once
// The OpenAI request and response shapes the server speaks: /v1/completions and
// /v1/chat/completions bodies into a sspan::Request (every field type-checked, errors that
// name the field), and results into response objects and server-sent-event chunks.
// Extensions beyond OpenAI's fields: "span" (policy spec), "span_block", "top_k",
// "min_p", "repetition_penalty" (or "repeat_penalty"), "ignore_eos"; responses carry a
// "span" object with the request's span statistics.
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

#include "server/chat_template.h"
#include "sspan/request.h"
#include "sspan/tokenizer.h"

namespace sspan::server {

// An error answered as {"error": {"message", "type", "param", "code"}} with an HTTP status.
struct ApiError : std::runtime_error {
  int status;
  std::string type, param;
  ApiError(int status_, const std::string& message, std::string param_ = {},
           std::string type_ = "invalid_request_error")
      : std::runtime_error(message), status(status_), type(std::move(type_)), param(std::move(param_)) {}
};
nlohmann::json error_body(const std::string& message, const std::string& type, const std::string& param = {});

struct ApiDefaults {
  std::string span = "dense";  // --span-default
  int span_block = 64;
  int max_context = 0;         // the engine's; chat's default max_tokens fills it
};

struct ParsedRequest {
  Request request;
  bool stream = false;
  bool chat = false;
  int logprobs = -1;  // -1: none; else top alternatives per token (completions' "logprobs": N)
};

// Throw ApiError(400) for anything malformed; unknown fields are ignored.
ParsedRequest parse_completion(const nlohmann::json& body, const ApiDefaults& d);
// `chat` is null when the model has no template the server can render (then 400 with
// `why_not`).
ParsedRequest parse_chat(const nlohmann::json& body, const ApiDefaults& d, const ChatTemplate* chat,
                         const std::string& why_not, const Tokenizer& tok, int32_t bos_id, int32_t eos_id);

// "stop" / "length" (OpenAI's finish_reason) for a result's stop reason.
std::string finish_reason(StopReason r);

struct ResponseMeta {
  std::string id, model, span_policy;
  int64_t created = 0;
};
nlohmann::json span_json(const SpanStats& s, const std::string& policy);
nlohmann::json usage_json(const GenerationResult& r);
// The whole (non-streamed) response.
nlohmann::json response_json(const ParsedRequest& p, const ResponseMeta& m, const GenerationResult& r,
                             const Tokenizer& tok);
// One streamed chunk: text (or, for chat, a delta) and, in the last, finish_reason,
// usage and span statistics.
nlohmann::json chunk_json(bool chat, const ResponseMeta& m, const std::string& text,
                          const GenerationResult* final_result, bool first_chat_delta = false);

}  // namespace sspan::server
