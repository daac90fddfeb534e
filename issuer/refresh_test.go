package issuer

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// liveChains refreshes each distinct refresh token once and returns how
// many of them still refresh: the number of rotation chains an attacker
// and the client could each keep alive. Rotation allows at most one.
func (e *testEnv) liveChains(tokens ...string) int {
	e.t.Helper()
	n := 0
	for _, rt := range slices.Compact(slices.Sorted(slices.Values(tokens))) {
		if status, _ := e.refresh(rt, nil); status == http.StatusOK {
			n++
		}
	}
	return n
}

// familyRevoked checks that the consent grant of an access token of the
// family is revoked in the store and in the gateways' revocation set.
func (e *testEnv) familyRevoked(accessToken string) bool {
	e.t.Helper()
	claims, err := e.s.Verifier().Verify(accessToken)
	if err != nil {
		e.t.Fatal(err)
	}
	family := claims.Kavach.Chain[0]
	return e.st.ChainActive(context.Background(), []string{family}, time.Now()) != nil && e.s.cfg.Revoked.IsRevoked(family)
}

// TestRefreshGraceSameSuccessor (DESIGN.md §7, issue 14 item 1): a rotated
// refresh token replayed inside the grace window gets the successor the
// first rotation produced, never a second one; the thief's copy and the
// client's cannot both keep refreshing.
func TestRefreshGraceSameSuccessor(t *testing.T) {
	env := newEnv(t)
	first := env.codeFlow(newBrowser(t))
	rt0 := first["refresh_token"].(string)

	status, r1 := env.refresh(rt0, nil)
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, r1)
	}
	status, r2 := env.refresh(rt0, nil) // the replay, well inside the window
	if status != http.StatusOK {
		t.Fatalf("retry within grace: %d %v", status, r2)
	}
	if r2["refresh_token"] != r1["refresh_token"] {
		t.Errorf("a retry within grace got a different refresh token: the family forked")
	}
	// A fresh access token, for the same consent grant.
	if r2["access_token"] == r1["access_token"] || !env.active(r2["access_token"].(string)) {
		t.Fatal("the retry's access token is not a new, active token")
	}
	c1, err := env.s.Verifier().Verify(r1["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	c2, err := env.s.Verifier().Verify(r2["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c1.Kavach.Chain, c2.Kavach.Chain) {
		t.Fatalf("the retry's token is for chain %v, the first for %v", c2.Kavach.Chain, c1.Kavach.Chain)
	}
	if n := env.liveChains(r1["refresh_token"].(string), r2["refresh_token"].(string)); n > 1 {
		t.Fatalf("%d rotation chains refresh after a replay within grace, want at most one", n)
	}
}

// TestRefreshGraceAfterSuccessorUsed: once the successor has been used,
// its holder got the first answer, so a replay of the old token is no
// retry: the family is revoked, even inside the old token's window.
func TestRefreshGraceAfterSuccessorUsed(t *testing.T) {
	env := newEnv(t)
	first := env.codeFlow(newBrowser(t))
	rt0 := first["refresh_token"].(string)
	status, r1 := env.refresh(rt0, nil)
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, r1)
	}
	status, r2 := env.refresh(r1["refresh_token"].(string), nil)
	if status != http.StatusOK {
		t.Fatalf("refresh of the successor: %d %v", status, r2)
	}
	status, out := env.refresh(rt0, nil)
	wantOAuthError(t, status, out, http.StatusBadRequest, "invalid_grant")
	if !env.familyRevoked(r2["access_token"].(string)) {
		t.Fatal("the family is not revoked after the old token was replayed behind its used successor")
	}
	status, out = env.refresh(r2["refresh_token"].(string), nil)
	wantOAuthError(t, status, out, http.StatusBadRequest, "invalid_grant")
}

// TestRefreshGraceReplayAfterWindow: past the window a replay is reuse;
// the whole family dies in the store and at the gateways, including the
// successor a retry inside the window was given.
func TestRefreshGraceReplayAfterWindow(t *testing.T) {
	env := newEnv(t)
	first := env.codeFlow(newBrowser(t))
	rt0 := first["refresh_token"].(string)
	status, r1 := env.refresh(rt0, nil)
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, r1)
	}
	if status, out := env.refresh(rt0, nil); status != http.StatusOK {
		t.Fatalf("retry within grace: %d %v", status, out)
	}
	setClock(t, DefaultRefreshGrace+time.Second)
	status, out := env.refresh(rt0, nil)
	wantOAuthError(t, status, out, http.StatusBadRequest, "invalid_grant")
	if !env.familyRevoked(r1["access_token"].(string)) {
		t.Fatal("the family is not revoked after a replay past the grace window")
	}
	status, out = env.refresh(r1["refresh_token"].(string), nil)
	wantOAuthError(t, status, out, http.StatusBadRequest, "invalid_grant")
}

// TestRefreshGraceConcurrent: simultaneous refreshes of one token all get
// the same successor (or the family is revoked); never two live chains.
func TestRefreshGraceConcurrent(t *testing.T) {
	env := newEnv(t)
	first := env.codeFlow(newBrowser(t))
	rt0 := first["refresh_token"].(string)

	const n = 8
	type answer struct {
		status int
		out    map[string]any
	}
	answers := make([]answer, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			answers[i].status, answers[i].out = env.refresh(rt0, nil)
		})
	}
	start.Done()
	done.Wait()

	var successors, accessTokens []string
	for i, a := range answers {
		switch a.status {
		case http.StatusOK:
			successors = append(successors, a.out["refresh_token"].(string))
			accessTokens = append(accessTokens, a.out["access_token"].(string))
		case http.StatusBadRequest:
			wantOAuthError(t, a.status, a.out, http.StatusBadRequest, "invalid_grant")
		default:
			t.Fatalf("racer %d: %d %v", i, a.status, a.out)
		}
	}
	if len(successors) == 0 {
		t.Fatal("no concurrent refresh succeeded")
	}
	if len(successors) < n && !env.familyRevoked(accessTokens[0]) {
		t.Fatalf("%d of %d concurrent refreshes refused, but the family lives on", n-len(successors), n)
	}
	if d := slices.Compact(slices.Sorted(slices.Values(successors))); len(d) > 1 {
		t.Errorf("%d concurrent refreshes of one token got %d different successors", len(successors), len(d))
	}
	if live := env.liveChains(successors...); live > 1 {
		t.Fatalf("%d rotation chains refresh after concurrent refreshes, want at most one", live)
	}
}
