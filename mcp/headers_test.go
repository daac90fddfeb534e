package mcp

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestCheckHeaders(t *testing.T) {
	t.Parallel()
	toolCall := call("tööl")
	list := &Message{Kind: KindRequest, Method: MethodToolsList, ID: IntID(1)}
	note := &Message{Kind: KindNotification, Method: NotificationInitialized}
	resp := &Message{Kind: KindResponse, ID: IntID(1)}
	res := read("file:///a b")
	completion := &Message{Kind: KindRequest, Method: MethodCompletionComplete, ID: IntID(1), Name: "review", Target: TargetPrompt}
	b64 := func(s string) string { return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?=" }
	cases := []struct {
		name string
		h    http.Header
		m    *Message
		ok   bool
	}{
		{"none", http.Header{}, toolCall, true},
		{"method agrees", http.Header{"Mcp-Method": {"tools/call"}}, toolCall, true},
		{"both agree", http.Header{"Mcp-Method": {"tools/call"}, "Mcp-Name": {b64("tööl")}}, toolCall, true},
		{"plain name agrees", http.Header{"Mcp-Name": {"file:///a b"}}, res, true},
		{"notification method agrees", http.Header{"Mcp-Method": {NotificationInitialized}}, note, true},
		{"method disagrees", http.Header{"Mcp-Method": {"tools/list"}}, toolCall, false},
		{"method case differs", http.Header{"Mcp-Method": {"TOOLS/CALL"}}, toolCall, false},
		{"method empty", http.Header{"Mcp-Method": {""}}, toolCall, false},
		{"method on a response", http.Header{"Mcp-Method": {""}}, resp, false},
		{"name disagrees", http.Header{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"other"}}, toolCall, false},
		{"name not decoded", http.Header{"Mcp-Name": {"tööl"}}, call("t"), false},
		{"sentinel of another name", http.Header{"Mcp-Name": {b64("other")}}, toolCall, false},
		{"bad base64", http.Header{"Mcp-Name": {"=?base64?!!!?="}}, toolCall, false},
		{"padded base64", http.Header{"Mcp-Name": {"=?base64?YWI=?="}}, call("ab"), true},
		{"unpadded base64", http.Header{"Mcp-Name": {"=?base64?YWI?="}}, call("ab"), false},
		{"sentinel markers are case-sensitive", http.Header{"Mcp-Name": {"=?BASE64?" + base64.StdEncoding.EncodeToString([]byte("tööl")) + "?="}}, toolCall, false},
		{"name on a method without target", http.Header{"Mcp-Name": {"x"}}, list, false},
		// SEP-2243 mirrors params.name or params.uri; completion/complete
		// names its target in params.ref, so it has no Mcp-Name.
		{"completion method agrees", http.Header{"Mcp-Method": {"completion/complete"}}, completion, true},
		{"name on a completion, even its ref", http.Header{"Mcp-Name": {"review"}}, completion, false},
		{"subscribe name agrees", http.Header{"Mcp-Name": {"file:///a"}}, &Message{Kind: KindRequest, Method: MethodResourcesSubscribe, ID: IntID(1), Name: "file:///a", Target: TargetResource}, true},
		{"repeated method", http.Header{"Mcp-Method": {"tools/call", "tools/call"}}, toolCall, false},
		{"underscore spelling counts", http.Header{"Mcp-Name": {b64("tööl")}, "Mcp_name": {"other"}}, toolCall, false},
		{"underscore spelling alone", http.Header{"MCP_METHOD": {"tools/list"}}, toolCall, false},
		{"underscore spelling alone, agreeing", http.Header{"Mcp_Method": {"tools/call"}}, toolCall, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := CheckHeaders(c.h, c.m)
			if (err == nil) != c.ok {
				t.Fatalf("err %v, want ok %v", err, c.ok)
			}
			if err != nil && (!errors.Is(err, ErrHeaderMismatch) || HTTPStatus(err) != 400) {
				t.Errorf("error %v is not a 400 header mismatch", err)
			}
		})
	}
}

func TestSessionID(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		h    http.Header
		want string
		ok   bool
	}{
		{"absent", http.Header{}, "", true},
		{"present", http.Header{"Mcp-Session-Id": {"abc-123"}}, "abc-123", true},
		{"repeated", http.Header{"Mcp-Session-Id": {"a", "b"}}, "", false},
		{"underscore spelling too", http.Header{"Mcp-Session-Id": {"a"}, "Mcp_session_id": {"b"}}, "", false},
		{"space", http.Header{"Mcp-Session-Id": {"a b"}}, "", false},
		{"empty", http.Header{"Mcp-Session-Id": {""}}, "", false},
		{"non-ASCII", http.Header{"Mcp-Session-Id": {"é"}}, "", false},
		{"too long", http.Header{"Mcp-Session-Id": {strings.Repeat("a", MaxSessionIDLen+1)}}, "", false},
	}
	for _, c := range cases {
		got, err := SessionID(c.h)
		if got != c.want || (err == nil) != c.ok {
			t.Errorf("%s: %q, %v", c.name, got, err)
		}
		if err != nil && HTTPStatus(err) != 400 {
			t.Errorf("%s: status %d", c.name, HTTPStatus(err))
		}
	}
}

func TestPrepareToolsList(t *testing.T) {
	t.Parallel()
	req := http.Header{"Accept-Encoding": {"gzip, br"}}
	PrepareToolsListRequest(req)
	if got := req.Values("Accept-Encoding"); len(got) != 1 || got[0] != "identity" {
		t.Errorf("Accept-Encoding %q", got)
	}

	cases := []struct {
		name   string
		status int
		h      http.Header
		want   Format
		ok     bool
	}{
		{"json", 200, http.Header{"Content-Type": {"application/json"}, "Content-Length": {"42"}}, FormatJSON, true},
		{"json charset", 200, http.Header{"Content-Type": {"Application/JSON; charset=utf-8"}}, FormatJSON, true},
		{"sse", 200, http.Header{"Content-Type": {"text/event-stream"}}, FormatSSE, true},
		{"identity", 200, http.Header{"Content-Type": {"text/event-stream"}, "Content-Encoding": {"identity"}}, FormatSSE, true},
		{"gzip", 200, http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}, FormatNone, false},
		{"text", 200, http.Header{"Content-Type": {"text/plain"}}, FormatNone, false},
		{"no type", 200, http.Header{}, FormatNone, false},
		{"bad type", 200, http.Header{"Content-Type": {";;"}}, FormatNone, false},
		{"error status", 404, http.Header{"Content-Type": {"text/plain"}}, FormatNone, true},
		{"accepted", 202, http.Header{}, FormatNone, true},
	}
	for _, c := range cases {
		f, err := PrepareToolsListResponse(c.status, c.h)
		if f != c.want || (err == nil) != c.ok {
			t.Errorf("%s: %v, %v", c.name, f, err)
		}
		if err != nil && HTTPStatus(err) != 502 {
			t.Errorf("%s: status %d", c.name, HTTPStatus(err))
		}
		if got := c.h.Get("Cache-Control"); got != "private, no-store" {
			t.Errorf("%s: Cache-Control %q", c.name, got)
		}
		if f != FormatNone && c.h.Get("Content-Length") != "" {
			t.Errorf("%s: Content-Length kept", c.name)
		}
	}
}
