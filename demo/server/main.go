// Command kavach-demo-upstream is the upstream of `make demo`: the small
// code-review MCP server of DESIGN.md §10, written with the official MCP Go
// SDK, at /mcp, and a small REST API at /api/, sharing one in-memory
// repository. It checks no token: the Kavach gateway in front of it does,
// and tells it who is calling in the Kavach-Subject, Kavach-Actor,
// Kavach-Chain and Kavach-Scope headers, which every answer echoes.
//
// It trusts those headers, so it listens on loopback only: in a real
// deployment, only the gateway may reach the upstream.
//
//	go run ./demo/server [-addr 127.0.0.1:8082] [-sse] [-stateless]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kavach-demo-upstream:", err)
		os.Exit(1)
	}
}

func defaultAddr() string {
	if a := os.Getenv("KAVACH_DEMO_UPSTREAM_ADDR"); a != "" {
		return a
	}
	if p := os.Getenv("KAVACH_DEMO_UPSTREAM_PORT"); p != "" {
		return net.JoinHostPort("127.0.0.1", p)
	}
	return "127.0.0.1:8082"
}

func run(args []string) error {
	fs := flag.NewFlagSet("kavach-demo-upstream", flag.ContinueOnError)
	addr := fs.String("addr", defaultAddr(), "loopback address to listen on (env KAVACH_DEMO_UPSTREAM_ADDR, or KAVACH_DEMO_UPSTREAM_PORT)")
	sse := fs.Bool("sse", false, "answer MCP POSTs with an SSE stream instead of a JSON body")
	stateless := fs.Bool("stateless", false, "stateless MCP transport (no Mcp-Session-Id)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := loopbackOnly(*addr); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newHandler(NewRepo(), log, *stateless, *sse), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("kavach demo upstream listening", "mcp", "http://"+ln.Addr().String()+"/mcp", "api", "http://"+ln.Addr().String()+"/api/repos/"+repoName)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("kavach demo upstream stopping")
	// MCP GET streams stay open: give requests a moment, then close.
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	_ = srv.Close()
	return nil
}

// newHandler serves /mcp (MCP, streamable HTTP) and /api/ (REST) from one
// repository; anything else is a 404.
func newHandler(repo *Repo, log *slog.Logger, stateless, sse bool) http.Handler {
	mux := http.NewServeMux()
	mcpHandler := newMCPHandler(newMCPServer(repo, log), stateless, sse)
	mux.Handle("/mcp", mcpHandler)
	mux.Handle("/mcp/", mcpHandler)
	mux.Handle("/api/", newAPI(repo, log))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Kavach demo upstream: MCP at /mcp, REST at /api/repos/%s/…\n", repoName)
	})
	return mux
}

// loopbackOnly refuses an address other machines could reach: this
// server believes whatever Kavach-* headers it is sent.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %v", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-addr %q: listen on a loopback address (127.0.0.1:port): this server trusts the Kavach-* headers it receives, so only the gateway may reach it", addr)
}
