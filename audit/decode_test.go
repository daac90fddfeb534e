package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fakeHash = `,"hash":"0000000000000000000000000000000000000000000000000000000000000000"}`

// TestDecodeStrict: the decoder refuses every form the encoder would not
// write, so a line has one meaning.
func TestDecodeStrict(t *testing.T) {
	t.Parallel()
	const head = `{"seq":1,"stream":"s","time":"2026-03-01T12:00:00.000000Z"`
	valid := head + `,"kind":"outcome","status":200` + fakeHash
	if _, err := ParseLine([]byte(valid)); err != nil {
		t.Fatalf("valid line refused: %v", err)
	}
	sig := strings.Repeat("A", 86)
	prev := `,"prev":"` + strings.Repeat("0", 64) + `"`
	for name, line := range map[string]string{
		"space after colon":     `{"seq": 1,"stream":"s","time":"2026-03-01T12:00:00.000000Z","kind":"outcome"` + fakeHash,
		"leading zero seq":      `{"seq":01,"stream":"s","time":"2026-03-01T12:00:00.000000Z","kind":"outcome"` + fakeHash,
		"seq 0":                 `{"seq":0,"stream":"s","time":"2026-03-01T12:00:00.000000Z","kind":"outcome"` + fakeHash,
		"members out of order":  head + `,"kind":"outcome","bytes":1,"status":200` + fakeHash,
		"member repeated":       head + `,"kind":"outcome","status":200,"status":201` + fakeHash,
		"unknown member":        head + `,"kind":"outcome","extra":1` + fakeHash,
		"case variant member":   head + `,"Kind":"outcome"` + fakeHash,
		"no kind":               head + fakeHash,
		"unknown kind":          head + `,"kind":"other"` + fakeHash,
		"empty string":          head + `,"kind":"outcome","reason":""` + fakeHash,
		"empty list":            head + `,"kind":"outcome","ids":[]` + fakeHash,
		"empty list entry":      head + `,"kind":"outcome","ids":[""]` + fakeHash,
		"zero status":           head + `,"kind":"outcome","status":0` + fakeHash,
		"status 1000":           head + `,"kind":"outcome","status":1000` + fakeHash,
		"negative bytes":        head + `,"kind":"outcome","bytes":-1` + fakeHash,
		"float bytes":           head + `,"kind":"outcome","bytes":1.5` + fakeHash,
		"duration 2 decimals":   head + `,"kind":"outcome","duration_ms":1.50` + fakeHash,
		"duration 4 decimals":   head + `,"kind":"outcome","duration_ms":1.5000` + fakeHash,
		"duration zero":         head + `,"kind":"outcome","duration_ms":0.000` + fakeHash,
		"duration leading zero": head + `,"kind":"outcome","duration_ms":01.500` + fakeHash,
		"escaped slash":         head + `,"kind":"outcome","reason":"a\/b"` + fakeHash,
		"escaped letter":        head + `,"kind":"outcome","reason":"\u0041"` + fakeHash,
		"uppercase u escape":    head + `,"kind":"outcome","reason":"\u001F"` + fakeHash,
		"u escape for newline":  head + `,"kind":"outcome","reason":"\u000a"` + fakeHash,
		"b escape":              head + `,"kind":"outcome","reason":"\b"` + fakeHash,
		"raw control":           head + `,"kind":"outcome","reason":"a` + "\x01" + `b"` + fakeHash,
		"invalid utf8":          head + `,"kind":"outcome","reason":"a` + "\xff" + `b"` + fakeHash,
		"uppercase hash":        head + `,"kind":"outcome"` + strings.ToUpper(fakeHash),
		"no hash":               head + `,"kind":"outcome"}`,
		"trailing data":         head + `,"kind":"outcome"` + fakeHash + ` `,
		"time not UTC":          `{"seq":1,"stream":"s","time":"2026-03-01T12:00:00.000000+01:00","kind":"outcome"` + fakeHash,
		"time 3 decimals":       `{"seq":1,"stream":"s","time":"2026-03-01T12:00:00.000Z","kind":"outcome"` + fakeHash,
		"31 April":              `{"seq":1,"stream":"s","time":"2026-04-31T12:00:00.000000Z","kind":"outcome"` + fakeHash,
		"stream with space":     `{"seq":1,"stream":"a b","time":"2026-03-01T12:00:00.000000Z","kind":"outcome"` + fakeHash,
		"uppercase prev":        head + `,"prev":"` + strings.Repeat("A", 64) + `","kind":"outcome"` + fakeHash,
		"decision without one":  head + `,"kind":"decision"` + fakeHash,
		"decision maybe":        head + `,"kind":"decision","decision":"maybe"` + fakeHash,
		"summary without count": head + `,"kind":"summary","reason":"x"` + fakeHash,
		"sig on an outcome":     head + `,"kind":"outcome","sig":"` + sig + `"` + fakeHash,
		"checkpoint at seq 1":   head + prev + `,"kind":"checkpoint","sig":"` + sig + `"` + fakeHash,
		"checkpoint with reason": `{"seq":2,"stream":"s","time":"2026-03-01T12:00:00.000000Z"` + prev +
			`,"kind":"checkpoint","reason":"x","sig":"` + sig + `"` + fakeHash,
		"checkpoint without sig":   `{"seq":2,"stream":"s","time":"2026-03-01T12:00:00.000000Z"` + prev + `,"kind":"checkpoint"` + fakeHash,
		"list too long":            head + `,"kind":"outcome","ids":[` + strings.Repeat(`"x",`, MaxListLen) + `"x"]` + fakeHash,
		"string too long":          head + `,"kind":"outcome","reason":"` + strings.Repeat("x", MaxStringBytes+1) + `"` + fakeHash,
		"uppercase args_sha256":    head + `,"kind":"outcome","args_sha256":"` + strings.Repeat("A", 64) + `"` + fakeHash,
		"short args_sha256":        head + `,"kind":"outcome","args_sha256":"` + strings.Repeat("a", 63) + `"` + fakeHash,
		"args before its digest":   head + `,"kind":"outcome","args":"{}","args_sha256":"` + strings.Repeat("a", 64) + `"` + fakeHash,
		"args after status":        head + `,"kind":"outcome","status":200,"args":"{}"` + fakeHash,
		"enforced true":            head + `,"kind":"decision","decision":"deny","enforced":true` + fakeHash,
		"enforced on an allow":     head + `,"kind":"decision","decision":"allow","enforced":false` + fakeHash,
		"enforced on an outcome":   head + `,"kind":"outcome","enforced":false,"status":200` + fakeHash,
		"enforced before decision": head + `,"kind":"decision","enforced":false,"decision":"deny"` + fakeHash,
	} {
		if _, err := ParseLine([]byte(line)); err == nil {
			t.Errorf("%s: accepted %s", name, line)
		}
	}
}

// FuzzParseLine: whatever the decoder accepts re-encodes to the same bytes
// (one encoding per record), and it never panics. Seeds in
// testdata/fuzz/FuzzParseLine and the golden trail.
func FuzzParseLine(f *testing.F) {
	if golden, err := os.ReadFile(filepath.Join("testdata", "trail.golden")); err == nil {
		for _, l := range bytes.Split(golden, []byte("\n")) {
			f.Add(l)
		}
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseLine(line)
		if err != nil {
			return
		}
		var prev *[32]byte
		if r.Prev != "" {
			prev = new([32]byte)
			decodeHex(prev[:], []byte(r.Prev))
		}
		body := appendHead(nil, r.Seq, r.Stream, appendTime(nil, r.Time), prev)
		body = appendFields(body, &r)
		line = bytes.TrimSuffix(line, []byte("\n"))
		if !bytes.Equal(body, line[:len(line)-suffixLen]) {
			t.Fatalf("accepted a non-canonical line:\n%q\nre-encodes as\n%q", line, body)
		}
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	if golden, err := os.ReadFile(filepath.Join("testdata", "checkpoint_json.golden")); err == nil {
		f.Add(bytes.TrimSpace(golden))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCheckpoint(data)
		if err != nil {
			return
		}
		if again := c.AppendJSON(nil); !bytes.Equal(again, data) {
			t.Fatalf("accepted a non-canonical checkpoint:\n%q\n%q", data, again)
		}
	})
}
