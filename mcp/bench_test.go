package mcp

import (
	"io"
	"strconv"
	"strings"
	"testing"
)

// A tools/call as the MCP SDKs send it (2026-07-28 adds _meta).
const benchCall = `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"src/gateway/gateway.go","ref":"main"},"_meta":{"progressToken":42,"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`

func BenchmarkDecode(b *testing.B) {
	body := []byte(benchCall)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	rules := benchRules(b)
	m, err := Decode([]byte(benchCall))
	if err != nil {
		b.Fatal(err)
	}
	have := scopes("mcp:review", "pullrequest:read", "repository:read")
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := Decide(rules, have, &m); !ok {
			b.Fatal("denied")
		}
	}
}

func benchRules(b *testing.B) *Rules {
	r := Rules{}
	for i := range 50 {
		r.Tools = append(r.Tools, Rule{"tool_" + strconv.Itoa(i), scopes("repository:write")})
	}
	r.Tools = append(r.Tools, Rule{"read_file", scopes("repository:read")})
	return mustRules(b, r)
}

// benchList is a tools/list response of 51 tools with realistic schemas,
// of which the token may call one.
func benchList() string {
	var s strings.Builder
	s.WriteString(`{"jsonrpc":"2.0","id":9,"result":{"tools":[`)
	for i := range 51 {
		if i > 0 {
			s.WriteByte(',')
		}
		name := "tool_" + strconv.Itoa(i)
		if i == 50 {
			name = "read_file"
		}
		s.WriteString(`{"name":"` + name + `","description":"Does something useful with a repository: reads, writes, or lists.","inputSchema":{"type":"object","properties":{"path":{"type":"string","description":"Path in the repository"},"ref":{"type":"string"}},"required":["path"]},"annotations":{"readOnlyHint":true}}`)
	}
	s.WriteString(`]}}`)
	return s.String()
}

func BenchmarkFilterJSON(b *testing.B) {
	rules := benchRules(b)
	body := []byte(benchList())
	cfg := FilterConfig{Format: FormatJSON, Request: IntID(9), Rules: rules, Scopes: scopes("repository:read")}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		f := NewToolsFilter(io.Discard, cfg)
		if _, err := f.Write(body); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFilterSSE(b *testing.B) {
	rules := benchRules(b)
	stream := []byte("id: 1\ndata:\n\n" +
		`data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":9,"progress":1}}` + "\n\n" +
		"event: message\ndata: " + benchList() + "\n\n")
	cfg := FilterConfig{Format: FormatSSE, Request: IntID(9), Rules: rules, Scopes: scopes("repository:read")}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		f := NewToolsFilter(io.Discard, cfg)
		// As reverse_proxy writes: 32 KiB at a time.
		for p := stream; len(p) > 0; {
			n := min(len(p), 32<<10)
			if _, err := f.Write(p[:n]); err != nil {
				b.Fatal(err)
			}
			p = p[n:]
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
