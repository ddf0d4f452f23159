// SPDX-License-Identifier: Apache-2.0
// The call API from C++: the library finds the endpoints of service "api",
// pools the mTLS connection and retries by the service's policy; the try
// function speaks a one-line protocol ("<status> <text>").  The server
// answers 503 once, so the call takes two tries over one connection.
// Usage: call_example [DIR]  (DIR for the certificates, default /tmp)
#include "mesh.hpp"

#include <iostream>
#include <string>
#include <thread>

static std::string identity(const std::string &dir, const std::string &name) {
  std::string crt = dir + "/" + name + ".crt", key = dir + "/" + name + ".key";
  mesh::ca::issue(dir + "/ca.crt", dir + "/ca.key",
                  "spiffe://example.org/" + name, crt, key);
  return R"("identity":{"cert":")" + crt + R"(","key":")" + key +
         R"(","bundle":")" + dir + R"(/ca.crt"})";
}

int main(int argc, char **argv) {
  std::string dir = argc > 1 ? argv[1] : "/tmp";
  try {
    mesh::ca::init("example.org", 3600, dir + "/ca.crt", dir + "/ca.key");
    mesh::Mesh api(R"({"name":"api",)" + identity(dir, "api") + "}");
    mesh::Listener listener = api.listen("127.0.0.1:0");
    std::thread server([&listener] {
      try {
        mesh::Conn c = listener.accept(5000);
        for (int n = 0; !c.read_some().empty(); n++)  // a request per read
          c.write_all(n == 0 ? "503 warming up\n"
                             : "200 hello " + c.peer_id() + "\n");
      } catch (const mesh::Error &e) {
        std::cerr << "server: " << e.what() << "\n";
      }
    });
    struct Join {  // join also when the client side throws
      std::thread &t;
      ~Join() { t.join(); }
    } join{server};

    mesh::Mesh web(R"({"name":"web",)" + identity(dir, "web") +
                   R"(,"services":{"api":{
        "peers":["spiffe://example.org/api"],
        "retry":{"retry_on":["5xx"],"num_retries":2,"base_interval_ms":1},
        "discovery":{"type":"static","endpoints":[
          {"address":"127.0.0.1","port":)" +
                   std::to_string(listener.port()) + "}]}}}}");
    int tries = 0;
    std::string reply;
    web.call_do(
        "api",
        [&](mesh::CallRef &call) {
          tries++;
          mesh::ConnRef conn = call.conn();
          conn.write_all("GET greeting\n");
          reply = conn.read_some();  // one short line: one TLS record
          return mesh::TryResult{mesh::Outcome::ok, std::stoi(reply)};
        },
        mesh::CallOptions().deadline_ms(5000));
    std::cout << reply.substr(0, reply.size() - 1) << " after " << tries
              << " tries\n";
    return 0;  // web closes the pooled connection: the server sees EOF
  } catch (const mesh::Error &e) {
    std::cerr << "call_example: " << e.what() << "\n";
    return 1;
  }
}
