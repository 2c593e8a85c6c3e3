// TLS with an access token composed in, as programs that call authenticated
// services do: the channel credentials are SSL credentials trusting --ca,
// composed with AccessTokenCredentials. The program drops its reference to the
// credentials as soon as the channel exists (grpc++ then releases them in
// core), so whatever a child needs of them must have been kept alive for it.
// Every reply must show that the server saw TLS and the token.

#include <string>

#include <grpcpp/grpcpp.h>

#include "scenarios.h"

namespace fc {

int TlsComposite(const Options& o) {
  const std::string kToken = "forksafe-token";
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadFile(o.ca_file);
  if (ssl.pem_root_certs.empty()) {
    Fail("cannot read the root certificates --ca \"" + o.ca_file + "\"");
    return 1;
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::CompositeChannelCredentials(
      grpc::SslCredentials(ssl), grpc::AccessTokenCredentials(kToken));
  std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(o.target, creds);
  creds.reset();
  auto stub = forksafe::echo::Echo::NewStub(channel);
  channel.reset();

  Expect secure;
  secure.check = [&](const Reply& r) -> std::string {
    if (!r.secure()) return "the server saw security type \"" + r.security_type() + "\", not TLS";
    if (r.authorization() != "Bearer " + kToken)
      return "the server saw authorization \"" + r.authorization() + "\"";
    return "";
  };

  SayExpect(*stub, o, "parent-before", secure);
  pid_t pid = ForkChild([&] {
    for (int i = 1; i <= 3; i++) SayExpect(*stub, o, "child-" + std::to_string(i), secure);
    return 0;
  });
  WaitChild(pid, "child");
  for (int i = 1; i <= 3; i++) SayExpect(*stub, o, "parent-after-" + std::to_string(i), secure);
  return 0;
}

}  // namespace fc
