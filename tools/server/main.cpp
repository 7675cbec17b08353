// sspan-server: an OpenAI-compatible HTTP server with continuous batching and the span
// policy chosen per request.
//   sspan-server -m DIR [--host 127.0.0.1] [--port 8080] [--parallel N] [--max-context C]
//                [--device cpu|cuda] [--span-default POLICY]
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <thread>

#include "server/http_server.h"
#include "sspan/error.h"
#include "sspan/log.h"

int main(int argc, char** argv) {
  CLI::App app{"sspan-server: OpenAI-compatible completions over continuous batching"};
  sspan::EngineOptions eo;
  sspan::server::ServerOptions so;
  std::string model_dir, tokenizer, log_level = "info";
  int parallel = 4;
  app.add_option("-m,--model", model_dir, "Model directory")->required()->check(CLI::ExistingDirectory);
  app.add_option("--host", so.host, "Address to listen on (default 127.0.0.1: this machine only)");
  app.add_option("--port", so.port, "Port (0: any free port)")->check(CLI::Range(0, 65535));
  app.add_option("--parallel", parallel, "Requests decoded together (KV slots)")->check(CLI::PositiveNumber);
  app.add_option("--max-context", eo.max_context, "Context length per slot (default: the model's, at most 4096)")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-step-rows", eo.max_step_rows, "Rows per forward step (prompt chunks + decode rows)")
      ->check(CLI::PositiveNumber);
  app.add_option("--device", eo.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--dtype", eo.dtype, "GPU weight/activation type")->check(CLI::IsMember({"float16", "bfloat16"}));
  app.add_option("-t,--threads", eo.threads, "CPU threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  app.add_option("--tokenizer", tokenizer, "tokenizer.model (default: the model directory's)");
  app.add_option("--span-default", so.span_default, "Span policy of requests that name none");
  app.add_option("--span-block", so.span_block, "Span block size of requests that name none")
      ->check(CLI::IsMember({16, 32, 64, 128, 256}));
  app.add_option("--max-queue", so.max_queued, "Requests waiting for a slot before 503")->check(CLI::PositiveNumber);
  app.add_option("--max-body", so.max_body_bytes, "Largest request body in bytes")->check(CLI::PositiveNumber);
  app.add_option("--http-threads", so.http_threads, "HTTP worker threads (0: 2 x parallel + 8)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--model-id", so.model_id, "Model name in /v1/models and responses (default: the directory name)");
  app.add_option("--log-level", log_level, "debug, info, warn or error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  CLI11_PARSE(app, argc, argv);
  sspan::set_log_level(log_level == "debug"  ? sspan::LogLevel::Debug
                       : log_level == "warn" ? sspan::LogLevel::Warn
                       : log_level == "error" ? sspan::LogLevel::Error
                                              : sspan::LogLevel::Info);
  // SIGINT/SIGTERM are taken by one thread that stops the server; block them elsewhere.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  try {
    eo.model_dir = model_dir;
    eo.tokenizer_file = tokenizer;
    eo.max_batch = parallel;
    so.model_dir = model_dir;
    if (so.model_id.empty()) so.model_id = std::filesystem::path(model_dir).lexically_normal().filename().string();
    if (so.model_id.empty()) so.model_id = std::filesystem::absolute(model_dir).parent_path().filename().string();
    sspan::Engine engine(eo);
    sspan::server::HttpServer server(engine, so);
    const int port = server.bind();
    std::thread waiter([&] {
      int sig = 0;
      sigwait(&signals, &sig);
      std::fprintf(stderr, "sspan-server: stopping\n");
      server.stop();
    });
    std::fprintf(stderr, "sspan-server: serving %s on http://%s:%d (%d slots, context %d)\n", so.model_id.c_str(),
                 so.host.c_str(), port, parallel, engine.max_context());
    server.listen();
    pthread_kill(waiter.native_handle(), SIGTERM);  // wake the waiter if it still waits
    waiter.join();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sspan-server: error: %s\n", e.what());
    return 1;
  }
}
