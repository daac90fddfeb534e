package revocation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type failingSet struct{ Set }

func (failingSet) Revoke(context.Context, Entry) error {
	return errors.New("redis: connection refused")
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, client *http.Client, method, url, contentType string, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res.StatusCode, res.Header, b}
}

// onlyReader hides bytes.Reader's Len so the request is sent chunked,
// without a Content-Length.
type onlyReader struct{ io.Reader }

func TestHandler(t *testing.T) {
	t.Parallel()
	const ct = "application/json"
	big := `{"id":"agt_x","cutoff":"` + strings.Repeat(" ", MaxBodyBytes) + `"}`
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		chunked     bool
		status      int
		code        string
		desc        string // substring of error_description
	}{
		{"id", "POST", RevocationsPath, ct, `{"id":"agt_x"}`, false, 200, "", ""},
		{"charset", "POST", RevocationsPath, "application/json; charset=UTF-8", `{"id":"agt_x"}`, false, 200, "", ""},

		{"root", "POST", "/", ct, `{"id":"agt_x"}`, false, 404, "not_found", ""},
		{"trailing slash", "POST", RevocationsPath + "/", ct, `{"id":"agt_x"}`, false, 404, "not_found", ""},
		{"sub-path", "GET", RevocationsPath + "/agt_x", "", "", false, 404, "not_found", ""},
		{"GET", "GET", RevocationsPath, "", "", false, 405, "method_not_allowed", ""},
		{"PUT", "PUT", RevocationsPath, ct, `{"id":"agt_x"}`, false, 405, "method_not_allowed", ""},
		{"no content type", "POST", RevocationsPath, "", `{"id":"agt_x"}`, false, 415, "unsupported_media_type", ""},
		{"text/plain", "POST", RevocationsPath, "text/plain", `{"id":"agt_x"}`, false, 415, "unsupported_media_type", ""},
		{"other charset", "POST", RevocationsPath, "application/json; charset=latin1", `{"id":"agt_x"}`, false, 415, "unsupported_media_type", ""},
		{"too large", "POST", RevocationsPath, ct, big, false, 413, "invalid_request", "body"},
		{"too large chunked", "POST", RevocationsPath, ct, big, true, 413, "invalid_request", "body"},

		{"empty body", "POST", RevocationsPath, ct, ``, false, 400, "invalid_request", "body"},
		{"array", "POST", RevocationsPath, ct, `[{"id":"agt_x"}]`, false, 400, "invalid_request", "body"},
		{"malformed", "POST", RevocationsPath, ct, `{"id":"agt_x"`, false, 400, "invalid_request", "body: malformed"},
		{"trailing data", "POST", RevocationsPath, ct, `{"id":"agt_x"}{}`, false, 400, "invalid_request", "body: trailing"},
		{"unknown member", "POST", RevocationsPath, ct, `{"id":"agt_x","untl":"2030-01-01T00:00:00Z"}`, false, 400, "invalid_request", "body: unknown member"},
		{"case variant", "POST", RevocationsPath, ct, `{"ID":"agt_x"}`, false, 400, "invalid_request", "body: unknown member"},
		{"repeated member", "POST", RevocationsPath, ct, `{"id":"agt_x","id":"agt_y"}`, false, 400, "invalid_request", "id: appears twice"},
		{"missing id", "POST", RevocationsPath, ct, `{}`, false, 400, "invalid_request", "id: is required"},
		{"null id", "POST", RevocationsPath, ct, `{"id":null}`, false, 400, "invalid_request", "id: must be a string"},
		{"number id", "POST", RevocationsPath, ct, `{"id":7}`, false, 400, "invalid_request", "id: must be a string"},
		{"bad id", "POST", RevocationsPath, ct, `{"id":"agt x"}`, false, 400, "invalid_request", "id: must be printable"},
		{"unknown cutoff", "POST", RevocationsPath, ct, `{"cutoff":"aud","id":"x","before":"2026-05-01T00:00:00Z"}`, false, 400, "invalid_request", "cutoff:"},
		{"cutoff without before", "POST", RevocationsPath, ct, `{"cutoff":"sub","id":"usr_a"}`, false, 400, "invalid_request", "before: is required"},
		{"before without cutoff", "POST", RevocationsPath, ct, `{"id":"usr_a","before":"2026-05-01T00:00:00Z"}`, false, 400, "invalid_request", "before: is only allowed"},
		{"bad before", "POST", RevocationsPath, ct, `{"cutoff":"sub","id":"usr_a","before":"yesterday"}`, false, 400, "invalid_request", "before: must be an RFC 3339 time"},
		{"bad until", "POST", RevocationsPath, ct, `{"id":"agt_x","until":"2030-01-01"}`, false, 400, "invalid_request", "until: must be an RFC 3339 time"},
		{"until past", "POST", RevocationsPath, ct, `{"id":"agt_x","until":"2026-05-01T11:59:59Z"}`, false, 400, "invalid_request", "until: must be in the future"},
		{"until before before", "POST", RevocationsPath, ct, `{"cutoff":"sub","id":"usr_a","before":"2027-01-01T00:00:00Z","until":"2026-06-01T00:00:00Z"}`, false, 400, "invalid_request", "until: must be after before"},
		{"before out of range", "POST", RevocationsPath, ct, `{"cutoff":"sub","id":"usr_a","before":"9999-12-31T23:59:59Z"}`, false, 400, "invalid_request", "before: is too far"},
	}
	srv := httptest.NewServer(NewHandler(NewMemory(MemoryOptions{Now: newClock().Now}), HandlerOptions{Now: newClock().Now}))
	t.Cleanup(srv.Close)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = onlyReader{body}
			}
			res := do(t, srv.Client(), tt.method, srv.URL+tt.path, tt.contentType, body)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d; body %s", res.status, tt.status, res.body)
			}
			if got := res.header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q", got)
			}
			if tt.status == 405 && res.header.Get("Allow") != "POST" {
				t.Errorf("Allow %q, want POST", res.header.Get("Allow"))
			}
			if tt.status == 200 {
				return
			}
			var e struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if err := json.Unmarshal(res.body, &e); err != nil {
				t.Fatalf("error body %s: %v", res.body, err)
			}
			if e.Error != tt.code || !strings.Contains(e.Description, tt.desc) {
				t.Errorf("error %q %q, want %q containing %q", e.Error, e.Description, tt.code, tt.desc)
			}
		})
	}
}

// A revocation through the handler is what the gateway then sees, with the
// defaults filled in and the entry echoed as stored.
func TestHandlerRevokes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		want    Entry
		revoked func(Set) bool
	}{
		{
			"id, default until", `{"id":"agt_89"}`,
			Entry{ID: "agt_89", Until: t0.Add(20*time.Minute + 20*time.Second)},
			func(s Set) bool { return s.IsRevoked("agt_89") },
		},
		{
			"id, explicit until", `{"id":"dlg_a1","until":"2026-05-02T00:00:00+02:00"}`,
			Entry{ID: "dlg_a1", Until: time.Date(2026, 5, 1, 22, 0, 0, 0, time.UTC)},
			func(s Set) bool { return s.IsRevoked("dlg_a1") },
		},
		{
			"cutoff, before truncated", `{"cutoff":"sub","id":"usr_alice","before":"2026-05-01T11:00:00.75Z"}`,
			Entry{ID: "usr_alice", Cutoff: CutoffSubject, Before: t0.Add(-time.Hour), Until: t0.Add(20*time.Minute + 20*time.Second)},
			func(s Set) bool {
				return s.RevokedBefore(CutoffSubject, "usr_alice", t0.Add(-time.Hour).Unix()-1) &&
					!s.RevokedBefore(CutoffSubject, "usr_alice", t0.Add(-time.Hour).Unix()) &&
					!s.IsRevoked("usr_alice")
			},
		},
		{
			"future cutoff, until from before", `{"cutoff":"kid","id":"k1","before":"2026-05-01T13:00:00Z"}`,
			Entry{ID: "k1", Cutoff: CutoffKey, Before: t0.Add(time.Hour), Until: t0.Add(time.Hour + 20*time.Minute + 20*time.Second)},
			func(s Set) bool { return s.RevokedBefore(CutoffKey, "k1", t0.Unix()+60) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newClock()
			set := NewMemory(MemoryOptions{Now: c.Now})
			opts := HandlerOptions{MaxLifetime: 20 * time.Minute, Leeway: 10 * time.Second, Now: c.Now}
			srv := httptest.NewServer(NewHandler(set, opts))
			defer srv.Close()
			if tt.revoked(set) {
				t.Fatal("revoked before the request")
			}
			res := do(t, srv.Client(), "POST", srv.URL+RevocationsPath, "application/json", strings.NewReader(tt.body))
			if res.status != http.StatusOK {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			var got struct{ Revoked Entry }
			dec := json.NewDecoder(bytes.NewReader(res.body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("body %s: %v", res.body, err)
			}
			if got.Revoked.ID != tt.want.ID || got.Revoked.Cutoff != tt.want.Cutoff ||
				!got.Revoked.Before.Equal(tt.want.Before) || !got.Revoked.Until.Equal(tt.want.Until) {
				t.Errorf("revoked %+v, want %+v", got.Revoked, tt.want)
			}
			if !tt.revoked(set) {
				t.Error("the set does not answer for the revocation")
			}
		})
	}
}

func TestHandlerSetError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(NewHandler(failingSet{}, HandlerOptions{}))
	defer srv.Close()
	res := do(t, srv.Client(), "POST", srv.URL+RevocationsPath, "application/json", strings.NewReader(`{"id":"agt_x"}`))
	if res.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", res.status)
	}
	if bytes.Contains(res.body, []byte("redis")) {
		t.Errorf("503 body leaks the set's error: %s", res.body)
	}
}

// Error descriptions name the field, never the input.
func TestHandlerDoesNotEchoInput(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(NewHandler(NewMemory(MemoryOptions{}), HandlerOptions{}))
	defer srv.Close()
	for _, body := range []string{
		`{"<img src=qzx onerror=qzx()>":"x"}`,
		`{"id":"<img src=qzx onerror=qzx()> "}`,
		`{"cutoff":"<img src=qzx onerror=qzx()>","id":"x","before":"2026-05-01T00:00:00Z"}`,
		`{"id":"x","until":"<img src=qzx onerror=qzx()>"}`,
		`{"id":"x"}<img src=qzx onerror=qzx()>`,
	} {
		res := do(t, srv.Client(), "POST", srv.URL+RevocationsPath, "application/json", strings.NewReader(body))
		if res.status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", body, res.status)
		}
		if bytes.Contains(res.body, []byte("qzx")) {
			t.Errorf("%s: response echoes input: %s", body, res.body)
		}
	}
}

// FuzzDecodeEntry: whatever the body, decoding never panics, a refusal has
// a short printable reason, and an accepted entry survives a JSON round trip.
func FuzzDecodeEntry(f *testing.F) {
	for _, s := range []string{
		`{"id":"agt_x"}`,
		`{"id":"agt_x","until":"2030-01-01T00:00:00Z"}`,
		`{"cutoff":"sub","id":"usr_a","before":"2026-05-01T11:00:00.5Z"}`,
		`{"cutoff":"client_id","id":"cli_\u0041","before":"2026-05-01T11:00:00-07:00","until":"2027-01-01T00:00:00Z"}`,
		`{"id":"a","id":"b"}`, `{"id":1}`, `[]`, `{"id":"x"} `, `{"id":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	h := NewHandler(NewMemory(MemoryOptions{}), HandlerOptions{Now: newClock().Now}).(*handler)
	f.Fuzz(func(t *testing.T, body []byte) {
		e, fe := h.entry(body)
		if fe != nil {
			msg := fe.Error()
			if len(msg) > 120 {
				t.Fatalf("reason too long: %q", msg)
			}
			for i := 0; i < len(msg); i++ {
				if msg[i] < ' ' || msg[i] > '~' {
					t.Fatalf("reason not printable ASCII: %q", msg)
				}
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("accepted an invalid entry: %v", err)
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		again, fe := h.entry(b)
		if fe != nil || again != e {
			t.Fatalf("round trip of %s: %+v, %v; want %+v", b, again, fe, e)
		}
	})
}
