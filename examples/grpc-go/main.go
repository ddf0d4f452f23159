// SPDX-License-Identifier: Apache-2.0

// Command grpc-go-example shows grpc-go (Debian golang-google-grpc-dev)
// running over libmesh: libmesh dials (mutual TLS with SPIFFE identities,
// the trust bundle and the peer check of the mesh config, ALPN "h2"), and
// grpc-go speaks HTTP/2 and gRPC on the connection it gets from
// (*mesh.Mesh).DialContext.  It calls the echo service of
// `meshctl grpc serve` with raw bytes (no protoc step: a bytes codec):
//
//	grpc-go-example -config client.json -to 127.0.0.1:PORT
//
// prints the unary answer, the bidi stream's answers, the status of an
// unknown method, and the server's SPIFFE ID as libmesh checked it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mesh "libmesh.dev/mesh"
)

// rawCodec sends and receives message bytes as they are (*[]byte).
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: %T is not *[]byte", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: %T is not *[]byte", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "raw" }

func main() {
	config := flag.String("config", "", "libmesh config file (identity, tls)")
	to := flag.String("to", "", "host:port of `meshctl grpc serve`")
	flag.Parse()
	if *config == "" || *to == "" {
		fmt.Fprintln(os.Stderr, "usage: grpc-go-example -config FILE -to HOST:PORT")
		os.Exit(2)
	}
	if err := run(*config, *to); err != nil {
		fmt.Fprintln(os.Stderr, "grpc-go-example:", err)
		os.Exit(1)
	}
}

func run(config, to string) error {
	m, err := mesh.NewFromFile(config)
	if err != nil {
		return err
	}
	defer m.Close()
	var mu sync.Mutex
	peer := ""
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := m.DialContext(ctx, "tcp", addr)
		if err == nil {
			mu.Lock()
			peer = c.(*mesh.Conn).PeerID()
			mu.Unlock()
		}
		return c, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The TLS is libmesh's: grpc-go sees an already secured connection.
	cc, err := grpc.DialContext(ctx, to, grpc.WithContextDialer(dial),
		grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return err
	}
	defer cc.Close()

	req, resp := []byte("hello from grpc-go"), []byte(nil)
	if err := cc.Invoke(ctx, "/mesh.v1.Echo/Echo", &req, &resp); err != nil {
		return err
	}
	fmt.Printf("Echo: %s\n", resp)

	desc := &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}
	st, err := cc.NewStream(ctx, desc, "/mesh.v1.Echo/Stream")
	if err != nil {
		return err
	}
	var got []string
	for _, w := range []string{"one", "two", "three"} {
		b := []byte(w)
		if err := st.SendMsg(&b); err != nil {
			return err
		}
		var r []byte
		if err := st.RecvMsg(&r); err != nil {
			return err
		}
		got = append(got, string(r))
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	var r []byte
	if err := st.RecvMsg(&r); !errors.Is(err, io.EOF) {
		return fmt.Errorf("stream end: %v", err)
	}
	fmt.Printf("Stream: %s\n", strings.Join(got, " "))

	err = cc.Invoke(ctx, "/mesh.v1.Echo/Nope", &req, &resp)
	if status.Code(err) != codes.Unimplemented {
		return fmt.Errorf("Nope: want Unimplemented, got %v", err)
	}
	fmt.Printf("Nope: %s\n", status.Code(err))
	mu.Lock()
	fmt.Printf("server: %s\n", peer)
	mu.Unlock()
	return nil
}
