// Package audit is Kavach's tamper-evident audit trail (DESIGN.md §6): every
// request through the gateway (a decision record, then an outcome record
// linked by request_id) and every issuer event leaves a record naming the
// whole delegation chain, in a hash chain that shows any edit, gap, reorder
// or truncation.
//
//   - Record is the line format: fixed member order, a hand-written
//     deterministic encoding, hash = SHA-256(prev_raw || body) over the exact
//     bytes written (see Record for the rules, limits.go for the bounds).
//   - Writer is the bounded, group-committing queue in front of a Sink. It
//     never blocks a request: when it cannot take a record it says so at
//     once and the gateway answers 503. WriteDurable waits for the fsync
//     (audit: required). It writes signed checkpoints (Checkpoint) every N
//     records or T seconds, hands them to an optional Witness (Redis list
//     kavach:audit:ckpt:<stream>), and counts unauthenticated junk into one
//     summary record per interval.
//   - Sinks: FileSink (JSONL, flock against a second writer, fsync per
//     batch, size rotation into <file>.1, <file>.2 …, crash recovery on
//     reopen), StdoutSink (log shippers), PostgresSink (OpenPostgres: one
//     central trail for many gateways in the table kavach_audit, one
//     INSERT per batch, each gateway process writing as its own node under
//     an advisory lock). audit/sinktest is the conformance suite every sink
//     runs.
//   - Verify / VerifyFiles (files and directories, read in the order of
//     their links, see Files) and VerifyPostgres (a database, each node's
//     chain of streams) check hashes, seq continuity, stream links and
//     checkpoint signatures against a pinned public key, fail a trail
//     whose head was cut unless told to verify from a checkpoint
//     (VerifyOptions.From), name the first bad seq and why, and report
//     records not yet covered by a checkpoint.
//   - Query, QueryPostgres and the printers serve `kavach audit query`.
//   - OpenBrowser opens a file or PostgreSQL trail for the issuer's
//     console (Browser, Pager): entries newest first with their outcomes
//     joined, filtered (Filter, with Status and Roots), at most
//     BrowseOptions.MaxScan records read per page, a cursor to go on; and
//     Status, verified incrementally in the background with the same
//     Verifier: the newest signed checkpoint, the records not yet
//     covered, the key's fingerprint, the first fault.
//   - LoadOrCreateKey keeps the signing key in <name>.key (0600) with its
//     public half in <name>.pub: beside the trail by default; a verifier
//     pins a copy of the .pub kept where the writer cannot change it.
//
// Writing:
//
//	key, err := audit.LoadOrCreateKey("/var/lib/kavach/audit.jsonl")
//	sink, err := audit.OpenFile("/var/lib/kavach/audit.jsonl", audit.FileOptions{})
//	w, err := audit.NewWriter(ctx, sink, key, audit.Options{})
//	…
//	rec := audit.Record{Kind: audit.KindDecision, Decision: audit.Allow, RequestID: id,
//		Sub: "usr_alice", Actor: "agt_123", Agents: []string{"agt_89", "agt_123"}, …}
//	if err := w.Write(&rec); err != nil { // ErrQueueFull, ErrSinkFailing: answer 503
//	…
//	err = w.Close() // flush, final checkpoint, unlock
//
// Verifying:
//
//	pub, err := audit.LoadPublicKey("audit.jsonl.pub")
//	rep, err := audit.VerifyTrail(ctx, "audit.jsonl", pub, audit.VerifyOptions{})
//	if !rep.OK() { fmt.Println(rep.Problem) } // "audit.jsonl:20: stream … seq 20 missing: …"
//
// Browsing (the console):
//
//	b, err := audit.OpenBrowser(ctx, audit.Config{Sink: audit.SinkFile, Path: "audit.jsonl"})
//	page, err := b.(audit.Pager).BrowsePage(ctx, audit.Filter{Sub: "usr_alice", Status: "4xx"}, 50, "")
//	st, err := b.Status(ctx) // st.Checkpoint "gw-1:2001", st.Uncovered 17, st.KeyFingerprint "sha256 …"
package audit
