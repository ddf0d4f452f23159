// SPDX-License-Identifier: Apache-2.0
// An mTLS echo between two identities with the C++ wrapper: a dev CA
// mints both SVIDs, a server thread accepts, the client dials and checks
// who answered.  Usage: example [DIR]  (DIR for the certificates, default /tmp)
#include "mesh.hpp"

#include <iostream>
#include <string>
#include <thread>

static std::string config(const std::string &dir, const std::string &name) {
  std::string crt = dir + "/" + name + ".crt", key = dir + "/" + name + ".key";
  mesh::ca::issue(dir + "/ca.crt", dir + "/ca.key",
                     "spiffe://example.org/" + name, crt, key);
  return R"({"name":")" + name + R"(","identity":{"cert":")" + crt +
         R"(","key":")" + key + R"(","bundle":")" + dir + R"(/ca.crt"}})";
}

int main(int argc, char **argv) {
  std::string dir = argc > 1 ? argv[1] : "/tmp";
  try {
    mesh::ca::init("example.org", 3600, dir + "/ca.crt", dir + "/ca.key");
    mesh::Mesh server(config(dir, "server"));
    mesh::Mesh client(config(dir, "client"));

    mesh::Listener listener = server.listen("127.0.0.1:0");
    std::thread echo([&listener] {
      try {
        mesh::Conn c = listener.accept(5000);
        c.write_all("hello " + c.peer_id());
      } catch (const mesh::Error &e) {
        std::cerr << "server: " << e.what() << "\n";
      }
    });
    struct Join {  // join also when the client side throws
      std::thread &t;
      ~Join() { t.join(); }
    } join{echo};

    mesh::Conn conn = client.dial(
        "127.0.0.1:" + std::to_string(listener.port()),
        mesh::DialOptions().timeout_ms(5000).peer(
            "spiffe://example.org/server"));
    std::string reply = conn.read_some();
    std::cout << reply << " from " << conn.peer_id() << " ("
              << conn.cipher() << ")\n";
    return reply == "hello spiffe://example.org/client" ? 0 : 1;
  } catch (const mesh::Error &e) {
    std::cerr << "example: " << e.what() << "\n";  // e.code(), e.detail()
    return 1;
  }
}
