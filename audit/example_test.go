package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kavachgate/kavach/audit"
)

// A gateway records a request (decision, then outcome) and a flood of junk;
// the trail verifies with the pinned public key and a query by agent shows
// the whole chain.
func Example() {
	dir, _ := os.MkdirTemp("", "audit-example")
	defer os.RemoveAll(dir)
	trail := filepath.Join(dir, "audit.jsonl")

	key, err := audit.LoadOrCreateKey(trail) // audit.jsonl.key (0600), audit.jsonl.pub
	if err != nil {
		panic(err)
	}
	sink, err := audit.OpenFile(trail, audit.FileOptions{}) // locked against a second writer
	if err != nil {
		panic(err)
	}
	w, err := audit.NewWriter(context.Background(), sink, key, audit.Options{Stream: "gw1-example"})
	if err != nil {
		panic(err)
	}

	// Step 8 of the decision: hand the record over; if it is refused
	// (ErrQueueFull, ErrSinkFailing), answer 503 instead of forwarding.
	// WriteDurable instead waits for the fsync (audit: required).
	err = w.Write(&audit.Record{
		Kind: audit.KindDecision, Decision: audit.Allow, RequestID: "req_1",
		Sub: "usr_alice", Actor: "agt_123", Agents: []string{"agt_89", "agt_123"}, Chain: []string{"dlg_a1", "dlg_b2"},
		JTI: "tok_1", Method: "POST", Host: "mcp.internal", Path: "/mcp", MCPMethod: "tools/call", Tool: "read_file",
	})
	if err != nil {
		fmt.Println("503:", err)
	}
	// After the response, linked by request_id.
	w.Write(&audit.Record{Kind: audit.KindOutcome, RequestID: "req_1", Status: 200, Bytes: 512, Duration: 3 * time.Millisecond})
	// Requests without a verifiable token are only counted.
	for range 1000 {
		w.CountJunk("missing_token")
	}
	if err := w.Close(); err != nil { // flush, summaries, final checkpoint
		panic(err)
	}

	pub, _ := audit.LoadPublicKey(trail + ".pub")
	rep, err := audit.VerifyTrail(context.Background(), trail, pub, audit.VerifyOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println("verified:", rep.OK(), rep.Records, "records,", rep.Checkpoints, "checkpoint,", rep.Uncovered, "uncovered")

	files, _ := audit.Files(trail)
	for e, err := range audit.Query(files, audit.Filter{Agent: "agt_123"}) {
		if err != nil {
			panic(err)
		}
		fmt.Println(e.Record.Kind, audit.Who(&e.Record), e.Record.Status)
	}
	for e := range audit.Query(files, audit.Filter{Kinds: []audit.Kind{audit.KindSummary}}) {
		fmt.Println(e.Record.Kind, e.Record.Decision, e.Record.Reason, e.Record.Count)
	}
	// Output:
	// verified: true 4 records, 1 checkpoint, 0 uncovered
	// decision agt_123, child of agt_89, acting for usr_alice 0
	// outcome  200
	// summary deny missing_token 1000
}

// Verify names the first bad seq and why.
func ExampleVerifyTrail() {
	dir, _ := os.MkdirTemp("", "audit-example")
	defer os.RemoveAll(dir)
	trail := filepath.Join(dir, "audit.jsonl")
	key, _ := audit.LoadOrCreateKey(trail)
	sink, _ := audit.OpenFile(trail, audit.FileOptions{})
	w, _ := audit.NewWriter(context.Background(), sink, key, audit.Options{Stream: "gw1-example"})
	for i := range 5 {
		w.Write(&audit.Record{Kind: audit.KindDecision, Decision: audit.Deny, Reason: "insufficient_scope", RequestID: fmt.Sprint("req_", i)})
	}
	w.Close()

	// Delete the third line.
	data, _ := os.ReadFile(trail)
	lines := bytes.SplitAfter(data, []byte("\n"))
	os.WriteFile(trail, bytes.Join(append(lines[:2:2], lines[3:]...), nil), 0o600)

	pub, _ := audit.LoadPublicKey(trail + ".pub")
	rep, _ := audit.VerifyTrail(context.Background(), trail, pub, audit.VerifyOptions{})
	fmt.Println(rep.Problem.Fault, rep.Problem.Seq, rep.Problem.Line)
	// Output:
	// missing 3 3
}

// The console reads a trail newest first, with each request's outcome,
// filtered to one user's requests, and says how far it is verified.
func ExampleOpenBrowser() {
	dir, _ := os.MkdirTemp("", "audit-browse")
	defer os.RemoveAll(dir)
	cfg := audit.Config{Sink: audit.SinkFile, Path: filepath.Join(dir, "audit.jsonl")}
	w, err := audit.Open(context.Background(), cfg)
	if err != nil {
		panic(err)
	}
	for i, tool := range []string{"read_diff", "write_file"} {
		id := fmt.Sprintf("req_%d", i)
		dec := audit.Record{Kind: audit.KindDecision, Decision: audit.Allow, RequestID: id, Sub: "usr_alice", Actor: "agt_reviewer", MCPMethod: "tools/call", Tool: tool}
		if tool == "write_file" {
			dec.Decision, dec.Reason, dec.Status = audit.Deny, "insufficient_scope: repository:write", 403
		}
		_ = w.Write(&dec)
		if dec.Decision == audit.Allow {
			_ = w.Write(&audit.Record{Kind: audit.KindOutcome, RequestID: id, Status: 200})
		}
	}
	_ = w.Close() // a final checkpoint covers everything

	b, err := audit.OpenBrowser(context.Background(), cfg)
	if err != nil {
		panic(err)
	}
	defer b.Close()
	entries, _ := b.Browse(context.Background(), audit.Filter{Sub: "usr_alice"}, 50)
	for _, e := range entries {
		fmt.Println(e.Decision.Tool, e.Decision.Decision, e.Status())
	}
	st, _ := b.Status(context.Background())
	for st.Pending {
		time.Sleep(10 * time.Millisecond)
		st, _ = b.Status(context.Background())
	}
	fmt.Println(st.Verified, st.Uncovered, st.Problem == "")
	// Output:
	// write_file deny 403
	// read_diff allow 200
	// true 0 true
}
