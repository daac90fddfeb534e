package mcp_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/kavachgate/kavach/mcp"
)

// The demo route of DESIGN.md §8: each tool of the code-review server has
// its scope.
func demoRules() *mcp.Rules {
	rules := &mcp.Rules{Tools: []mcp.Rule{
		{Pattern: "read_diff", Scopes: []string{"pullrequest:read"}},
		{Pattern: "read_file", Scopes: []string{"repository:read"}},
		{Pattern: "write_file", Scopes: []string{"repository:write"}},
		{Pattern: "post_comment", Scopes: []string{"comment:write"}},
	}}
	if err := rules.Compile(); err != nil {
		panic(err)
	}
	return rules
}

func Example() {
	rules := demoRules()
	reviewer := []string{"mcp:review", "pullrequest:read", "repository:read"}

	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"main.go"}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"write_file","arguments":{"path":"main.go"}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"Tools/Call","params":{"name":"read_file"}}`,
		`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"read_file","Name":"write_file"}}`,
		`[{"jsonrpc":"2.0","id":5,"method":"ping"}]`,
	} {
		msg, err := mcp.Decode([]byte(body))
		if err != nil {
			fmt.Println(mcp.HTTPStatus(err), err.(*mcp.Error).Public)
			continue
		}
		header := http.Header{"Mcp-Method": {msg.Method}}
		if err := mcp.CheckHeaders(header, &msg); err != nil {
			fmt.Println(mcp.HTTPStatus(err))
			continue
		}
		ok, missing := mcp.Decide(rules, reviewer, &msg)
		switch {
		case ok:
			fmt.Println(msg.Method, msg.Name, "allowed")
		case missing != "":
			fmt.Println(msg.Method, msg.Name, "403 insufficient_scope, needs", mcp.RequiredScopes(rules, &msg))
		default:
			fmt.Println(msg.Method, "403")
		}
	}
	// Output:
	// tools/call read_file allowed
	// tools/call write_file 403 insufficient_scope, needs [repository:write]
	// Tools/Call 403
	// 400 invalid params for this method
	// 400 JSON-RPC batches are not supported
}

func ExampleToolsFilter() {
	reviewer := []string{"pullrequest:read", "repository:read"}
	upstream := `{"jsonrpc":"2.0","id":7,"result":{"tools":[` +
		`{"name":"read_diff"},{"name":"read_file"},{"name":"write_file"},{"name":"post_comment"}]}}`

	header := http.Header{"Content-Type": {"application/json"}, "Content-Length": {"120"}}
	format, err := mcp.PrepareToolsListResponse(http.StatusOK, header)
	if err != nil {
		panic(err) // the gateway answers 502
	}
	err = mcp.FilterTools(os.Stdout, strings.NewReader(upstream), mcp.FilterConfig{
		Format:  format,
		Request: mcp.IntID(7), // the id of the tools/list request
		Rules:   demoRules(),
		Scopes:  reviewer,
	})
	fmt.Println()
	fmt.Println(err, header.Get("Cache-Control"))
	// Output:
	// {"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"read_diff"},{"name":"read_file"}]}}
	// <nil> private, no-store
}

func ExampleMemorySessions() {
	ctx := context.Background()
	sessions := mcp.NewMemorySessions(0, 0) // defaults: 65,536 bindings, 24 h idle
	// Issuer, user, the root actor, then the grant of each later link.
	orchestrator := mcp.ChainKey("http://127.0.0.1:8081", "usr_alice", "agt_orch")
	reviewer := mcp.ChainKey("http://127.0.0.1:8081", "usr_alice", "agt_orch", "dlg_b2")

	// The upstream answered orchestrator's initialize with Mcp-Session-Id: s-1.
	if err := sessions.Bind(ctx, "s-1", orchestrator); err != nil {
		fmt.Println(err) // the gateway refuses the initialize response (502)
	}

	fmt.Println(sessions.Check(ctx, "s-1", orchestrator))   // forward
	fmt.Println(sessions.Check(ctx, "s-1", reviewer))       // another chain: 403
	fmt.Println(sessions.Check(ctx, "s-unknown", reviewer)) // never bound, expired or evicted: 404
	// Output:
	// own <nil>
	// other <nil>
	// unknown <nil>
}

// How the gateway answers a refusal: the status of the error and a
// JSON-RPC error body naming the request.
func ExampleErrorBodyFor() {
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"Tools/Call","params":{"name":"read_file"}}`,
		`{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call"`,
	} {
		msg, err := mcp.Decode([]byte(body))
		if err == nil {
			err = mcp.CheckHeaders(http.Header{}, &msg)
		}
		if err == nil {
			err = mcp.CheckMethod(&msg)
		}
		fmt.Println(mcp.HTTPStatus(err), string(mcp.ErrorBodyFor(err)))
	}
	// A denial by the rules: 403 with WWW-Authenticate, and this body.
	fmt.Println(string(mcp.ErrorBody(mcp.IntID(3), mcp.CodeAccessDenied, "insufficient scope")))
	// Output:
	// 404 {"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"method not found"}}
	// 400 {"jsonrpc":"2.0","id":"a","error":{"code":-32602,"message":"invalid params for this method"}}
	// 400 {"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"malformed JSON-RPC message"}}
	// {"jsonrpc":"2.0","id":3,"error":{"code":-32010,"message":"insufficient scope"}}
}
