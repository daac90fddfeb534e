package audit

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// The hand-written encoder of Record (see its doc comment for the rules).
// encoding/json is not used: it escapes HTML, reorders nothing we need and
// offers no guarantee that its output never changes; a hash over the bytes
// needs bytes that are the same in every release.

const (
	// timeLayout is RFC 3339 in UTC with exactly six fractional digits.
	timeLayout = "2006-01-02T15:04:05.000000Z"
	timeLen    = len(timeLayout)

	hashPrefix = `,"hash":"`
	// suffixLen is len(`,"hash":"` + 64 hex digits + `"}`), '\n' excluded.
	suffixLen = len(hashPrefix) + 2*sha256.Size + 2

	// maxHeadLen bounds what the writer puts before the kind member.
	maxHeadLen = len(`{"seq":`) + 20 + len(`,"stream":"`) + MaxStreamBytes +
		len(`","time":"`) + timeLen + len(`"`) + len(`,"prev":"`) + 2*sha256.Size + len(`"`)
	// maxFieldsLen bounds the encoding from the kind member on, so that no
	// line the writer produces exceeds MaxLineBytes.
	maxFieldsLen = MaxLineBytes - 1 - maxHeadLen - suffixLen

	ellipsis = "…"
)

// sigEncoding is how checkpoint signatures are written: RFC 4648 §5
// base64url without padding; Strict refuses non-zero trailing bits, so a
// signature has one spelling.
var sigEncoding = base64.RawURLEncoding.Strict()

// sigTextLen is the length of an encoded Ed25519 signature.
var sigTextLen = sigEncoding.EncodedLen(64)

// appendTime appends t in the trail's time format. Records of one second
// share their first 20 bytes, so the last second's are kept (time's
// formatting costs a request more than the rest of its record).
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	sec := t.Unix()
	p := lastSecond.Load()
	if p == nil || p.unix != sec {
		p = &secondPrefix{unix: sec}
		t.Truncate(time.Second).AppendFormat(p.text[:0], timeLayout[:20])
		lastSecond.Store(p)
	}
	dst = append(dst, p.text[:]...)
	us := t.Nanosecond() / 1000
	var frac [7]byte
	for i := 5; i >= 0; i-- {
		frac[i] = byte('0' + us%10)
		us /= 10
	}
	frac[6] = 'Z'
	return append(dst, frac[:]...)
}

// secondPrefix is `2006-01-02T15:04:05.` for one Unix second.
type secondPrefix struct {
	unix int64
	text [20]byte
}

var lastSecond atomic.Pointer[secondPrefix]

// validTime reports whether t has the fixed-width encoding (year 0–9999).
func validTime(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 0 && y <= 9999
}

// appendHead appends `{"seq":N,"stream":"S","time":"T"` and, when prev is
// not nil, `,"prev":"<hex>"`. stream has been checked (validStream) and ts is
// an encoded time.
func appendHead(dst []byte, seq uint64, stream string, ts []byte, prev *[32]byte) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"stream":"`...)
	dst = append(dst, stream...)
	dst = append(dst, `","time":"`...)
	dst = append(dst, ts...)
	dst = append(dst, '"')
	if prev != nil {
		dst = append(dst, `,"prev":"`...)
		dst = hex.AppendEncode(dst, prev[:])
		dst = append(dst, '"')
	}
	return dst
}

// appendFields appends the members from kind to sig, skipping empty ones.
// r has been checked (checkFields).
func appendFields(dst []byte, r *Record) []byte {
	dst = append(dst, `,"kind":"`...)
	dst = append(dst, r.Kind...)
	dst = append(dst, '"')
	if r.Decision != "" {
		dst = append(dst, `,"decision":"`...)
		dst = append(dst, r.Decision...)
		dst = append(dst, '"')
	}
	if r.Unenforced {
		dst = append(dst, `,"enforced":false`...)
	}
	dst = appendMember(dst, `,"reason":`, r.Reason)
	dst = appendMember(dst, `,"request_id":`, r.RequestID)
	dst = appendMember(dst, `,"sub":`, r.Sub)
	dst = appendMember(dst, `,"actor":`, r.Actor)
	dst = appendList(dst, `,"agents":`, r.Agents)
	dst = appendList(dst, `,"chain":`, r.Chain)
	dst = appendMember(dst, `,"client_id":`, r.ClientID)
	dst = appendMember(dst, `,"jti":`, r.JTI)
	dst = appendMember(dst, `,"method":`, r.Method)
	dst = appendMember(dst, `,"host":`, r.Host)
	dst = appendMember(dst, `,"path":`, r.Path)
	dst = appendMember(dst, `,"mcp_method":`, r.MCPMethod)
	dst = appendMember(dst, `,"tool":`, r.Tool)
	if r.ArgsSHA256 != "" {
		dst = append(dst, `,"args_sha256":"`...)
		dst = append(dst, r.ArgsSHA256...)
		dst = append(dst, '"')
	}
	dst = appendMember(dst, `,"args":`, r.Args)
	if r.Status != 0 {
		dst = append(dst, `,"status":`...)
		dst = strconv.AppendInt(dst, int64(r.Status), 10)
	}
	if r.Bytes != 0 {
		dst = append(dst, `,"bytes":`...)
		dst = strconv.AppendInt(dst, r.Bytes, 10)
	}
	if us := int64(r.Duration / time.Microsecond); us > 0 {
		dst = append(dst, `,"duration_ms":`...)
		dst = strconv.AppendInt(dst, us/1000, 10)
		frac := us % 1000
		dst = append(dst, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	}
	if r.Count != 0 {
		dst = append(dst, `,"count":`...)
		dst = strconv.AppendUint(dst, r.Count, 10)
	}
	dst = appendList(dst, `,"ids":`, r.IDs)
	if r.Sig != "" {
		dst = append(dst, `,"sig":"`...)
		dst = append(dst, r.Sig...)
		dst = append(dst, '"')
	}
	return dst
}

// appendSuffix appends `,"hash":"<hex>"}` and the line's '\n'.
func appendSuffix(dst []byte, h *[32]byte) []byte {
	dst = append(dst, hashPrefix...)
	dst = hex.AppendEncode(dst, h[:])
	return append(dst, '"', '}', '\n')
}

func appendMember(dst []byte, key, s string) []byte {
	if s == "" {
		return dst
	}
	return appendString(append(dst, key...), s)
}

func appendList(dst []byte, key string, l []string) []byte {
	if len(l) == 0 {
		return dst
	}
	dst = append(dst, key...)
	dst = append(dst, '[')
	for i, s := range l {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, s)
	}
	return append(dst, ']')
}

const lowerHex = "0123456789abcdef"

// appendString appends s as a JSON string: invalid UTF-8 replaced by
// U+FFFD, truncated to MaxStringBytes (ending in "…"), and only '"', '\\'
// and control characters escaped.
func appendString(dst []byte, s string) []byte {
	if len(s) <= MaxStringBytes && plainASCII(s) {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	s = clampString(s)
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', lowerHex[c>>4], lowerHex[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// plainASCII reports whether s is printable ASCII without '"' or '\\':
// the common case (ids, paths, methods), written as it is.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainByte[s[i]] {
			return false
		}
	}
	return true
}

var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// clampString returns s as it is recorded: valid UTF-8, at most
// MaxStringBytes.
func clampString(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= MaxStringBytes {
		return s
	}
	n := MaxStringBytes - len(ellipsis)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + ellipsis
}

// checkFields checks the members from kind on against the format's rules;
// the decoder enforces the same rules, so whatever the encoder writes
// decodes.
func checkFields(r *Record) error {
	if !knownKind(r.Kind) {
		return fmt.Errorf("%w: unknown kind %q", ErrInvalidRecord, r.Kind)
	}
	switch r.Decision {
	case "", Allow, Deny:
	default:
		return fmt.Errorf("%w: decision %q is neither %q nor %q", ErrInvalidRecord, r.Decision, Allow, Deny)
	}
	if r.ArgsSHA256 != "" && !validHexHash(r.ArgsSHA256) {
		return fmt.Errorf("%w: args_sha256 is not 64 lowercase hex digits", ErrInvalidRecord)
	}
	if r.Status < 0 || r.Status > 999 {
		return fmt.Errorf("%w: status %d outside 0–999", ErrInvalidRecord, r.Status)
	}
	if r.Bytes < 0 || r.Duration < 0 {
		return fmt.Errorf("%w: negative bytes or duration", ErrInvalidRecord)
	}
	for _, l := range [...][]string{r.Agents, r.Chain, r.IDs} {
		if len(l) > MaxListLen {
			return fmt.Errorf("%w: a list of %d entries (at most %d)", ErrRecordTooLarge, len(l), MaxListLen)
		}
		for _, s := range l {
			if s == "" {
				return fmt.Errorf("%w: empty list entry", ErrInvalidRecord)
			}
		}
	}
	switch {
	case r.Kind == KindCheckpoint:
		if r.Sig == "" || !onlyCheckpointFields(r) {
			return fmt.Errorf("%w: a checkpoint has prev, sig and nothing else", ErrInvalidRecord)
		}
		if !validSigText(r.Sig) {
			return fmt.Errorf("%w: sig is not a base64url Ed25519 signature", ErrInvalidRecord)
		}
	case r.Sig != "":
		return fmt.Errorf("%w: only checkpoints carry sig", ErrInvalidRecord)
	case r.Kind == KindSummary && r.Count == 0:
		return fmt.Errorf("%w: a summary has a count", ErrInvalidRecord)
	case r.Kind == KindDecision && r.Decision == "":
		return fmt.Errorf("%w: a decision record has a decision", ErrInvalidRecord)
	case r.Unenforced && (r.Kind != KindDecision || r.Decision != Deny):
		return fmt.Errorf("%w: only a decision record that denies is unenforced", ErrInvalidRecord)
	}
	return nil
}

func onlyCheckpointFields(r *Record) bool {
	return r.Decision == "" && !r.Unenforced && r.Reason == "" && r.RequestID == "" && r.Sub == "" &&
		r.Actor == "" && len(r.Agents) == 0 && len(r.Chain) == 0 && r.ClientID == "" &&
		r.JTI == "" && r.Method == "" && r.Host == "" && r.Path == "" && r.MCPMethod == "" &&
		r.Tool == "" && r.ArgsSHA256 == "" && r.Args == "" && r.Status == 0 && r.Bytes == 0 && r.Duration < time.Microsecond &&
		r.Count == 0 && len(r.IDs) == 0
}

// validHexHash reports whether s is a SHA-256 in 64 lowercase hex digits.
func validHexHash[S string | []byte](s S) bool {
	var h [32]byte
	return len(s) == 64 && decodeHex(h[:], []byte(s))
}

func validSigText(s string) bool {
	if len(s) != sigTextLen {
		return false
	}
	var sig [64]byte
	n, err := sigEncoding.Decode(sig[:], []byte(s))
	return err == nil && n == 64
}

// validStream reports whether s is a stream id: 1–MaxStreamBytes bytes of
// [A-Za-z0-9._-].
func validStream[S string | []byte](s S) bool {
	if len(s) == 0 || len(s) > MaxStreamBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !streamByte(s[i]) {
			return false
		}
	}
	return true
}

func streamByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// StreamID returns the stream id of a writer started at start on node:
// "<node>-<UTC start to the microsecond>", e.g.
// "gw1.example-20260301T120000.000000Z". Bytes of node outside
// [A-Za-z0-9._-] become '_'; an empty node is "node".
func StreamID(node string, start time.Time) string {
	const stamp = "20060102T150405.000000Z"
	b := appendNode(make([]byte, 0, MaxStreamBytes), node, MaxStreamBytes-1-len(stamp))
	b = append(b, '-')
	return string(start.UTC().AppendFormat(b, stamp))
}

// appendNode appends node ("node" when empty) in the stream alphabet, other
// bytes replaced by '_', until dst holds max bytes.
func appendNode(dst []byte, node string, max int) []byte {
	if node == "" {
		node = "node"
	}
	for i := 0; i < len(node) && len(dst) < max; i++ {
		c := node[i]
		if !streamByte(c) {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// AppendLine appends the line of r, chained on prev (the hash of the record
// before it, zero for the first record of a trail), and returns the line's
// hash. r must be complete: Seq, Stream and Time set, Prev either empty or
// the hex of prev, Hash ignored. It is the encoder the Writer uses, for
// tools and tests that build trails.
func AppendLine(dst []byte, prev [32]byte, r *Record) ([]byte, [32]byte, error) {
	if r.Seq == 0 {
		return dst, [32]byte{}, fmt.Errorf("%w: seq starts at 1", ErrInvalidRecord)
	}
	if !validStream(r.Stream) {
		return dst, [32]byte{}, fmt.Errorf("%w: stream %q is not 1–%d bytes of [A-Za-z0-9._-]", ErrInvalidRecord, r.Stream, MaxStreamBytes)
	}
	if !validTime(r.Time) {
		return dst, [32]byte{}, fmt.Errorf("%w: time outside years 0–9999", ErrInvalidRecord)
	}
	var pp *[32]byte
	if r.Prev != "" {
		if r.Prev != hex.EncodeToString(prev[:]) {
			return dst, [32]byte{}, fmt.Errorf("%w: prev does not name the previous hash", ErrInvalidRecord)
		}
		pp = &prev
	} else if r.Kind == KindCheckpoint {
		return dst, [32]byte{}, fmt.Errorf("%w: a checkpoint names prev", ErrInvalidRecord)
	}
	if r.Kind == KindCheckpoint && r.Seq < 2 {
		return dst, [32]byte{}, fmt.Errorf("%w: a checkpoint follows a record of its stream", ErrInvalidRecord)
	}
	if err := checkFields(r); err != nil {
		return dst, [32]byte{}, err
	}
	start := len(dst)
	var ts [timeLen]byte
	dst = appendHead(dst, r.Seq, r.Stream, appendTime(ts[:0], r.Time), pp)
	dst = appendFields(dst, r)
	if len(dst)-start+suffixLen+1 > MaxLineBytes {
		return dst[:start], [32]byte{}, fmt.Errorf("%w: line over %d bytes", ErrRecordTooLarge, MaxLineBytes)
	}
	h := newChainHasher().sum(&prev, dst[start:])
	return appendSuffix(dst, &h), h, nil
}

// chainHasher computes hash = SHA-256(prev_raw || body) (DESIGN.md §6),
// reusing its state and output buffer so the hot paths do not allocate.
type chainHasher struct {
	h   hash.Hash
	out []byte
}

func newChainHasher() *chainHasher {
	return &chainHasher{h: sha256.New(), out: make([]byte, 0, sha256.Size)}
}

func (c *chainHasher) sum(prev *[32]byte, body []byte) (out [32]byte) {
	c.h.Reset()
	c.h.Write(prev[:])
	c.h.Write(body)
	c.out = c.h.Sum(c.out[:0])
	copy(out[:], c.out)
	return out
}

// durationMS is the largest duration_ms integer part that fits a
// time.Duration once read back.
const durationMS = math.MaxInt64 / int64(time.Millisecond)
