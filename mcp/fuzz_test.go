package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzDecode: Decode never panics, and whatever it accepts is valid JSON
// that encoding/json — case-insensitive and last-duplicate-wins, as Go MCP
// servers read it — reads as the same message: exactly one method member
// for a request or notification (none for a response), with the method and
// the target Decode reported. Seeds: testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		callBody,
		`{"jsonrpc":"2.0","id":"x","method":"resources/read","params":{"uri":"file:///a"}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":1,"result":{}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"n\u0061me":"a","Name":"b"}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`,
		`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"review"},"argument":{"name":"a","value":"b"}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"file:///repo/{path}"}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"a","Name":"b"}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		m, err := Decode(body)
		if !bytes.Equal(body, orig) {
			t.Fatal("Decode changed its input")
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || HTTPStatus(err) != 400 {
				t.Fatalf("error %v (%T) is not a 400 *Error", err, err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		var members map[string]json.RawMessage
		if err := json.Unmarshal(body, &members); err != nil {
			t.Fatalf("accepted %q, encoding/json: %v", body, err)
		}
		methods := 0
		for k := range members {
			if strings.EqualFold(k, "method") {
				methods++
			}
		}
		var v struct {
			Method *string
			Params json.RawMessage
		}
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("accepted %q, encoding/json: %v", body, err)
		}
		switch m.Kind {
		case KindRequest, KindNotification:
			if methods != 1 || v.Method == nil || *v.Method != m.Method {
				t.Fatalf("%q: Decode read method %q, encoding/json %d members, %v", body, m.Method, methods, v.Method)
			}
		case KindResponse:
			if methods != 0 || m.Method != "" {
				t.Fatalf("%q: a response with a method", body)
			}
		default:
			t.Fatalf("%q: accepted with kind %v", body, m.Kind)
		}
		if m.Name != "" {
			var p struct {
				Name, URI *string
				Ref       *struct{ Type, Name, URI *string }
			}
			if err := json.Unmarshal(v.Params, &p); err != nil {
				t.Fatalf("%q: params: %v", body, err)
			}
			var got *string
			switch c := classOf(m.Method); {
			case c == completionRequest:
				if p.Ref == nil || p.Ref.Type == nil {
					t.Fatalf("%q: Decode read a completion of %v %q, encoding/json no ref type", body, m.Target, m.Name)
				}
				switch *p.Ref.Type {
				case "ref/prompt":
					got = p.Ref.Name
					if m.Target != TargetPrompt || p.Ref.URI != nil {
						t.Fatalf("%q: Decode read target kind %v", body, m.Target)
					}
				case "ref/resource":
					got = p.Ref.URI
					if m.Target != TargetResource || p.Ref.Name != nil {
						t.Fatalf("%q: Decode read target kind %v", body, m.Target)
					}
				}
			case c.targetMember() == "uri":
				got = p.URI
			default:
				got = p.Name
			}
			if got == nil || *got != m.Name {
				t.Fatalf("%q: Decode read target %q, encoding/json %v", body, m.Name, got)
			}
		} else if m.Target != TargetNone {
			t.Fatalf("%q: target kind %v without a name", body, m.Target)
		}
	})
}

// FuzzToolsFilterSSE: the SSE filter never panics, and its verdict and
// output do not depend on how the stream is split into writes.
func FuzzToolsFilterSSE(f *testing.F) {
	in, _ := sseStream("\n")
	f.Add([]byte(in), uint8(3))
	in, _ = sseStream("\r\n")
	f.Add([]byte(in), uint8(1))
	f.Add([]byte("\xEF\xBB\xBF\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"tools\":[{\"name\":\"read_file\"},{\"name\":\"x\"}]}}\r\r"), uint8(2))
	rules := demoRules(f)
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		cfg := FilterConfig{Request: IntID(3), Rules: rules, Scopes: scopes("files:read"), MaxSize: 4096}
		whole, errWhole := filterSSE(t, string(stream), 0, cfg)
		split, errSplit := filterSSE(t, string(stream), int(chunk%16)+1, cfg)
		if (errWhole == nil) != (errSplit == nil) {
			t.Fatalf("whole: %v, in chunks of %d: %v", errWhole, chunk%16+1, errSplit)
		}
		if errWhole == nil && whole != split {
			t.Fatalf("whole %q, in chunks %q", whole, split)
		}
	})
}
