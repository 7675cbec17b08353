#pragma once
// sspan-server's HTTP side: cpp-httplib routes over one Scheduler running on its own
// thread. POST /v1/completions and /v1/chat/completions (OpenAI shapes, server-sent
// events when "stream": true), GET /v1/models, /health and /metrics (Prometheus text).
// A client that disconnects mid-stream cancels its request, which frees its slot.
#include <atomic>
#include <memory>
#include <string>

#include "sspan/engine.h"
#include "sspan/scheduler.h"

namespace sspan::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                 // 0: any free port (bind() says which)
  std::string model_id;            // the name /v1/models lists and responses carry
  std::filesystem::path model_dir; // for tokenizer_config.json (chat template)
  std::string span_default = "dense";
  int span_block = 64;
  size_t max_body_bytes = 1 << 20;  // larger bodies: 413 with an error object
  int max_queued = 256;             // requests waiting for a slot; more: 503
  int http_threads = 0;             // 0: 2 * slots + 8
};

class HttpServer {
 public:
  HttpServer(Engine& engine, ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Bind the listening socket; returns the port. Throws Error when the address is taken.
  int bind();
  // Serve until stop() (from any thread).
  void listen();
  void stop();

  const SchedulerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sspan::server
