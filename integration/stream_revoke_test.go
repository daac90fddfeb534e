package integration

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStreamEndsOnRevocation: a server-sent event stream opened through
// the gateway with an agent's token stops at its next event once that
// agent is revoked (`kavach revoke`), instead of streaming on for as long
// as the upstream likes; a stream of another agent goes on.
func TestStreamEndsOnRevocation(t *testing.T) {
	up := newUpstreamReplying(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		for i := 0; i < 100; i++ {
			if _, err := fmt.Fprintf(w, "data: event %d\n\n", i); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	g := startKeyGateway(t, up.addr(), "flush_interval -1")
	open := func(tok string) (<-chan string, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		req := newReq(t, http.MethodGet, g.url+"/api/events", tok, nil).WithContext(ctx)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream: %d", resp.StatusCode)
		}
		events := make(chan string, 200)
		go func() {
			defer close(events)
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if line := sc.Text(); strings.HasPrefix(line, "data: ") {
					events <- line
				}
			}
		}()
		t.Cleanup(cancel)
		return events, cancel
	}
	revoked, _ := open(g.mint(t, "usr_alice", "agt_revoked"))
	other, _ := open(g.mint(t, "usr_alice", "agt_other"))
	for _, ch := range []<-chan string{revoked, other} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("no first event")
		}
	}
	g.revoke(t, "agt_revoked")
	// What arrived while the CLI ran was sent before the revocation.
	for drained := false; !drained; {
		select {
		case _, ok := <-revoked:
			drained = !ok
		default:
			drained = true
		}
	}
	// The revoked stream ends at its next event; the other goes on.
	deadline := time.After(3 * time.Second)
	after := 0
	for ended := false; !ended; {
		select {
		case _, ok := <-revoked:
			if !ok {
				ended = true
				break
			}
			after++
		case <-deadline:
			t.Fatalf("the revoked agent's stream still runs 3 s after the revocation (%d events since)", after)
		}
	}
	if after > 1 { // one may have been on its way when the revocation landed
		t.Errorf("%d events reached the revoked agent's stream after the revocation", after)
	}
	select {
	case _, ok := <-other:
		if !ok {
			t.Fatal("the other agent's stream ended too")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the other agent's stream stalled")
	}
}
