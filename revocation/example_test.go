package revocation_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/kavachgate/kavach/revocation"
)

// Revoking one agent of a chain stops every token that carries it; a sub
// cutoff stops every earlier token of a user.
func Example() {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	set := revocation.NewMemory(revocation.MemoryOptions{Now: func() time.Time { return now }})
	ctx := context.Background()
	until := revocation.DefaultUntil(now, time.Hour, 30*time.Second)

	if err := set.Revoke(ctx, revocation.Entry{ID: "agt_89", Until: until}); err != nil {
		fmt.Println(err)
	}

	// The gateway's check for a token of agt_123, child of agt_89 (DESIGN.md §4 step 5).
	revoked := func(jti string, chain, agents []string, sub string, iat time.Time) bool {
		if set.IsRevoked(jti) || set.RevokedBefore(revocation.CutoffSubject, sub, iat.Unix()) {
			return true
		}
		for _, id := range append(chain, agents...) {
			if set.IsRevoked(id) {
				return true
			}
		}
		return false
	}
	fmt.Println("reviewer:", revoked("tok_1", []string{"dlg_a1", "dlg_b2"}, []string{"agt_89", "agt_123"}, "usr_alice", now))
	fmt.Println("other agent:", revoked("tok_2", []string{"dlg_c3"}, []string{"agt_7"}, "usr_alice", now))

	if err := set.Revoke(ctx, revocation.Entry{ID: "usr_alice", Cutoff: revocation.CutoffSubject, Before: now, Until: until}); err != nil {
		fmt.Println(err)
	}
	fmt.Println("other agent after cutoff:", revoked("tok_2", []string{"dlg_c3"}, []string{"agt_7"}, "usr_alice", now.Add(-time.Second)))
	fmt.Println("token issued at the cutoff:", revoked("tok_3", []string{"dlg_c3"}, []string{"agt_7"}, "usr_alice", now))

	now = until // entries expire by themselves
	fmt.Println("after until:", set.IsRevoked("agt_89"), set.Len())
	// Output:
	// reviewer: true
	// other agent: false
	// other agent after cutoff: true
	// token issued at the cutoff: false
	// after until: false 0
}

func ExampleNewHandler() {
	now := func() time.Time { return time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC) }
	set := revocation.NewMemory(revocation.MemoryOptions{Now: now})
	srv := httptest.NewServer(revocation.NewHandler(set, revocation.HandlerOptions{Now: now}))
	defer srv.Close()

	for _, body := range []string{
		`{"id":"agt_89"}`,
		`{"cutoff":"sub","id":"usr_alice","before":"2026-05-01T11:30:00Z"}`,
		`{"id":"agt_89","untill":"2026-05-02T00:00:00Z"}`,
	} {
		res, err := http.Post(srv.URL+"/v1/revocations", "application/json", strings.NewReader(body))
		if err != nil {
			fmt.Println(err)
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Print(res.StatusCode, " ", string(b))
	}
	fmt.Println(set.IsRevoked("agt_89"))
	// Output:
	// 200 {"revoked":{"id":"agt_89","until":"2026-05-01T13:01:00Z"}}
	// 200 {"revoked":{"id":"usr_alice","cutoff":"sub","before":"2026-05-01T11:30:00Z","until":"2026-05-01T13:01:00Z"}}
	// 400 {"error":"invalid_request","error_description":"body: unknown member (expected \"id\", \"cutoff\", \"before\" or \"until\")"}
	// true
}
