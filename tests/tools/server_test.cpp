// sspan-server over real HTTP on the loopback interface, with the cpp-httplib client:
// completions (plain and streamed), chat, models/health/metrics, every bad request, a
// client that disconnects mid-stream, and 64 concurrent requests with mixed span policies
// against the same requests sent one at a time. Requests are few and short (the shipped
// arith-tiny model); every wait is bounded.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <httplib.h>

#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "runtime/runtime_fixture.h"
#include "server/chat_template.h"
#include "server/http_server.h"

namespace sspan::server {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr const char* kLlama2Template =
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + "
    "message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + ' ' "
    "+ eos_token }}{% endif %}{% endfor %}";

// A copy of arith-tiny's files with a tokenizer_config.json that has `chat_template`.
// Copies, not links: a model directory's links must stay inside it (docs/model-loading.md).
std::filesystem::path model_with_template(const std::string& tag, const std::string& chat_template) {
  const auto src = test::source_dir() / "models" / "arith-tiny";
  const auto dir = test::scratch_dir(tag);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.model"})
    std::filesystem::copy_file(src / f, dir / f);
  if (!chat_template.empty()) std::ofstream(dir / "tokenizer_config.json") << json{{"chat_template", chat_template}}.dump();
  return dir;
}

// An engine and its server on a free loopback port, serving on a thread of its own.
struct Served {
  Engine engine;
  HttpServer server;
  int port;
  std::thread thread;
  Served(const std::filesystem::path& dir, int slots, int max_queued = 256, size_t max_body = 1 << 16)
      : engine(options(dir, slots)), server(engine, server_options(dir, max_queued, max_body)), port(server.bind()) {
    thread = std::thread([this] { server.listen(); });
  }
  ~Served() {
    server.stop();
    thread.join();
  }
  static EngineOptions options(const std::filesystem::path& dir, int slots) {
    EngineOptions o = test::tiny_options(slots, 256, 64);
    o.model_dir = dir;
    return o;
  }
  static ServerOptions server_options(const std::filesystem::path& dir, int max_queued, size_t max_body) {
    ServerOptions s;
    s.host = "127.0.0.1";
    s.port = 0;
    s.model_id = "arith-tiny";
    s.model_dir = dir;
    s.max_queued = max_queued;
    s.max_body_bytes = max_body;
    s.http_threads = 72;
    return s;
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    c.set_connection_timeout(5, 0);
    return c;
  }
  json metrics_value(const std::string& name) const {
    auto c = client();
    const auto r = c.Get("/metrics");
    EXPECT_TRUE(r && r->status == 200);
    std::istringstream in(r ? r->body : "");
    for (std::string line; std::getline(in, line);)
      if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    return json();
  }
};

struct Reply {
  int status = 0;
  json body;
  std::string raw;
};

Reply post(const Served& s, const std::string& path, const std::string& body) {
  auto c = s.client();
  const auto r = c.Post(path.c_str(), body, "application/json");
  if (!r) return {0, json(), "no response: " + httplib::to_string(r.error())};
  return {r->status, json::parse(r->body, nullptr, false), r->body};
}
Reply post(const Served& s, const std::string& path, const json& body) { return post(s, path, body.dump()); }

// The text of a streamed response, chunk by chunk, and its last JSON chunk.
struct Streamed {
  int status = 0;
  std::string text;
  json last;
  bool done = false;
  int chunks = 0;
};

Streamed post_stream(const Served& s, const std::string& path, json body, bool chat = false) {
  body["stream"] = true;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  std::string buffer;
  Streamed out;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buffer.append(data, n);
    for (size_t end; (end = buffer.find("\n\n")) != std::string::npos; buffer.erase(0, end + 2)) {
      const std::string event = buffer.substr(0, end);
      EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
      const std::string data_text = event.substr(6);
      if (data_text == "[DONE]") {
        out.done = true;
        continue;
      }
      const json j = json::parse(data_text);
      ++out.chunks;
      const json& choice = j["choices"][0];
      if (chat) {
        if (choice["delta"].contains("content")) out.text += choice["delta"]["content"].get<std::string>();
      } else {
        out.text += choice["text"].get<std::string>();
      }
      out.last = j;
    }
    return true;
  };
  auto c = s.client();
  const auto r = c.send(req);
  out.status = r ? r->status : 0;
  return out;
}

class Server : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { served_ = new Served(model_with_template("served", kLlama2Template), 4); }
  static void TearDownTestSuite() {
    delete served_;
    served_ = nullptr;
  }
  static Served* served_;
};
Served* Server::served_ = nullptr;

const json kGreedy = {{"prompt", "(3 + 4) * 2 [0]\n"}, {"max_tokens", 24}, {"temperature", 0}};

TEST_F(Server, CompletionGivesTheEnginesGreedyTextWithUsageAndSpanStatistics) {
  json body = kGreedy;
  body["span"] = "arith";
  const Reply r = post(*served_, "/v1/completions", body);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["object"], "text_completion");
  EXPECT_EQ(r.body["model"], "arith-tiny");
  const std::string text = r.body["choices"][0]["text"];

  Engine local(test::tiny_options(1));
  GenerateOptions g;
  g.max_new_tokens = 24;
  g.span.policy = "arith";
  const auto expected = local.generate({kGreedy["prompt"].get<std::string>()}, g)[0];
  EXPECT_EQ(text, expected.text);
  EXPECT_EQ(r.body["choices"][0]["finish_reason"], expected.stop == StopReason::Eos ? "stop" : "length");
  EXPECT_EQ(r.body["usage"]["completion_tokens"], expected.ids.size());
  EXPECT_EQ(r.body["usage"]["prompt_tokens"], expected.prompt_ids.size());
  EXPECT_EQ(r.body["span"]["policy"], "arith");
  EXPECT_EQ(r.body["span"]["sparse_tokens"], expected.span.sparse_tokens);
}

TEST_F(Server, StreamedChunksReassembleTheCompletion) {
  const Reply whole = post(*served_, "/v1/completions", kGreedy);
  ASSERT_EQ(whole.status, 200);
  const Streamed s = post_stream(*served_, "/v1/completions", kGreedy);
  EXPECT_EQ(s.status, 200);
  EXPECT_TRUE(s.done) << "the stream ends with data: [DONE]";
  EXPECT_GT(s.chunks, 2);
  EXPECT_EQ(s.text, whole.body["choices"][0]["text"].get<std::string>());
  EXPECT_EQ(s.last["choices"][0]["finish_reason"], whole.body["choices"][0]["finish_reason"]);
  EXPECT_EQ(s.last["usage"], whole.body["usage"]);
}

TEST_F(Server, ChatRendersTheModelsTemplate) {
  const json body = {{"messages", {{{"role", "user"}, {"content", "9 * 9 [0]"}}}}, {"max_tokens", 16}, {"temperature", 0}};
  const Reply r = post(*served_, "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["object"], "chat.completion");
  EXPECT_EQ(r.body["choices"][0]["message"]["role"], "assistant");
  // The prompt is the LLaMA-2 rendering: BOS, then "[INST] 9 * 9 [0] [/INST]".
  const Tokenizer& tok = served_->engine.tokenizer();
  EXPECT_EQ(r.body["usage"]["prompt_tokens"], 1 + tok.encode("[INST] 9 * 9 [0] [/INST]", false).size());
  const Streamed s = post_stream(*served_, "/v1/chat/completions", body, /*chat=*/true);
  EXPECT_EQ(s.text, r.body["choices"][0]["message"]["content"].get<std::string>());
  EXPECT_EQ(s.last["object"], "chat.completion.chunk");
}

TEST_F(Server, ModelsHealthAndMetrics) {
  auto c = served_->client();
  const auto models = c.Get("/v1/models");
  ASSERT_TRUE(models && models->status == 200);
  EXPECT_EQ(json::parse(models->body)["data"][0]["id"], "arith-tiny");
  const auto health = c.Get("/health");
  ASSERT_TRUE(health && health->status == 200);
  const auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics && metrics->status == 200);
  for (const char* name : {"sspan_requests_running", "sspan_requests_queued", "sspan_slots_total",
                           "sspan_generation_tokens_total", "sspan_mean_sparsity", "sspan_slot_occupancy"})
    EXPECT_THAT(metrics->body, HasSubstr(std::string("# TYPE ") + name));
  EXPECT_EQ(served_->metrics_value("sspan_slots_total"), 4.0);
}

TEST_F(Server, BadRequestsAre4xxWithAnOpenAIErrorObject) {
  auto expect_error = [&](const std::string& body, int status, const std::string& message, const char* param) {
    const Reply r = post(*served_, "/v1/completions", body);
    EXPECT_EQ(r.status, status) << body;
    ASSERT_TRUE(r.body.contains("error")) << r.raw;
    EXPECT_THAT(r.body["error"]["message"].get<std::string>(), HasSubstr(message)) << body;
    if (param) {
      EXPECT_EQ(r.body["error"]["param"], param) << body;
    }
  };
  expect_error("{\"prompt\": \"1 + 1\", ", 400, "not valid JSON", nullptr);
  // Strict JSON: nesting deeper than 64 (deep enough would overflow a recursive printer's
  // stack), duplicate keys, invalid UTF-8.
  expect_error("{\"prompt\": " + std::string(1000, '[') + std::string(1000, ']') + "}", 400,
               "nested deeper than 64 levels", nullptr);
  expect_error(R"({"prompt": "1", "prompt": "2"})", 400, "duplicate key", nullptr);
  expect_error("{\"prompt\": \"\xff\"}", 400, "UTF-8", nullptr);
  expect_error(R"({"prompt": "1", "max_tokens": 0})", 400, "at least 1", "max_tokens");
  expect_error(R"({"prompt": "1", "max_tokens": -5})", 400, "at least 1", "max_tokens");
  expect_error(R"({"prompt": "1", "temperature": "hot"})", 400, "must be a number", "temperature");
  expect_error(R"({"prompt": "1", "stream": "yes"})", 400, "true or false", "stream");
  expect_error(R"({"prompt": "1", "stop": 7})", 400, "'stop'", "stop");
  expect_error(R"({"prompt": 12})", 400, "'prompt'", "prompt");
  expect_error(R"({"max_tokens": 3})", 400, "'prompt' is required", "prompt");
  expect_error(R"({"prompt": "1", "span": "no-such-policy"})", 400, "unknown span policy 'no-such-policy'", nullptr);
  expect_error(R"({"prompt": "1", "n": 2})", 400, "'n' must be 1", "n");
  const std::string long_prompt = json{{"prompt", std::string(600, '7')}, {"max_tokens", 4}}.dump();
  const Tokenizer& tok = served_->engine.tokenizer();
  const auto n = tok.encode(std::string(600, '7'), true).size();
  expect_error(long_prompt, 400, fmt::format("the prompt is {} tokens but the context holds 256", n), nullptr);
  // Bigger than the body limit: httplib answers 413, with our error object.
  const std::string huge = json{{"prompt", std::string(70000, 'x')}}.dump();
  const Reply big = post(*served_, "/v1/completions", huge);
  EXPECT_EQ(big.status, 413);
  EXPECT_TRUE(big.body.contains("error")) << big.raw;
  auto c = served_->client();
  const auto missing = c.Get("/v1/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_TRUE(json::parse(missing->body).contains("error"));
  // The server still serves.
  EXPECT_EQ(post(*served_, "/v1/completions", kGreedy).status, 200);
}

TEST_F(Server, AClientThatDisconnectsMidStreamFreesItsSlot) {
  const double cancelled_before = served_->metrics_value("sspan_requests_total{outcome=\"cancelled\"}").get<double>();
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = json{{"prompt", "(1 / (7 - 6)) - (2 / (9 - 3)) [0]\n"}, {"max_tokens", 240}, {"ignore_eos", true},
                  {"temperature", 0}, {"stream", true}}.dump();
  req.set_header("Content-Type", "application/json");
  int received = 0;
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++received < 2; };  // then hang up
  auto c = served_->client();
  c.send(req);
  EXPECT_GE(received, 2);
  // The request ends as cancelled and its slot is free again (bounded wait).
  bool freed = false;
  for (int i = 0; i < 200 && !freed; ++i) {
    freed = served_->metrics_value("sspan_requests_total{outcome=\"cancelled\"}").get<double>() > cancelled_before &&
            served_->metrics_value("sspan_requests_running").get<double>() == 0.0;
    if (!freed) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(freed) << "the disconnected request still holds its slot";
}

TEST_F(Server, SixtyFourConcurrentRequestsWithMixedPoliciesEqualTheSameRequestsOneAtATime) {
  const auto prompts = test::arith_prompts();
  const char* policies[] = {"dense", "arith", "summary", "arith:block=32"};
  std::vector<json> bodies;
  for (int i = 0; i < 64; ++i)
    bodies.push_back({{"prompt", prompts[size_t(i) % prompts.size()]},
                      {"max_tokens", 8 + i % 5},
                      {"temperature", 0.8},
                      {"seed", 1000 + i},
                      {"span", policies[i % 4]}});
  std::vector<std::future<Reply>> together;
  for (const auto& b : bodies)
    together.push_back(std::async(std::launch::async, [&, b] { return post(*served_, "/v1/completions", b); }));
  std::vector<std::string> concurrent;
  for (auto& f : together) {
    const Reply r = f.get();
    ASSERT_EQ(r.status, 200) << r.raw;
    concurrent.push_back(r.body["choices"][0]["text"]);
  }
  for (size_t i = 0; i < bodies.size(); ++i) {
    const Reply r = post(*served_, "/v1/completions", bodies[i]);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body["choices"][0]["text"].get<std::string>(), concurrent[i]) << "request " << i;
  }
}

TEST(ServerWithoutTemplate, ChatIsAClear400AndAFullQueueIs503) {
  Served s(model_with_template("plain", ""), /*slots=*/1, /*max_queued=*/1);
  const json chat = {{"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  const Reply r = post(s, "/v1/chat/completions", chat);
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.raw, HasSubstr("no tokenizer_config.json"));

  // One request runs, one waits; the next finds the queue full. A request of 200 tokens
  // lasts tens of milliseconds, so the running one may finish between seeing the queue
  // full and the third request arriving (the third is then served): try again until a
  // third request meets the full queue.
  const json slow = {{"prompt", "9 * 9 [0]\n"}, {"max_tokens", 200}, {"ignore_eos", true}, {"temperature", 0}};
  auto wait_for = [&](const char* metric) {
    for (int i = 0; i < 200; ++i) {
      if (s.metrics_value(metric).get<double>() == 1.0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  };
  bool rejected = false;
  for (int attempt = 0; attempt < 20 && !rejected; ++attempt) {
    auto a = std::async(std::launch::async, [&] { return post(s, "/v1/completions", slow); });
    if (wait_for("sspan_requests_running")) {
      auto b = std::async(std::launch::async, [&] { return post(s, "/v1/completions", slow); });
      if (wait_for("sspan_requests_queued")) {
        const Reply full = post(s, "/v1/completions", slow);
        if (full.status == 503) {
          rejected = true;
          EXPECT_TRUE(full.body.contains("error")) << full.raw;
        } else {
          EXPECT_EQ(full.status, 200) << full.raw;  // the queue had room again: served
        }
      }
      EXPECT_EQ(b.get().status, 200);
    }
    EXPECT_EQ(a.get().status, 200);
  }
  EXPECT_TRUE(rejected) << "no request met a full queue in 20 tries";
}

TEST(ChatTemplate, LlamaTwoAndChatMLRenderTheirForms) {
  Engine e(test::tiny_options(1, 64));
  const Tokenizer& tok = e.tokenizer();
  const auto llama = ChatTemplate::from_string(kLlama2Template, true);
  ASSERT_TRUE(llama);
  EXPECT_EQ(llama->kind(), ChatTemplate::Kind::Llama2);
  const std::vector<ChatMessage> conv = {{"system", "S"}, {"user", "u1"}, {"assistant", "a1"}, {"user", "u2"}};
  std::vector<int32_t> expect = {1};
  for (int id : tok.encode("[INST] <<SYS>>\nS\n<</SYS>>\n\nu1 [/INST]", false)) expect.push_back(id);
  for (int id : tok.encode_continuation(" a1 ")) expect.push_back(id);
  expect.push_back(2);
  expect.push_back(1);
  for (int id : tok.encode("[INST] u2 [/INST]", false)) expect.push_back(id);
  EXPECT_EQ(llama->render(conv, tok, 1, 2), expect);
  EXPECT_THROW(llama->render({{"user", "a"}, {"user", "b"}}, tok, 1, 2), Error);
  EXPECT_THROW(llama->render({{"user", "a"}, {"assistant", "b"}}, tok, 1, 2), Error);

  const auto chatml = ChatTemplate::from_string("{% for m in messages %}<|im_start|>{{m.role}}...", false);
  ASSERT_TRUE(chatml);
  const auto ids = chatml->render({{"user", "hi"}}, tok, 1, 2);
  std::vector<int> as_int(ids.begin(), ids.end());
  EXPECT_EQ(tok.decode(as_int), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(chatml->stop_strings(), std::vector<std::string>{"<|im_end|>"});
  EXPECT_FALSE(ChatTemplate::from_string("{{ messages }}", true));
}

}  // namespace
}  // namespace sspan::server
