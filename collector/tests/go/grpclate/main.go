// A grpc-go server and client in one binary whose client connects only
// when the first call is asked for, for sniff's Go uprobe tests
// (collector/tests/go_uprobes.rs): the connection opens after sniff
// started. Debian's golang-google-grpc-dev, Go 1.19, GOPATH mode.
//
//	grpclate [ADDR]    serve on ADDR (default 127.0.0.1:0), print it; each
//	                   line read on stdin makes one Check call to ourselves
//	                   and prints its answer
package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	addr := "127.0.0.1:0"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	fmt.Println(ln.Addr().String())

	var client healthpb.HealthClient
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		if client == nil {
			conn, err := grpc.Dial(ln.Addr().String(), grpc.WithInsecure(), grpc.WithBlock())
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			client = healthpb.NewHealthClient(conn)
		}
		resp, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(resp.GetStatus())
	}
}
