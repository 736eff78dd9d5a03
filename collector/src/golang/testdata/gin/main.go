// The seed-000 demo: a gin server whose /handle calls its own /echo through
// net/http's client, for sniff's Go binary analysis tests. Debian's gin
// (golang-github-gin-gonic-gin-dev), Go 1.19, GOPATH mode.
//
//	gin [ADDR]    serve on ADDR (default 127.0.0.1:0)
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"

	"github.com/gin-gonic/gin"
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
	base := "http://" + ln.Addr().String()
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/echo", func(c *gin.Context) {
		c.String(http.StatusOK, "%s %s\n", c.Request.Method, c.Request.URL.Path)
	})
	r.GET("/handle", func(c *gin.Context) {
		resp, err := http.Get(base + "/echo")
		if err != nil {
			c.String(http.StatusBadGateway, "%v\n", err)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		c.Data(resp.StatusCode, "text/plain", body)
	})
	fmt.Println(ln.Addr().String())
	if err := r.RunListener(ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
