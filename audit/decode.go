package audit

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// The strict decoder: it accepts exactly what the encoder writes (members in
// order, none empty, canonical escapes and numbers, no whitespace) and
// refuses everything else, so a line has one meaning and the bytes a
// verifier hashed are the record a query shows.

// field numbers members in their required order.
type field uint8

const (
	fSeq field = iota
	fStream
	fTime
	fPrev
	fKind
	fDecision
	fEnforced
	fReason
	fRequestID
	fSub
	fActor
	fAgents
	fChain
	fClientID
	fJTI
	fMethod
	fHost
	fPath
	fMCPMethod
	fTool
	fArgsSHA256
	fArgs
	fStatus
	fBytes
	fDuration
	fCount
	fIDs
	fSig
	numFields
)

func fieldByName(b []byte) (field, bool) {
	switch string(b) {
	case "seq":
		return fSeq, true
	case "stream":
		return fStream, true
	case "time":
		return fTime, true
	case "prev":
		return fPrev, true
	case "kind":
		return fKind, true
	case "decision":
		return fDecision, true
	case "enforced":
		return fEnforced, true
	case "reason":
		return fReason, true
	case "request_id":
		return fRequestID, true
	case "sub":
		return fSub, true
	case "actor":
		return fActor, true
	case "agents":
		return fAgents, true
	case "chain":
		return fChain, true
	case "client_id":
		return fClientID, true
	case "jti":
		return fJTI, true
	case "method":
		return fMethod, true
	case "host":
		return fHost, true
	case "path":
		return fPath, true
	case "mcp_method":
		return fMCPMethod, true
	case "tool":
		return fTool, true
	case "args_sha256":
		return fArgsSHA256, true
	case "args":
		return fArgs, true
	case "status":
		return fStatus, true
	case "bytes":
		return fBytes, true
	case "duration_ms":
		return fDuration, true
	case "count":
		return fCount, true
	case "ids":
		return fIDs, true
	case "sig":
		return fSig, true
	}
	return 0, false
}

func kindOf(b []byte) (Kind, bool) {
	switch string(b) {
	case "decision":
		return KindDecision, true
	case "outcome":
		return KindOutcome, true
	case "summary":
		return KindSummary, true
	case "checkpoint":
		return KindCheckpoint, true
	case "issued":
		return KindIssued, true
	case "delegated":
		return KindDelegated, true
	case "refreshed":
		return KindRefreshed, true
	case "revoked":
		return KindRevoked, true
	case "login_failed":
		return KindLoginFailed, true
	}
	return "", false
}

// checkpointFields are the members of a checkpoint record.
const checkpointFields = 1<<fSeq | 1<<fStream | 1<<fTime | 1<<fPrev | 1<<fKind | 1<<fSig

// view is what the verifier needs of a line, as slices of the line.
type view struct {
	body    []byte   // the line up to but without its closing '}'
	hash    [32]byte // the hash the line claims
	seq     uint64
	stream  []byte
	time    []byte // encoded time
	prev    []byte // 64 hex digits, nil when absent
	sig     []byte // base64url, nil when absent
	kind    Kind
	deny    bool   // decision is "deny"
	present uint32 // bit per field
}

// syntaxError says why a line is not a record.
type syntaxError struct {
	off int // byte offset in the line
	msg string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("byte %d: %s", e.off, e.msg) }

// decodeLine checks line (without its '\n') and fills v; when rec is not
// nil it also decodes every member into rec. It does not check the hash.
func decodeLine(line []byte, v *view, rec *Record) error {
	*v = view{}
	n := len(line)
	if n+1 > MaxLineBytes {
		return &syntaxError{0, fmt.Sprintf("line longer than %d bytes", MaxLineBytes)}
	}
	if n < len(`{"seq":1`)+suffixLen || line[n-1] != '}' || line[n-2] != '"' ||
		string(line[n-suffixLen:n-suffixLen+len(hashPrefix)]) != hashPrefix {
		return &syntaxError{max(0, n-suffixLen), `the line does not end with ,"hash":"<hex>"}`}
	}
	if !decodeHex(v.hash[:], line[n-2-64:n-2]) {
		return &syntaxError{n - 2 - 64, "hash is not 64 lowercase hex digits"}
	}
	v.body = line[:n-suffixLen]
	p := parser{b: v.body}
	if !p.lit(`{"seq":`) {
		return p.fail(`the line does not start with {"seq":`)
	}
	var ok bool
	if v.seq, ok = p.uint(); !ok {
		return p.fail("seq is not a positive integer")
	}
	v.present = 1 << fSeq
	last := fSeq
	for !p.done() {
		if !p.lit(`,"`) {
			return p.fail(`expected ,"`)
		}
		keyAt := p.i
		i := bytes.IndexByte(p.b[p.i:], '"')
		if i < 0 {
			return p.fail("unterminated member name")
		}
		key := p.b[p.i : p.i+i]
		p.i += i + 1
		f, known := fieldByName(key)
		switch {
		case !known:
			return &syntaxError{keyAt, fmt.Sprintf("unknown member %s", strconv.Quote(string(key)))}
		case f <= last:
			return &syntaxError{keyAt, fmt.Sprintf("member %q out of order or repeated", key)}
		}
		last = f
		v.present |= 1 << f
		if !p.lit(":") {
			return p.fail("expected :")
		}
		if err := p.member(f, v, rec); err != nil {
			return err
		}
	}
	const required = 1<<fSeq | 1<<fStream | 1<<fTime | 1<<fKind
	if v.present&required != required {
		return &syntaxError{0, "seq, stream, time and kind are required"}
	}
	switch {
	case v.kind == KindCheckpoint:
		if v.present != checkpointFields {
			return &syntaxError{0, "a checkpoint has seq, stream, time, prev, kind and sig, nothing else"}
		}
		if v.seq < 2 {
			return &syntaxError{0, "a checkpoint follows a record of its stream"}
		}
	case v.present&(1<<fSig) != 0:
		return &syntaxError{0, "only checkpoints carry sig"}
	case v.kind == KindSummary && v.present&(1<<fCount) == 0:
		return &syntaxError{0, "a summary has a count"}
	case v.kind == KindDecision && v.present&(1<<fDecision) == 0:
		return &syntaxError{0, "a decision record has a decision"}
	case v.present&(1<<fEnforced) != 0 && (v.kind != KindDecision || !v.deny):
		return &syntaxError{0, "only a decision record that denies carries enforced"}
	}
	if rec != nil {
		rec.Seq = v.seq
		rec.Stream = string(v.stream)
		rec.Time, _ = parseTime(v.time)
		if v.prev != nil {
			rec.Prev = string(v.prev)
		}
		rec.Kind = v.kind
		if v.sig != nil {
			rec.Sig = string(v.sig)
		}
		rec.Hash = hex.EncodeToString(v.hash[:])
	}
	return nil
}

// ParseLine decodes one line of a trail (its '\n' optional) strictly, as
// Record documents it. It checks the line's own form, not its place in the
// chain: that is Verify's job.
func ParseLine(line []byte) (Record, error) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	var v view
	var r Record
	if err := decodeLine(line, &v, &r); err != nil {
		return Record{}, fmt.Errorf("audit: not a record: %w", err)
	}
	return r, nil
}

// parser walks a line body.
type parser struct {
	b []byte
	i int
}

func (p *parser) done() bool { return p.i >= len(p.b) }

func (p *parser) fail(msg string) error { return &syntaxError{p.i, msg} }

func (p *parser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// uint reads a positive decimal integer without leading zeros.
func (p *parser) uint() (uint64, bool) {
	start := p.i
	var n uint64
	for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
		d := uint64(p.b[p.i] - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
		p.i++
	}
	return n, p.i > start && p.b[start] != '0'
}

// rawString reads a string member that is never escaped (stream, time,
// prev, kind, decision, sig): the bytes between the quotes, which contain
// no '"', '\\' or control character.
func (p *parser) rawString() ([]byte, bool) {
	if !p.lit(`"`) {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			p.i++
			return p.b[start : p.i-1], p.i-1 > start
		}
		if c < 0x20 || c == '\\' {
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// string reads a JSON string in the encoder's canonical form and returns
// it (decoded when dst is not nil).
func (p *parser) string(dst *string) error {
	if !p.lit(`"`) {
		return p.fail("expected a string")
	}
	start := p.i
	escaped, high := false, false
	decoded := 0
	for {
		if p.i >= len(p.b) {
			return &syntaxError{start, "unterminated string"}
		}
		c := p.b[p.i]
		switch {
		case c == '"':
			raw := p.b[start:p.i]
			p.i++
			if decoded == 0 {
				return &syntaxError{start, "empty string (an empty member is omitted)"}
			}
			if decoded > MaxStringBytes {
				return &syntaxError{start, fmt.Sprintf("string over %d bytes", MaxStringBytes)}
			}
			if high && !utf8.Valid(raw) {
				return &syntaxError{start, "invalid UTF-8"}
			}
			if dst != nil {
				if escaped {
					*dst = unescape(raw)
				} else {
					*dst = string(raw)
				}
			}
			return nil
		case c < 0x20:
			return &syntaxError{p.i, "control character in a string"}
		case c == '\\':
			escaped = true
			if p.i+1 >= len(p.b) {
				return &syntaxError{p.i, "bad escape"}
			}
			switch p.b[p.i+1] {
			case '"', '\\', 'n', 'r', 't':
				p.i += 2
			case 'u':
				// Only control characters other than \n, \r and \t are
				// written as \u00xx, in lowercase hex.
				if p.i+6 > len(p.b) || p.b[p.i+2] != '0' || p.b[p.i+3] != '0' {
					return &syntaxError{p.i, "non-canonical escape"}
				}
				var x [1]byte
				if !decodeHex(x[:], p.b[p.i+4:p.i+6]) || x[0] >= 0x20 || x[0] == '\n' || x[0] == '\r' || x[0] == '\t' {
					return &syntaxError{p.i, "non-canonical escape"}
				}
				p.i += 6
			default:
				return &syntaxError{p.i, "non-canonical escape"}
			}
		default:
			if c >= utf8.RuneSelf {
				high = true
			}
			p.i++
		}
		decoded++
	}
}

// unescape decodes the canonical escapes of raw (already checked).
func unescape(raw []byte) string {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		switch raw[i] {
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			var x [1]byte
			decodeHex(x[:], raw[i+3:i+5])
			out = append(out, x[0])
			i += 4
		default: // '"' or '\\'
			out = append(out, raw[i])
		}
	}
	return string(out)
}

func (p *parser) list(dst *[]string) error {
	if !p.lit("[") {
		return p.fail("expected a list")
	}
	n := 0
	for {
		var s string
		var sp *string
		if dst != nil {
			sp = &s
		}
		if err := p.string(sp); err != nil {
			return err
		}
		if dst != nil {
			*dst = append(*dst, s)
		}
		if n++; n > MaxListLen {
			return p.fail(fmt.Sprintf("list over %d entries", MaxListLen))
		}
		if p.lit("]") {
			return nil
		}
		if !p.lit(",") {
			return p.fail("expected , or ]")
		}
	}
}

// member reads the value of member f.
func (p *parser) member(f field, v *view, rec *Record) error {
	at := p.i
	bad := func(what string) error { return &syntaxError{at, what} }
	var str *string
	var list *[]string
	switch f {
	case fStream:
		s, ok := p.rawString()
		if !ok || !validStream(s) {
			return bad(fmt.Sprintf("stream is not 1–%d bytes of [A-Za-z0-9._-]", MaxStreamBytes))
		}
		v.stream = s
		return nil
	case fTime:
		s, ok := p.rawString()
		if !ok {
			return bad("time is not a string")
		}
		if _, ok := parseTime(s); !ok {
			return bad("time is not " + timeLayout)
		}
		v.time = s
		return nil
	case fPrev:
		s, ok := p.rawString()
		var h [32]byte
		if !ok || len(s) != 64 || !decodeHex(h[:], s) {
			return bad("prev is not 64 lowercase hex digits")
		}
		v.prev = s
		return nil
	case fKind:
		s, ok := p.rawString()
		k, known := kindOf(s)
		if !ok || !known {
			return bad("unknown kind")
		}
		v.kind = k
		return nil
	case fDecision:
		s, ok := p.rawString()
		if !ok || (string(s) != string(Allow) && string(s) != string(Deny)) {
			return bad(`decision is neither "allow" nor "deny"`)
		}
		v.deny = string(s) == string(Deny)
		if rec != nil {
			rec.Decision = Decision(s)
		}
		return nil
	case fEnforced:
		// Present only as false: an enforced decision omits it.
		if !p.lit("false") {
			return bad("enforced is present only as false")
		}
		if rec != nil {
			rec.Unenforced = true
		}
		return nil
	case fArgsSHA256:
		s, ok := p.rawString()
		if !ok || !validHexHash(s) {
			return bad("args_sha256 is not 64 lowercase hex digits")
		}
		if rec != nil {
			rec.ArgsSHA256 = string(s)
		}
		return nil
	case fSig:
		s, ok := p.rawString()
		if !ok || !validSigText(string(s)) {
			return bad("sig is not a base64url Ed25519 signature")
		}
		v.sig = s
		return nil
	case fStatus, fBytes, fCount:
		n, ok := p.uint()
		limit := uint64(math.MaxUint64) // count
		switch f {
		case fStatus:
			limit = 999
		case fBytes:
			limit = math.MaxInt64
		}
		if !ok || n > limit {
			return bad("not a positive integer in range")
		}
		if rec != nil {
			switch f {
			case fStatus:
				rec.Status = int(n)
			case fBytes:
				rec.Bytes = int64(n)
			default:
				rec.Count = n
			}
		}
		return nil
	case fDuration:
		return p.duration(rec)
	}
	if rec != nil {
		switch f {
		case fReason:
			str = &rec.Reason
		case fRequestID:
			str = &rec.RequestID
		case fSub:
			str = &rec.Sub
		case fActor:
			str = &rec.Actor
		case fClientID:
			str = &rec.ClientID
		case fJTI:
			str = &rec.JTI
		case fMethod:
			str = &rec.Method
		case fHost:
			str = &rec.Host
		case fPath:
			str = &rec.Path
		case fMCPMethod:
			str = &rec.MCPMethod
		case fTool:
			str = &rec.Tool
		case fArgs:
			str = &rec.Args
		case fAgents:
			list = &rec.Agents
		case fChain:
			list = &rec.Chain
		case fIDs:
			list = &rec.IDs
		}
	}
	switch f {
	case fAgents, fChain, fIDs:
		return p.list(list)
	}
	return p.string(str)
}

// duration reads duration_ms: digits, '.', exactly three digits, not zero.
func (p *parser) duration(rec *Record) error {
	at := p.i
	var ms uint64
	var ok bool
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++ // "0.xyz"
		ok = true
	} else {
		ms, ok = p.uint()
	}
	if !ok || ms > uint64(durationMS) || !p.lit(".") || len(p.b)-p.i < 3 {
		return &syntaxError{at, "duration_ms is not <ms>.<3 digits>"}
	}
	frac := 0
	for _, c := range p.b[p.i : p.i+3] {
		if c < '0' || c > '9' {
			return &syntaxError{at, "duration_ms is not <ms>.<3 digits>"}
		}
		frac = frac*10 + int(c-'0')
	}
	p.i += 3
	if p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
		return &syntaxError{at, "duration_ms has more than 3 decimals"}
	}
	us := ms*1000 + uint64(frac)
	if us == 0 || us > uint64(math.MaxInt64/int64(time.Microsecond)) {
		return &syntaxError{at, "duration_ms out of range (zero is omitted)"}
	}
	if rec != nil {
		rec.Duration = time.Duration(us) * time.Microsecond
	}
	return nil
}

// decodeHex decodes lowercase hex into dst (len(src) == 2*len(dst)).
func decodeHex(dst, src []byte) bool {
	if len(src) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := hexVal(src[2*i])
		lo, ok2 := hexVal(src[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// parseTime parses the trail's time format strictly (a date that exists,
// hours < 24, no leap second).
func parseTime(b []byte) (time.Time, bool) {
	if len(b) != timeLen || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' ||
		b[16] != ':' || b[19] != '.' || b[26] != 'Z' {
		return time.Time{}, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	us, ok7 := num(b[20:26])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) ||
		month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, us*1000, time.UTC)
	if t.Day() != day { // 31 April and the like
		return time.Time{}, false
	}
	return t, true
}

// hashOf returns SHA-256(prev || body) with a fresh hasher (not hot paths).
func hashOf(prev [32]byte, body []byte) [32]byte {
	return newChainHasher().sum(&prev, body)
}
