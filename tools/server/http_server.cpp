#include "server/http_server.h"

#include <fmt/format.h>
#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <deque>
#include <map>
#include <mutex>

#include "server/chat_template.h"
#include "server/metrics.h"
#include "io/json_strict.h"
#include "server/openai_api.h"
#include "sspan/error.h"

namespace sspan::server {
namespace {

using nlohmann::json;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// A request body is untrusted JSON: strict (bounded nesting, no duplicate keys, valid
// UTF-8), or a 400 saying what is wrong.
json parse_body(const std::string& body) {
  try {
    return io::parse_json_strict(body, "request");
  } catch (const Error& e) {
    throw ApiError(400, fmt::format("the request body is not valid JSON ({})", e.what()));
  }
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Server-sent events of one streamed request: the scheduler thread queues chunks, the
// HTTP thread writes them. `closed` tells the scheduler the client has gone.
struct EventChannel {
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<std::string> events;
  std::atomic<bool> closed{false};
  bool sent_final = false;  // HTTP thread only
  void push(std::string event) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      events.push_back(std::move(event));
    }
    ready.notify_one();
  }
};

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

// httplib listens with a backlog of 5, so a burst of concurrent clients has connections
// reset. Listening again on the bound socket raises the backlog (Linux, BSD).
class Listener : public httplib::Server {
 public:
  void widen_backlog() { ::listen(svr_sock_, SOMAXCONN); }
};

const char* status_text(int status) {
  switch (status) {
    case 400: return "bad request";
    case 404: return "no such endpoint (POST /v1/completions, POST /v1/chat/completions, GET /v1/models, /health, /metrics)";
    case 405: return "method not allowed";
    case 413: return "the request body is larger than the server accepts";
    case 503: return "the server is busy";
    default: return "request failed";
  }
}

}  // namespace

struct HttpServer::Impl {
  Engine& engine;
  ServerOptions opt;
  Scheduler scheduler;
  Listener http;
  std::optional<ChatTemplate> chat;
  std::string chat_why_not;
  ApiDefaults defaults;
  std::atomic<uint64_t> next_id{1};
  ServerCounters counters;

  std::mutex inflight_mutex;
  std::map<uint64_t, RequestHandle> inflight;  // cancelled on stop()

  Impl(Engine& e, ServerOptions o)
      : engine(e), opt(std::move(o)), scheduler(e, {.max_queued = opt.max_queued}) {
    chat = ChatTemplate::load(opt.model_dir, &chat_why_not);
    defaults = {opt.span_default, opt.span_block, e.max_context()};
    SpanPolicy::parse(opt.span_default, opt.span_block);  // a bad --span-default fails at start
    const int threads = opt.http_threads > 0 ? opt.http_threads : 2 * e.max_batch() + 8;
    http.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
    http.set_payload_max_length(opt.max_body_bytes);
    routes();
    scheduler.start();
  }

  void reply_error(httplib::Response& res, const ApiError& e) {
    res.status = e.status;
    res.set_content(dump(error_body(e.what(), e.type, e.param)), "application/json");
    counters.count_error(e.status);
  }

  RequestHandle submit(Request r) {
    try {
      RequestHandle h = scheduler.submit(std::move(r));
      std::lock_guard<std::mutex> lock(inflight_mutex);
      inflight.emplace(h.id(), h);
      return h;
    } catch (const QueueFullError& e) {
      throw ApiError(503, e.what(), "", "server_busy");
    } catch (const Error& e) {
      throw ApiError(400, e.what());
    }
  }
  void forget(const RequestHandle& h) {
    std::lock_guard<std::mutex> lock(inflight_mutex);
    inflight.erase(h.id());
  }

  void completions(const httplib::Request& req, httplib::Response& res, bool is_chat);
  void stream(httplib::Response& res, ParsedRequest p, const ResponseMeta& meta);
  void routes();
};

void HttpServer::Impl::completions(const httplib::Request& req, httplib::Response& res, bool is_chat) {
  try {
    const json body = parse_body(req.body);
    const Tokenizer& tok = engine.tokenizer();
    ParsedRequest p = is_chat ? parse_chat(body, defaults, chat ? &*chat : nullptr, chat_why_not, tok,
                                           engine.config().bos_token_id, tok.eos_id())
                              : parse_completion(body, defaults);
    const ResponseMeta meta{fmt::format("{}-{}", is_chat ? "chatcmpl" : "cmpl", next_id++), opt.model_id,
                            p.request.options.span.policy, unix_now()};
    if (p.stream) return stream(res, std::move(p), meta);
    const RequestHandle h = submit(p.request);
    const GenerationResult& r = h.wait();
    forget(h);
    if (r.stop == StopReason::Error) throw ApiError(500, r.error, "", "server_error");
    res.set_content(dump(response_json(p, meta, r, tok)), "application/json");
  } catch (const ApiError& e) {
    reply_error(res, e);
  }
}

void HttpServer::Impl::stream(httplib::Response& res, ParsedRequest p, const ResponseMeta& meta) {
  auto ch = std::make_shared<EventChannel>();
  const bool is_chat = p.chat;
  if (is_chat) ch->push(sse(chunk_json(true, meta, "", nullptr, /*first_chat_delta=*/true)));
  p.request.on_token = [ch, is_chat, meta](const TokenEvent& e) {
    if (!e.text.empty()) ch->push(sse(chunk_json(is_chat, meta, std::string(e.text), nullptr)));
    return !ch->closed.load();
  };
  const RequestHandle h = submit(std::move(p.request));
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, ch, h, is_chat, meta](size_t, httplib::DataSink& sink) {
        // Done is published after the request's last event: look first, then drain.
        const bool finished = h.done();
        std::string out;
        {
          std::unique_lock<std::mutex> lock(ch->mutex);
          if (!finished && ch->events.empty())
            ch->ready.wait_for(lock, std::chrono::milliseconds(20), [&] { return !ch->events.empty(); });
          for (auto& e : ch->events) out += e;
          ch->events.clear();
        }
        if (finished && !ch->sent_final) {
          const GenerationResult& r = h.wait();
          out += r.stop == StopReason::Error ? sse(error_body(r.error, "server_error"))
                                             : sse(chunk_json(is_chat, meta, "", &r));
          out += "data: [DONE]\n\n";
          ch->sent_final = true;
        }
        const bool alive = out.empty() ? sink.is_writable() : sink.write(out.data(), out.size());
        if (!alive) {
          ch->closed = true;  // the client went away: cancel, freeing the slot
          h.cancel();
          return false;
        }
        if (ch->sent_final) sink.done();
        return true;
      },
      [this, ch, h](bool success) {
        if (!success) {
          ch->closed = true;
          h.cancel();
        }
        forget(h);
      });
}

void HttpServer::Impl::routes() {
  http.Post("/v1/completions", [this](const httplib::Request& q, httplib::Response& r) { completions(q, r, false); });
  http.Post("/v1/chat/completions",
            [this](const httplib::Request& q, httplib::Response& r) { completions(q, r, true); });
  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& r) {
    const json model = {{"id", opt.model_id},
                        {"object", "model"},
                        {"created", unix_now()},
                        {"owned_by", "sspan"},
                        {"max_model_len", engine.max_context()}};
    r.set_content(dump({{"object", "list"}, {"data", json::array({model})}}), "application/json");
  });
  http.Get("/health", [](const httplib::Request&, httplib::Response& r) {
    r.set_content(R"({"status":"ok"})", "application/json");
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& r) {
    r.set_content(prometheus_text(scheduler.stats(), counters), "text/plain; version=0.0.4");
  });
  // Statuses httplib sets itself (404, 413, ...) get an OpenAI error object too.
  http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request&, httplib::Response& r) {
    if (!r.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    r.set_content(dump(error_body(status_text(r.status), "invalid_request_error")), "application/json");
    counters.count_error(r.status);
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([this](const httplib::Request&, httplib::Response& r, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    r.status = 500;
    r.set_content(dump(error_body(what, "server_error")), "application/json");
    counters.count_error(500);
  });
}

HttpServer::HttpServer(Engine& engine, ServerOptions options)
    : impl_(std::make_unique<Impl>(engine, std::move(options))) {}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  Impl& im = *impl_;
  int port = im.opt.port;
  if (port == 0) {
    port = im.http.bind_to_any_port(im.opt.host);
    if (port <= 0) throw Error(fmt::format("cannot listen on {}", im.opt.host));
  } else if (!im.http.bind_to_port(im.opt.host, port)) {
    throw Error(fmt::format("cannot listen on {}:{} (in use, or not an address of this machine)", im.opt.host, port));
  }
  im.http.widen_backlog();
  return port;
}

void HttpServer::listen() { impl_->http.listen_after_bind(); }

void HttpServer::stop() {
  Impl& im = *impl_;
  im.http.stop();
  std::lock_guard<std::mutex> lock(im.inflight_mutex);
  for (auto& [id, h] : im.inflight) h.cancel();
}

const SchedulerStats HttpServer::stats() const { return impl_->scheduler.stats(); }

}  // namespace sspan::server
