// A grpc++ synchronous server that forks while it serves, as a preforking
// server or a process that runs helpers does: what `grpc-forksafe --audit`
// must report as a fork with a live server and threads inside gRPC.
//
// Usage: forking-server [--forks N] [--interval-ms N] [--] [COMMAND [ARG]...]
//   Serves proto/echo.proto on a free loopback port, makes one RPC to itself
//   (so its sync threads are waiting in gRPC), then forks N times (default 2),
//   N ms apart (default 100). Each child runs COMMAND (execvp) or, without
//   one, exits at once without touching gRPC. Prints one line at the end:
//   "forking-server: N children, all exited 0", or what went wrong, and exits
//   0 or 1.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <sys/wait.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include "echo.grpc.pb.h"

namespace {

class EchoService final : public forksafe::echo::Echo::Service {
  grpc::Status Say(grpc::ServerContext*, const forksafe::echo::SayRequest* req,
                   forksafe::echo::SayReply* reply) override {
    reply->set_tag(req->tag());
    return grpc::Status::OK;
  }
};

int Usage() {
  std::fprintf(stderr, "usage: forking-server [--forks N] [--interval-ms N] [--] [COMMAND [ARG]...]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int forks = 2, interval_ms = 100, i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (std::strcmp(argv[i], "--") == 0) {
      i++;
      break;
    } else if (std::strcmp(argv[i], "--forks") == 0 && i + 1 < argc) {
      forks = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--interval-ms") == 0 && i + 1 < argc) {
      interval_ms = std::atoi(argv[++i]);
    } else {
      return Usage();
    }
  }
  char** command = i < argc ? argv + i : nullptr;

  EchoService service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::printf("forking-server: the server did not start\n");
    return 1;
  }
  {
    // One call to itself, on a channel gone again before the forks.
    auto stub = forksafe::echo::Echo::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    forksafe::echo::SayRequest req;
    forksafe::echo::SayReply reply;
    req.set_tag("self");
    grpc::Status st = stub->Say(&ctx, req, &reply);
    if (!st.ok()) {
      std::printf("forking-server: the RPC to itself failed: %s\n", st.error_message().c_str());
      return 1;
    }
  }

  int failed = 0;
  std::fflush(stdout);
  for (int n = 0; n < forks; n++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    pid_t pid = fork();
    if (pid < 0) {
      std::printf("forking-server: fork failed: %s\n", std::strerror(errno));
      failed++;
      continue;
    }
    if (pid == 0) {
      if (command != nullptr) {
        execvp(command[0], command);
        std::fprintf(stderr, "forking-server: cannot run %s: %s\n", command[0], std::strerror(errno));
        _exit(127);
      }
      _exit(0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::printf("forking-server: child %d did not exit 0\n", static_cast<int>(pid));
      failed++;
    }
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (failed > 0) {
    std::printf("forking-server: %d of %d children failed\n", failed, forks);
    return 1;
  }
  std::printf("forking-server: %d children, all exited 0\n", forks);
  return 0;
}
