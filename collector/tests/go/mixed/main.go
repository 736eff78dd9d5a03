// A net/http handler that calls a gRPC service, for sniff's Go uprobe
// tests (collector/tests/go_uprobes.rs). The gRPC server (the standard
// health service) runs in the same binary. Debian's golang-google-grpc-dev,
// Go 1.19, GOPATH mode.
//
//	mixed    serve HTTP and gRPC on two ports of 127.0.0.1; prints
//	         "HTTPADDR GRPCADDR"
//
//	/grpc    makes one Check call to the gRPC server and answers its status
//	/go      makes the call from a goroutine it starts
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(gl)
	conn, err := grpc.Dial(gl.Addr().String(), grpc.WithInsecure())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	client := healthpb.NewHealthClient(conn)
	check := func() string {
		resp, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil {
			return err.Error()
		}
		return resp.GetStatus().String()
	}

	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/grpc", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, check())
	})
	mux.HandleFunc("/go", func(w http.ResponseWriter, r *http.Request) {
		done := make(chan string)
		go func() { done <- check() }()
		fmt.Fprintln(w, <-done)
	})
	fmt.Println(hl.Addr().String(), gl.Addr().String())
	if err := http.Serve(hl, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
