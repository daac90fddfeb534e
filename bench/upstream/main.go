// Command upstream is the trivial upstream of `make bench`: every request
// gets "ok", except a POST to /mcp, which gets a canned MCP answer (see
// mcpHandler). It listens on -addr (default: a free loopback port) and
// prints the address it listens on as its first line of output.
package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
	if !ln.Addr().(*net.TCPAddr).IP.IsLoopback() {
		fmt.Fprintln(os.Stderr, "upstream: refusing a non-loopback address")
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	body := []byte("ok")
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/mcp" && r.Method == http.MethodPost {
				mcpHandler(w, r)
				return
			}
			h := w.Header()
			h["Content-Type"] = []string{"text/plain; charset=utf-8"}
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	fmt.Fprintln(os.Stderr, "upstream:", srv.Serve(ln))
	os.Exit(1)
}

// The results the demo's MCP server (demo/server, official Go SDK) gives
// for tools/list and for tools/call of read_diff, byte for byte as the SDK
// encodes them (captured once; the tool list is what the gateway filters).
var (
	//go:embed mcp_tools_list.json
	toolsListResult []byte
	//go:embed mcp_tools_call.json
	toolsCallResult []byte
)

// mcpHandler answers one JSON-RPC request of MCP's streamable HTTP
// transport, stateless, with a JSON body: the canned result for tools/list
// and tools/call, "method not found" for anything else, 202 for a
// notification. It reads only the request's id and method, so that what
// `make bench` measures is the gateway, not an MCP server: the SDK's own
// server spends far more CPU per call than the gateway does, and on the
// bench's shared core it would be the bottleneck of both configurations.
func mcpHandler(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	if err == nil {
		err = json.Unmarshal(data, &msg)
	}
	if err != nil {
		http.Error(w, "bad JSON-RPC request", http.StatusBadRequest)
		return
	}
	if len(msg.ID) == 0 {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	out := make([]byte, 0, 64+len(toolsListResult))
	out = append(out, `{"jsonrpc":"2.0","id":`...)
	out = append(out, msg.ID...)
	switch msg.Method {
	case "tools/list":
		out = append(out, `,"result":`...)
		out = append(out, bytes.TrimSpace(toolsListResult)...)
	case "tools/call":
		out = append(out, `,"result":`...)
		out = append(out, bytes.TrimSpace(toolsCallResult)...)
	default:
		out = append(out, `,"error":{"code":-32601,"message":"method not found"}`...)
	}
	out = append(out, "}\n"...)
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	_, _ = w.Write(out)
}
