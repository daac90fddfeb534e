package audit

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// goldenRecords is a small trail exercising every member, every kind and
// every escape: two streams, the second linked to the first.
func goldenRecords() []*Record {
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	s1, s2 := "gw1.example-20260301T120000.000000Z", "gw1.example-20260301T130000.000000Z"
	d := decision(1)
	d.Seq, d.Stream, d.Time = 1, s1, at(1)
	o := outcome(1)
	o.Seq, o.Stream, o.Time = 2, s1, at(2)
	return []*Record{
		d,
		o,
		{Seq: 3, Stream: s1, Time: at(3), Kind: KindDecision, Decision: Deny, Reason: "insufficient_scope",
			RequestID: "req_2", Method: "GET", Host: "api.example",
			Path: "/a\"b\\c\nd\te\x01f/é/\xff/\u2028/<script>&"},
		{Seq: 4, Stream: s1, Time: at(4), Kind: KindSummary, Decision: Deny, Reason: "missing_token", Count: 1234},
		{Seq: 5, Stream: s1, Time: at(5), Kind: KindIssued, Sub: "usr_alice", Agents: []string{"agt_89"},
			Chain: []string{"dlg_a1"}, ClientID: "agt_89", JTI: "tok_x"},
		{Seq: 6, Stream: s1, Time: at(6), Kind: KindDelegated, Reason: "child agent created", Sub: "usr_alice",
			Agents: []string{"agt_89", "agt_123"}, Chain: []string{"dlg_a1", "dlg_b2"}, ClientID: "agt_123"},
		{Seq: 7, Stream: s1, Time: at(7), Kind: KindRefreshed, Sub: "usr_alice", ClientID: "cli_app", JTI: "tok_y"},
		{Seq: 8, Stream: s1, Time: at(8), Kind: KindRevoked, Reason: "agent revoked", IDs: []string{"agt_89", "dlg_a1", "agt_123", "dlg_b2"}},
		{Seq: 9, Stream: s1, Time: at(9), Kind: KindLoginFailed, Reason: "bad credentials", ClientID: "cli_app"},
		{Seq: 10, Stream: s1, Time: at(10), Kind: KindCheckpoint}, // prev and sig filled in
		{Seq: 1, Stream: s2, Time: at(3600000), Kind: KindOutcome, RequestID: "req_9", Status: 502, Duration: 30*time.Second + time.Microsecond},
		// args_sha256 and args came later: every line above kept its bytes.
		{Seq: 2, Stream: s2, Time: at(3600001), Kind: KindDecision, Decision: Allow, Reason: "allowed", RequestID: "req_10",
			Sub: "usr_alice", Actor: "agt_89", Agents: []string{"agt_89"}, Chain: []string{"dlg_a1"}, MCPMethod: "tools/call", Tool: "read_file",
			ArgsSHA256: "1b1b0d4e3b7c06f0f1b3c12b2f3d7a24a9f1c0f8f2e1bb1b8c0d3a4e5f607182",
			Args:       `{"path":"README.md","token":"[redacted]","note":"\u00e9\n"}`},
	}
}

// encodeGolden chains goldenRecords and returns the trail and checkpoint.
func encodeGolden(t *testing.T) ([]byte, Checkpoint) {
	t.Helper()
	var out []byte
	var prev [32]byte
	var ckpt Checkpoint
	for _, r := range goldenRecords() {
		switch {
		case r.Kind == KindCheckpoint:
			ckpt = Checkpoint{Stream: r.Stream, Seq: r.Seq - 1, Hash: prev, Time: r.Time}
			ckpt.Sign(testKey())
			r.Prev, r.Sig = hex.EncodeToString(prev[:]), sigEncoding.EncodeToString(ckpt.Sig)
		case r.Seq == 1 && len(out) > 0:
			r.Prev = hex.EncodeToString(prev[:])
		}
		var err error
		out, prev, err = AppendLine(out, prev, r)
		if err != nil {
			t.Fatalf("seq %d: %v", r.Seq, err)
		}
	}
	return out, ckpt
}

// TestGolden pins the encoding: a change here changes every trail. Run
// `go test ./audit -run TestGolden -update` and review the diff.
func TestGolden(t *testing.T) {
	trail, ckpt := encodeGolden(t)
	files := map[string][]byte{
		"trail.golden":           trail,
		"checkpoint_json.golden": append(ckpt.AppendJSON(nil), '\n'),
		"checkpoint_sig.golden":  ckpt.SignedBytes(),
	}
	for name, got := range files {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s changed:\n got: %s\nwant: %s", name, got, want)
		}
	}
	// The golden trail verifies, with the second stream linked.
	rep, err := Verify(context.Background(), bytes.NewReader(trail), "golden", testPub(), VerifyOptions{RequireGenesis: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || len(rep.Streams) != 2 || rep.Checkpoints != 1 || rep.Streams[0].Uncovered != 0 || rep.Streams[1].Uncovered != 2 {
		t.Fatalf("golden trail:\n%s", reportText(rep))
	}
	// Witness form round-trips and verifies.
	back, err := ParseCheckpoint(bytes.TrimSuffix(files["checkpoint_json.golden"], []byte("\n")))
	if err != nil {
		t.Fatal(err)
	}
	if err := back.Verify(testPub()); err != nil || back.Seq != ckpt.Seq || back.Hash != ckpt.Hash {
		t.Fatalf("witness checkpoint does not round-trip: %+v %v", back, err)
	}
}

// TestRoundTrip: every line decodes to a record that encodes to the same
// bytes, so a line has exactly one encoding.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	trail, _ := encodeGolden(t)
	var prev [32]byte
	for i, line := range bytes.SplitAfter(trail, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		r, err := ParseLine(line)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		again, h, err := AppendLine(nil, prev, &r)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if !bytes.Equal(again, line) || hex.EncodeToString(h[:]) != r.Hash {
			t.Fatalf("line %d re-encodes differently:\n%s\n%s", i+1, line, again)
		}
		prev = h
	}
}

func TestEscapes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{`plain`, `"plain"`},
		{"q\"b\\", `"q\"b\\"`},
		{"\n\r\t", `"\n\r\t"`},
		{"\x00\x1f\x7f", `"\u0000\u001f` + "\x7f\""},
		{"<&>", `"<&>"`}, // no HTML escaping
		{"é\u2028", "\"é\u2028\""},
		{"a\xffb", "\"a\uFFFDb\""},
	} {
		if got := string(appendString(nil, tc.in)); got != tc.want {
			t.Errorf("appendString(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestTruncation(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", MaxStringBytes) // 2 bytes each
	got := clampString(long)
	if len(got) > MaxStringBytes || !strings.HasSuffix(got, "…") || !utf8.ValidString(got) {
		t.Fatalf("clampString: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	// A truncated path still makes a record that decodes and re-encodes.
	r := Record{Seq: 1, Stream: "s", Time: t0, Kind: KindDecision, Decision: Deny, Path: "/" + long}
	line, _, err := AppendLine(nil, [32]byte{}, &r)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseLine(line)
	if err != nil {
		t.Fatal(err)
	}
	if back.Path != clampString("/"+long) {
		t.Fatal("truncated path does not decode to the truncated value")
	}
}

func TestAppendLineRefuses(t *testing.T) {
	t.Parallel()
	ok := func() Record {
		return Record{Seq: 1, Stream: "s", Time: t0, Kind: KindDecision, Decision: Allow}
	}
	long := make([]string, MaxListLen+1)
	for i := range long {
		long[i] = "x"
	}
	for name, tc := range map[string]struct {
		mut  func(*Record)
		want error
	}{
		"seq 0":            {func(r *Record) { r.Seq = 0 }, ErrInvalidRecord},
		"bad stream":       {func(r *Record) { r.Stream = "a b" }, ErrInvalidRecord},
		"unknown kind":     {func(r *Record) { r.Kind = "other" }, ErrInvalidRecord},
		"no decision":      {func(r *Record) { r.Decision = "" }, ErrInvalidRecord},
		"bad decision":     {func(r *Record) { r.Decision = "maybe" }, ErrInvalidRecord},
		"status":           {func(r *Record) { r.Status = 1000 }, ErrInvalidRecord},
		"negative bytes":   {func(r *Record) { r.Bytes = -1 }, ErrInvalidRecord},
		"empty id":         {func(r *Record) { r.Agents = []string{""} }, ErrInvalidRecord},
		"long list":        {func(r *Record) { r.IDs = long }, ErrRecordTooLarge},
		"sig on decision":  {func(r *Record) { r.Sig = strings.Repeat("A", 86) }, ErrInvalidRecord},
		"summary no count": {func(r *Record) { r.Kind, r.Decision = KindSummary, "" }, ErrInvalidRecord},
		"checkpoint no prev": {func(r *Record) {
			r.Seq, r.Kind, r.Decision, r.Sig = 2, KindCheckpoint, "", strings.Repeat("A", 86)
		}, ErrInvalidRecord},
		"wrong prev":          {func(r *Record) { r.Prev = strings.Repeat("1", 64) }, ErrInvalidRecord},
		"year 10000":          {func(r *Record) { r.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, ErrInvalidRecord},
		"args digest not hex": {func(r *Record) { r.ArgsSHA256 = strings.Repeat("g", 64) }, ErrInvalidRecord},
		"args digest base64":  {func(r *Record) { r.ArgsSHA256 = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU" }, ErrInvalidRecord},
		"unenforced allow":    {func(r *Record) { r.Unenforced = true }, ErrInvalidRecord},
	} {
		r := ok()
		tc.mut(&r)
		if _, _, err := AppendLine(nil, [32]byte{}, &r); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
}

func TestStreamID(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	for node, want := range map[string]string{
		"gw1.example": "gw1.example-20260301T110000.123456Z",
		"":            "node-20260301T110000.123456Z",
		"a b/ü":       "a_b___-20260301T110000.123456Z",
	} {
		if got := StreamID(node, at); got != want || !validStream(got) {
			t.Errorf("StreamID(%q) = %q, want %q", node, got, want)
		}
	}
	if got := StreamID(strings.Repeat("n", 500), at); len(got) > MaxStreamBytes || !validStream(got) {
		t.Errorf("long node: %q", got)
	}
}

// The cached-second time encoding writes what the layout says, across
// second boundaries, in any order, for every year the format allows.
func TestAppendTimeMatchesLayout(t *testing.T) {
	base := []time.Time{
		time.Date(2026, 12, 2, 23, 59, 59, 999999999, time.UTC),
		time.Date(2026, 12, 3, 0, 0, 0, 1000, time.FixedZone("x", 5*3600)),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 500000, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
	}
	for i := 0; i < 2000; i++ {
		base = append(base, base[0].Add(time.Duration(i)*7919*time.Microsecond))
	}
	for _, tm := range append(base, base[:5]...) {
		got := string(appendTime([]byte("x"), tm))
		if want := "x" + tm.UTC().Format(timeLayout); got != want {
			t.Fatalf("appendTime(%v) = %q, want %q", tm, got, want)
		}
	}
}

// TestUnenforcedDenial: a report-only route's denial is written with
// "enforced":false right after its decision, and reads back as such; an
// enforced one carries no such member.
func TestUnenforcedDenial(t *testing.T) {
	t.Parallel()
	r := Record{Seq: 1, Stream: "s", Time: t0, Kind: KindDecision, Decision: Deny, Unenforced: true, Reason: "insufficient_scope: repository:write"}
	line, _, err := AppendLine(nil, [32]byte{}, &r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(line, []byte(`"decision":"deny","enforced":false,"reason":`)) {
		t.Fatalf("line %s does not say enforced:false after the decision", line)
	}
	back, err := ParseLine(line)
	if err != nil || !back.Unenforced || back.Decision != Deny {
		t.Fatalf("ParseLine = %+v, %v", back, err)
	}
	r.Unenforced = false
	line, _, _ = AppendLine(nil, [32]byte{}, &r)
	if bytes.Contains(line, []byte("enforced")) {
		t.Fatalf("an enforced denial names enforced: %s", line)
	}
}
