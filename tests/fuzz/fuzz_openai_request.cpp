// libFuzzer entry: an HTTP request body as sspan-server reads a /v1/completions request:
// strict JSON, then every field type-checked into a Request. Either it parses, or the
// server answers 400 (sspan::Error from the JSON reader, ApiError from the fields);
// nothing else escapes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "io/json_strict.h"
#include "server/openai_api.h"
#include "sspan/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  try {
    const auto json = sspan::io::parse_json_strict(body, "the request body");
    const auto p = sspan::server::parse_completion(json, sspan::server::ApiDefaults{});
    if (p.request.options.max_new_tokens < 0) std::abort();
  } catch (const sspan::Error&) {
  } catch (const sspan::server::ApiError& e) {
    if (e.status != 400) std::abort();
  }
  return 0;
}
