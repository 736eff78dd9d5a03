// Calls made for a request from other goroutines, for sniff's Go uprobe
// tests (collector/tests/go_uprobes.rs). Standard library only; Go 1.19,
// GOPATH mode.
//
//	handoff [ADDR]    serve on ADDR (default 127.0.0.1:0); prints the address
//
//	/echo    answers "ok"
//	/child   calls /echo from a goroutine it starts (and waits for it)
//	/worker  hands the call to /echo to a worker goroutine started by main,
//	         through a channel (and waits for the answer)
//	/fail    answers 503
//	/deep    calls /echo from a goroutine it starts, D frames deep
//	         (?d=D): some depth makes roundTrip grow the goroutine's
//	         stack, and Go re-runs it from its entry
//	/raw     sends GET /echo by hand over a TCP connection, not through
//	         net/http's client (uprobes do not see that call)
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
)

//go:noinline
func deep(d int, url string) int {
	var pad [8]int
	pad[d%8] = d
	if d <= 0 {
		return get(url) + pad[0]
	}
	return deep(d-1, url) + pad[d%8] - d
}

type job struct {
	url  string
	done chan int
}

func get(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 502
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

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
	base := "http://" + ln.Addr().String()
	jobs := make(chan job)
	go func() {
		for j := range jobs {
			j.done <- get(j.url)
		}
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/child", func(w http.ResponseWriter, r *http.Request) {
		var wg sync.WaitGroup
		status := 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			status = get(base + "/echo")
		}()
		wg.Wait()
		w.WriteHeader(status)
	})
	mux.HandleFunc("/worker", func(w http.ResponseWriter, r *http.Request) {
		j := job{url: base + "/echo", done: make(chan int)}
		jobs <- j
		w.WriteHeader(<-j.done)
	})
	mux.HandleFunc("/deep", func(w http.ResponseWriter, r *http.Request) {
		d := 0
		fmt.Sscan(r.URL.Query().Get("d"), &d)
		done := make(chan int)
		go func() { done <- deep(d, base+"/echo") }()
		w.WriteHeader(<-done)
	})
	mux.HandleFunc("/raw", func(w http.ResponseWriter, r *http.Request) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /echo HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", ln.Addr())
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
	})
	fmt.Println(ln.Addr().String())
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
