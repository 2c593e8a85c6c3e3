// The peer every demo, test and benchmark talks to: an ordinary grpc++ server
// for proto/echo.proto. It records every call (caller pid, tag, peer address)
// so that a test can assert on what the peer saw, not only on what the client
// believes.
//
// Usage: echo-server [--listen ADDR] [--port-file FILE] [--log FILE]
//                    [--tls-cert FILE --tls-key FILE]
//   --listen     address to bind (default 127.0.0.1:0, any free port)
//   --port-file  written with the bound port once the server accepts calls
//   --log        one line per call: "<caller pid> <tag> <peer>"
//   --tls-cert, --tls-key
//                serve TLS with this PEM certificate chain and private key
//                (no client certificates asked for) instead of plaintext
// Every reply also says what the server saw of the call: whether it came over
// TLS, its "authorization" and "user-agent" metadata.
// SIGTERM or SIGINT shuts it down cleanly.

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include "echo.grpc.pb.h"

using forksafe::echo::CountRequest;
using forksafe::echo::Echo;
using forksafe::echo::SayReply;
using forksafe::echo::SayRequest;

namespace {

class CallLog {
 public:
  explicit CallLog(const char* path) {
    if (path != nullptr && (file_ = std::fopen(path, "a")) == nullptr) {
      std::fprintf(stderr, "echo-server: cannot open log %s: %s\n", path, std::strerror(errno));
      std::exit(2);
    }
  }
  ~CallLog() {
    if (file_ != nullptr) std::fclose(file_);
  }
  void Record(int pid, const std::string& tag, const std::string& peer) {
    if (file_ == nullptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    std::fprintf(file_, "%d %s %s\n", pid, tag.empty() ? "-" : tag.c_str(), peer.c_str());
    std::fflush(file_);
  }

 private:
  std::mutex mu_;
  FILE* file_ = nullptr;
};

class EchoService final : public Echo::Service {
 public:
  explicit EchoService(CallLog* log) : log_(log) {}

  grpc::Status Say(grpc::ServerContext* ctx, const SayRequest* req, SayReply* reply) override {
    log_->Record(req->pid(), req->tag(), ctx->peer());
    Fill(ctx, req->tag(), reply);
    reply->set_payload(req->payload());
    return grpc::Status::OK;
  }

  grpc::Status Count(grpc::ServerContext* ctx, const CountRequest* req,
                     grpc::ServerWriter<SayReply>* writer) override {
    log_->Record(req->pid(), req->tag(), ctx->peer());
    for (int i = 0; i < req->count(); i++) {
      if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      if (i > 0 && req->interval_ms() > 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(req->interval_ms()));
      SayReply reply;
      Fill(ctx, req->tag(), &reply);
      if (!writer->Write(reply)) return grpc::Status(grpc::StatusCode::ABORTED, "write failed");
    }
    return grpc::Status::OK;
  }

 private:
  void Fill(grpc::ServerContext* ctx, const std::string& tag, SayReply* reply) {
    reply->set_server_pid(getpid());
    reply->set_peer(ctx->peer());
    reply->set_tag(tag);
    reply->set_seq(++seq_);
    std::shared_ptr<const grpc::AuthContext> auth = ctx->auth_context();
    if (auth != nullptr) {
      std::vector<grpc::string_ref> types = auth->FindPropertyValues("transport_security_type");
      if (!types.empty()) {
        reply->set_security_type(std::string(types[0].data(), types[0].size()));
        reply->set_secure(reply->security_type() == "ssl");
      }
    }
    reply->set_authorization(Metadata(ctx, "authorization"));
    reply->set_user_agent(Metadata(ctx, "user-agent"));
  }

  static std::string Metadata(grpc::ServerContext* ctx, const char* key) {
    const auto& md = ctx->client_metadata();
    auto it = md.find(key);
    return it == md.end() ? std::string() : std::string(it->second.data(), it->second.size());
  }

  CallLog* log_;
  std::atomic<int64_t> seq_{0};
};

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

bool ReadFile(const char* path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  *out = text.str();
  return !out->empty();
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  const char* port_file = nullptr;
  const char* log_path = nullptr;
  const char* tls_cert = nullptr;
  const char* tls_key = nullptr;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--listen" && i + 1 < argc) listen = argv[++i];
    else if (a == "--port-file" && i + 1 < argc) port_file = argv[++i];
    else if (a == "--log" && i + 1 < argc) log_path = argv[++i];
    else if (a == "--tls-cert" && i + 1 < argc) tls_cert = argv[++i];
    else if (a == "--tls-key" && i + 1 < argc) tls_key = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: echo-server [--listen ADDR] [--port-file FILE] [--log FILE]\n"
                   "                   [--tls-cert FILE --tls-key FILE]\n");
      return 2;
    }
  }
  if ((tls_cert == nullptr) != (tls_key == nullptr)) {
    std::fprintf(stderr, "echo-server: --tls-cert and --tls-key go together\n");
    return 2;
  }
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (tls_cert != nullptr) {
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    if (!ReadFile(tls_cert, &pair.cert_chain) || !ReadFile(tls_key, &pair.private_key)) {
      std::fprintf(stderr, "echo-server: cannot read %s or %s\n", tls_cert, tls_key);
      return 2;
    }
    grpc::SslServerCredentialsOptions options;
    options.pem_key_cert_pairs.push_back(pair);
    creds = grpc::SslServerCredentials(options);
  }

  CallLog log(log_path);
  EchoService service(&log);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, creds, &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "echo-server: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  if (port_file != nullptr) {
    // Written to a temporary name and renamed, so a reader never sees half a number.
    std::string tmp = std::string(port_file) + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr || std::fprintf(f, "%d\n", port) < 0 || std::fclose(f) != 0 ||
        std::rename(tmp.c_str(), port_file) != 0) {
      std::fprintf(stderr, "echo-server: cannot write %s\n", port_file);
      return 1;
    }
  }

  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  std::thread stopper([&] {
    while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  });
  server->Wait();
  stopper.join();
  return 0;
}
