package mcp

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

// Every refusal of this package maps to one HTTP status and one JSON-RPC
// code, and carries the request id exactly when JSON-RPC 2.0 §5 lets the
// answer name it.
func TestErrorKinds(t *testing.T) {
	t.Parallel()
	decode := func(body string) error {
		_, err := Decode([]byte(body))
		return err
	}
	headers := func(h http.Header, body string) error {
		m, err := Decode([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return CheckHeaders(h, &m)
	}
	method := func(body string) error {
		m, err := Decode([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return CheckMethod(&m)
	}
	_, tooLarge := ReadBody(strings.NewReader("{}"), 1)
	_, readErr := ReadBody(iotest.ErrReader(errors.New("reset")), 0)
	_, badSession := SessionID(http.Header{"Mcp-Session-Id": {"a b"}})
	_, upstreamErr := PrepareToolsListResponse(200, http.Header{"Content-Type": {"text/plain"}})
	cases := []struct {
		name   string
		err    error
		kind   error
		status int
		code   int
		id     ID
		detail string // in the detail
	}{
		{"empty", decode(``), ErrSyntax, 400, CodeParseError, ID{}, ""},
		{"not UTF-8", decode("{\"a\":\"\xff\"}"), ErrSyntax, 400, CodeParseError, ID{}, ""},
		{"truncated", decode(`{"jsonrpc":"2.0","id":1,"method":"ping"`), ErrSyntax, 400, CodeParseError, ID{}, ""},
		{"garbage", decode(`xyz`), ErrSyntax, 400, CodeParseError, ID{}, ""},
		{"trailing data", decode(`{"jsonrpc":"2.0","id":1,"method":"ping"}x`), ErrSyntax, 400, CodeParseError, ID{}, ""},
		{"duplicate member", decode(`{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}`), ErrSyntax, 400, CodeParseError, ID{}, "duplicate"},
		{"lone surrogate", decode(`{"jsonrpc":"2.0","id":"\ud800","method":"ping"}`), ErrSyntax, 400, CodeParseError, ID{}, ""},
		// JSON, but not a Request object: -32600 with a null id (§5).
		{"number", decode(`1`), ErrInvalid, 400, CodeInvalidRequest, ID{}, ""},
		{"null", decode(`null`), ErrInvalid, 400, CodeInvalidRequest, ID{}, ""},
		{"batch", decode(`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`), ErrBatch, 400, CodeInvalidRequest, ID{}, ""},
		{"jsonrpc 1.0", decode(`{"jsonrpc":"1.0","id":1,"method":"ping"}`), ErrInvalid, 400, CodeInvalidRequest, ID{}, ""},
		{"case variant member", decode(`{"jsonrpc":"2.0","id":1,"Method":"ping"}`), ErrInvalid, 400, CodeInvalidRequest, ID{}, ""},
		{"id null", decode(`{"jsonrpc":"2.0","id":null,"method":"ping"}`), ErrInvalid, 400, CodeInvalidRequest, ID{}, ""},
		// A valid request of a known method with bad params: -32602, id kept.
		{"tools/call without name", decode(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}}`), ErrInvalidParams, 400, CodeInvalidParams, IntID(7), "params.name"},
		{"resources/read uri number", decode(`{"jsonrpc":"2.0","id":"r","method":"resources/read","params":{"uri":1}}`), ErrInvalidParams, 400, CodeInvalidParams, StringID("r"), "params.uri"},
		{"completion of a tool", decode(`{"jsonrpc":"2.0","id":"c","method":"completion/complete","params":{"ref":{"type":"ref/tool","name":"x"}}}`), ErrInvalidParams, 400, CodeInvalidParams, StringID("c"), "params.ref.type"},
		{"too large", tooLarge, ErrTooLarge, 413, CodeInvalidRequest, ID{}, ""},
		{"header mismatch", headers(http.Header{"Mcp-Name": {"write_file"}}, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"read_file"}}`), ErrHeaderMismatch, 400, CodeHeaderMismatch, IntID(5), ""},
		{"header mismatch on a notification", headers(http.Header{"Mcp-Method": {"x"}}, `{"jsonrpc":"2.0","method":"notifications/initialized"}`), ErrHeaderMismatch, 400, CodeHeaderMismatch, ID{}, ""},
		{"unknown method", method(`{"jsonrpc":"2.0","id":3,"method":"tasks/get","params":{}}`), ErrUnknownMethod, 404, CodeMethodNotFound, IntID(3), `"tasks/get"`},
		{"case variant method", method(`{"jsonrpc":"2.0","id":"m","method":"Tools/Call","params":{"name":"x"}}`), ErrUnknownMethod, 404, CodeMethodNotFound, StringID("m"), "case variant of tools/call"},
		{"server-only method", method(`{"jsonrpc":"2.0","id":4,"method":"sampling/createMessage"}`), ErrUnknownMethod, 404, CodeMethodNotFound, IntID(4), ""},
		{"notification method as a request", method(`{"jsonrpc":"2.0","id":4,"method":"notifications/initialized"}`), ErrUnknownMethod, 404, CodeMethodNotFound, IntID(4), "notification"},
		{"request method as a notification", method(`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}`), ErrUnknownMethod, 404, CodeMethodNotFound, ID{}, "request"},
		{"unknown notification", method(`{"jsonrpc":"2.0","method":"notifications/message"}`), ErrUnknownMethod, 404, CodeMethodNotFound, ID{}, ""},
		{"bad session id", badSession, ErrInvalid, 400, CodeInvalidRequest, ID{}, ""},
		{"upstream", upstreamErr, ErrUpstream, 502, CodeInternalError, ID{}, ""},
		{"not ours", readErr, nil, 500, CodeInternalError, ID{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.err == nil {
				t.Fatal("no error")
			}
			if c.kind != nil && !errors.Is(c.err, c.kind) {
				t.Errorf("error %v, want kind %v", c.err, c.kind)
			}
			if got := HTTPStatus(c.err); got != c.status {
				t.Errorf("HTTPStatus %d, want %d", got, c.status)
			}
			if got := ErrorCode(c.err); got != c.code {
				t.Errorf("ErrorCode %d, want %d", got, c.code)
			}
			var e *Error
			if errors.As(c.err, &e) {
				if e.ID != c.id {
					t.Errorf("ID %v, want %v", e.ID, c.id)
				}
				if !strings.Contains(e.Detail, c.detail) {
					t.Errorf("detail %q, want it to contain %q", e.Detail, c.detail)
				}
			}
		})
	}
	// The narrower kinds are still ErrInvalid, so callers that only ask
	// "400?" keep working.
	for _, k := range []error{ErrSyntax, ErrInvalidParams} {
		if !errors.Is(k, ErrInvalid) {
			t.Errorf("%v is not ErrInvalid", k)
		}
	}
	if errors.Is(ErrUnknownMethod, ErrInvalid) {
		t.Error("ErrUnknownMethod is ErrInvalid (it is a 404, not a 400)")
	}
}

// CheckMethod passes every known method of the right kind, and responses.
func TestCheckMethodPasses(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p"}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"server/discover"}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":"s1","result":{}}`,
	} {
		m, err := Decode([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckMethod(&m); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
	if err := CheckMethod(nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil message: %v", err)
	}
}
