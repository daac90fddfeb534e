package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kavachgate/kavach/ratelimit"
)

// Small alphabets, so that generated rights and operations overlap and the
// interesting cases (a wildcard covering an exact entry, a prefix inside
// another, "/a*" against "/a/*") come up often.
var (
	fzSegments = []string{"a", "b", "*"}
	fzHosts    = []string{"a.x", "b.x", "*.x", "x", "a.b.x", "*.b.x"}
	fzCIDRs    = []string{"10.0.0.0/8", "10.0.0.0/16", "10.1.0.0/16", "10.1.0.0/24", "10.1.2.0/24", "192.168.0.0/16", "0.0.0.0/0", "fd00::/8", "fd00::/16", "fd00:1::/32", "::/0"}
	fzMethods  = []string{"GET", "POST", "PUT"}
	fzPaths    = []string{"/", "/a", "/a/*", "/a/b", "/*", "/a*", "/b"}
	fzBodies   = []ByteLimit{0, 1, 10, 100}
	fzAud      = []string{"https://r1/", "https://r2/", "https://r3/"}
	// Invalid entries a request may carry; Attenuate must refuse them.
	fzBadScopes = []string{"", "a::b", "a*", "a b"}
	fzBadHosts  = []string{"A.x", "a.x:1", "*", ""}
	fzBadPaths  = []string{"a", "/a/../b", "/a*b", ""}

	opSegments = []string{"a", "b", "c", "*"}
	opHosts    = []string{"a.x", "b.x", "x", "c.x", "a.b.x", "c.b.x", "A.X", "a.x.", "y", ""}
	opIPs      = []string{"10.0.0.1", "10.1.2.3", "10.1.3.1", "10.2.0.1", "192.168.1.1", "11.0.0.1", "fd00::1", "fd00:1::5", "2001:db8::1", "::ffff:10.1.2.3", "fe80::1%eth0", ""}
	opMethods  = []string{"GET", "POST", "PUT", "DELETE", "get"}
	opPaths    = []string{"/", "/a", "/a/", "/a/b", "/a/bc", "/ab", "/b", "/a/../b", "/c", "a"}
	opBodies   = []int64{-1, 0, 1, 5, 10, 50, 100, 1000}
	opAud      = []string{"https://r1/", "https://r2/", "https://r3/", "https://r4/", ""}
)

var fzT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fuzzBytes hands out the fuzzer's bytes as small choices; exhausted input
// reads as zeros.
type fuzzBytes struct{ b []byte }

func (f *fuzzBytes) next() byte {
	if len(f.b) == 0 {
		return 0
	}
	c := f.b[0]
	f.b = f.b[1:]
	return c
}

func (f *fuzzBytes) pick(n int) int { return int(f.next()) % n }

func (f *fuzzBytes) scope() string {
	n := f.pick(3) + 1
	segs := make([]string, n)
	for i := range segs {
		segs[i] = fzSegments[f.pick(len(fzSegments))]
	}
	return strings.Join(segs, ":")
}

// scopes returns 1–4 scopes, rarely none.
func (f *fuzzBytes) scopes() []string {
	if f.pick(16) == 0 {
		return nil
	}
	out := make([]string, f.pick(4)+1)
	for i := range out {
		out[i] = f.scope()
	}
	return out
}

// requestScopes mostly narrows the parent's scopes (a '*' segment may become
// a concrete one), sometimes asks for anything, and rarely sends nothing or
// an invalid scope.
func (f *fuzzBytes) requestScopes(parent []string) []string {
	switch f.pick(8) {
	case 0, 1, 2:
		return nil
	case 3:
		if f.pick(4) == 0 {
			return []string{}
		}
	}
	out := make([]string, f.pick(3)+1)
	for i := range out {
		switch {
		case f.pick(16) == 0:
			out[i] = fzBadScopes[f.pick(len(fzBadScopes))]
		case len(parent) > 0 && f.pick(8) != 0:
			segs := strings.Split(parent[f.pick(len(parent))], ":")
			for j, sg := range segs {
				if sg == "*" {
					segs[j] = fzSegments[f.pick(len(fzSegments))]
				}
			}
			out[i] = strings.Join(segs, ":")
		default:
			out[i] = f.scope()
		}
	}
	return out
}

// list returns nil (absent), rarely a non-nil empty list, or 1–3 distinct
// entries, drawn from from when it has entries (so that a request mostly
// narrows), else from alphabet; in a request occasionally an invalid one.
func (f *fuzzBytes) list(from, alphabet, bad []string) StringList {
	switch f.pick(8) {
	case 0, 1, 2:
		return nil
	case 3:
		if f.pick(4) == 0 {
			return StringList{}
		}
	}
	var out StringList
	for range f.pick(3) + 1 {
		e := alphabet[f.pick(len(alphabet))]
		if len(from) > 0 && f.pick(4) != 0 {
			e = from[f.pick(len(from))]
		}
		if bad != nil && f.pick(16) == 0 {
			e = bad[f.pick(len(bad))]
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}

// narrowHost turns a wildcard into one of its sub-hosts, sometimes.
func (f *fuzzBytes) narrowHosts(l StringList) StringList {
	for i, h := range l {
		if strings.HasPrefix(h, "*.") && f.pick(2) == 0 {
			l[i] = []string{"a", "b"}[f.pick(2)] + h[1:]
		}
	}
	return l
}

// narrowPaths turns a wildcard path into a narrower one, sometimes.
func (f *fuzzBytes) narrowPaths(l StringList) StringList {
	for i, p := range l {
		if strings.HasSuffix(p, "*") && f.pick(2) == 0 {
			l[i] = p[:len(p)-1] + []string{"a", "b/*", "a*", "/", ""}[f.pick(5)]
		}
	}
	return l
}

func (f *fuzzBytes) prefixes(from PrefixList) PrefixList {
	var strs []string
	for _, p := range from {
		// A parent prefix, or one 8 bits longer inside it.
		if f.pick(2) == 0 && p.Bits()+8 <= p.Addr().BitLen() {
			p = netip.PrefixFrom(p.Addr(), p.Bits()+8)
		}
		strs = append(strs, p.String())
	}
	l := f.list(strs, fzCIDRs, nil)
	if l == nil {
		return nil
	}
	out := make(PrefixList, 0, len(l))
	for _, s := range l {
		if p := netip.MustParsePrefix(s); !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func (f *fuzzBytes) constraints(parent *Constraints) Constraints {
	request := parent != nil
	var from Constraints
	var badHosts, badPaths []string
	if request {
		from = *parent
		badHosts, badPaths = fzBadHosts, fzBadPaths
	}
	c := Constraints{
		Hosts:   f.list(from.Hosts, fzHosts, badHosts),
		CIDRs:   f.prefixes(from.CIDRs),
		Methods: f.list(from.Methods, fzMethods, nil),
		Paths:   f.list(from.Paths, fzPaths, badPaths),
		MaxBody: fzBodies[f.pick(len(fzBodies))],
	}
	if request {
		c.Hosts = f.narrowHosts(c.Hosts)
		c.Paths = f.narrowPaths(c.Paths)
		if !slices.Contains(c.Hosts, "") && !slices.Contains(c.Paths, "") {
			// Narrowing may have made duplicates; keep requests mostly valid.
			c.Hosts = dedupe(c.Hosts)
			c.Paths = dedupe(c.Paths)
		}
	}
	if request {
		c.Args = f.args(from.Args)
	} else {
		c.Args = f.args(nil)
	}
	switch f.pick(4) {
	case 0:
		c.Audit = AuditRequired
	case 1:
		if request && f.pick(4) == 0 {
			c.Audit = "bogus"
		}
	}
	c.Rate = fzRates[f.pick(len(fzRates))]
	if !request && c.Rate == "bogus" {
		c.Rate = ""
	}
	return c
}

// Argument rules: each argument name has its kind (p paths, u hosts, e
// enum, n range, s max_len), so generated rules mostly combine; a request
// sometimes gives an argument another kind's rule, which must be refused.
var (
	fzTools    = []string{"t1", "t2"}
	fzArgNames = []string{"p", "u", "e", "n", "s"}
	fzArgPaths = []string{"/a/*", "/a/b", "/a*", "/b/*", "/"}
	fzArgHosts = []string{"a.x", "*.x", "b.x", "10.0.0.1", "*.0.0.1"}
	fzEnum     = []string{"a", "b", "c"}
	fzSchemes  = []string{"http", "https", "ftp"}
)

func (f *fuzzBytes) args(parent Args) Args {
	if f.pick(3) == 0 {
		return nil
	}
	out := Args{}
	for range f.pick(2) + 1 {
		tool := fzTools[f.pick(len(fzTools))]
		ta := out[tool]
		if ta == nil {
			ta = ToolArgs{}
			out[tool] = ta
		}
		for range f.pick(3) + 1 {
			name := fzArgNames[f.pick(len(fzArgNames))]
			var from *ArgRule
			if pr, ok := parent.For(tool)[name]; ok && f.pick(4) != 0 {
				from = &pr
			}
			kind := name
			if parent != nil && f.pick(16) == 0 {
				kind = fzArgNames[f.pick(len(fzArgNames))]
			}
			ta[name] = f.argRule(kind, from)
		}
	}
	return out
}

func (f *fuzzBytes) argRule(kind string, from *ArgRule) ArgRule {
	var r ArgRule
	if from == nil {
		from = &ArgRule{}
	}
	switch kind {
	case "p":
		r.Paths = f.narrowPaths(f.list(from.Paths, fzArgPaths, nil))
	case "u":
		r.Hosts = f.narrowHosts(f.list(from.Hosts, fzArgHosts, nil))
		r.URL = f.pick(3) == 0
		r.Schemes = f.list(from.Schemes, fzSchemes, nil)
		if f.pick(3) == 0 {
			r.Ports = PortList{[]int{443, 8443}[f.pick(2)]}
		}
	case "e":
		r.Enum = f.list(from.Enum, fzEnum, nil)
	case "n":
		lo, hi := int64(f.pick(6)), int64(f.pick(12))
		r.Range = &Range{Min: lo, Max: hi}
	case "s":
		r.MaxLen = int64(f.pick(6))
	}
	r.Paths, r.Hosts = dedupe(r.Paths), dedupe(r.Hosts)
	if r.Paths == nil && r.Hosts == nil && r.Enum == nil && r.Range == nil && r.MaxLen == 0 {
		r.MaxLen = int64(f.pick(6)) + 1
	}
	r.Optional = f.pick(4) == 0
	return r
}

// argValues are the argument values operations draw from, per name.
var argValues = map[string][]ArgValue{
	"p": {str("/a/b"), str("/a"), str("/a/"), str("/a/../b"), str("/a/./b"), str("/b/c"), str("a"), str("/A/b"), str("/ab"), str("/")},
	"u": {str("https://a.x/"), str("https://b.x:8443/"), str("http://10.0.0.1/"), str("http://10.0.0.1:443/"), str("ftp://a.x/"), str("a.x"),
		str("https://a.b.x/"), str("https://x/"), str("https://u@a.x/"), str("https://c.x/"), str("10.0.0.1")},
	"e": {str("a"), str("b"), str("c"), str("")},
	"n": {num("0"), num("5"), num("10"), num("11"), num("-1"), num("5.5")},
	"s": {str("ab"), str("abcdef"), str("")},
}

// fzRates are rates of generated constraints (absent, narrower and wider
// in count, in refill, or both; "bogus" only in requests).
var fzRates = []RateLimit{"", "", "1/s", "10/s", "60/m", "5/m", "600/m", "3600/h", "1/h", "100/h", "bogus"}

// allowedWithin is how many requests a bucket of rate r lets through in d
// from full: its count at once, then its refill (the invariant in
// requests, not in the formula rateWithin uses).
func allowedWithin(r RateLimit, d time.Duration) int64 {
	n, w, _ := ratelimit.ParseRate(string(r))
	return n + n*int64(d/time.Second)/int64(w/time.Second)
}

func dedupe(l StringList) StringList {
	if l == nil {
		return nil
	}
	out := StringList{}
	for _, e := range l {
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}

func (f *fuzzBytes) audience() []string {
	if f.pick(16) == 0 {
		return nil
	}
	out := []string{fzAud[f.pick(len(fzAud))]}
	if a := fzAud[f.pick(len(fzAud))]; f.pick(2) == 0 && a != out[0] {
		out = append(out, a)
	}
	return out
}

func (f *fuzzBytes) rights() Rights {
	r := Rights{
		Scopes:      f.scopes(),
		Audience:    f.audience(),
		Constraints: f.constraints(nil),
		Depth:       []int{0, 1, 1, 2, 3, 4, 5, 16, -1}[f.pick(9)],
	}
	if f.pick(8) != 0 {
		r.Expiry = fzT0.Add(time.Duration(f.pick(3)) * 10 * time.Second)
	}
	return r
}

func (f *fuzzBytes) request(parent *Rights) Request {
	r := Request{
		Scopes:      f.requestScopes(parent.Scopes),
		Audience:    f.list(parent.Audience, fzAud, []string{"https://r4/", ""}),
		Constraints: f.constraints(&parent.Constraints),
		Delegate:    f.pick(2) == 1,
		MaxDepth:    []int{0, 0, 0, -1, 1, 2, 3, 5, 16, 100}[f.pick(10)],
	}
	if s := []int{0, 0, -5, 0, 5, 20}[f.pick(6)]; s != 0 || f.pick(2) == 0 {
		r.Expiry = fzT0.Add(time.Duration(s) * time.Second)
	}
	return r
}

// ops generates operations from a generator seeded by the input, so each
// input checks the same operations every run. Half are aimed at what child
// allows (then one field may be disturbed), half are drawn at random.
func ops(data []byte, child *Rights, n int) []Operation {
	h := fnv.New64a()
	h.Write(data)
	rng := rand.New(rand.NewPCG(h.Sum64(), 0x6b617661))
	pick := func(n int) int { return rng.IntN(n) }
	from := func(list []string, alphabet []string) string {
		if len(list) > 0 && pick(8) != 0 {
			return list[pick(len(list))]
		}
		return alphabet[pick(len(alphabet))]
	}
	out := make([]Operation, n)
	for i := range out {
		var op Operation
		if i%2 == 0 {
			for range pick(3) {
				segs := make([]string, pick(3)+1)
				for j := range segs {
					segs[j] = opSegments[pick(len(opSegments))]
				}
				op.Scopes = append(op.Scopes, strings.Join(segs, ":"))
			}
			if s := opIPs[pick(len(opIPs))]; s != "" {
				op.ClientIP = netip.MustParseAddr(s)
			}
			op.Resource = opAud[pick(len(opAud))]
			op.Host = opHosts[pick(len(opHosts))]
			op.Method = opMethods[pick(len(opMethods))]
			op.Path = opPaths[pick(len(opPaths))]
			op.BodySize = opBodies[pick(len(opBodies))]
			op.At = fzT0.Add(time.Duration([]int{-100, -6, -1, 0, 1, 10, 30}[pick(7)]) * time.Second)
		} else {
			c := &child.Constraints
			for range pick(3) {
				if len(child.Scopes) == 0 {
					break
				}
				segs := strings.Split(child.Scopes[pick(len(child.Scopes))], ":")
				for j, sg := range segs {
					if sg == "*" && pick(4) != 0 {
						segs[j] = opSegments[pick(len(opSegments))]
					}
				}
				op.Scopes = append(op.Scopes, strings.Join(segs, ":"))
			}
			op.Resource = from(child.Audience, opAud)
			op.Host = from(c.Hosts, opHosts)
			if strings.HasPrefix(op.Host, "*.") {
				op.Host = []string{"a", "c", "a.b", ""}[pick(4)] + op.Host[1:]
			}
			if len(c.CIDRs) > 0 && pick(4) != 0 {
				a := c.CIDRs[pick(len(c.CIDRs))].Addr().As16()
				a[15] += byte(pick(3))
				op.ClientIP = netip.AddrFrom16(a)
				if c.CIDRs[0].Addr().Is4() {
					op.ClientIP = op.ClientIP.Unmap()
				}
			} else if s := opIPs[pick(len(opIPs))]; s != "" {
				op.ClientIP = netip.MustParseAddr(s)
			}
			op.Method = from(c.Methods, opMethods)
			op.Path = from(c.Paths, opPaths)
			if strings.HasSuffix(op.Path, "*") {
				op.Path = op.Path[:len(op.Path)-1] + []string{"", "x", "/y", "/../z"}[pick(4)]
			}
			op.BodySize = []int64{-1, 0, 1, 10, int64(c.MaxBody)}[pick(5)]
			op.At = fzT0.Add(time.Duration([]int{-100, -6, -1, -1, -1, 0, 1}[pick(7)]) * time.Second)
		}
		if pick(4) != 0 {
			op.Tool = []string{"t1", "t2", "t3"}[pick(3)]
			vals := map[string]ArgValue{}
			for _, n := range fzArgNames {
				switch pick(8) {
				case 0:
				case 1:
					vals[n] = ArgValue{Type: ArgNull}
				case 2:
					other := argValues[fzArgNames[pick(len(fzArgNames))]]
					vals[n] = other[pick(len(other))]
				default:
					vals[n] = argValues[n][pick(len(argValues[n]))]
				}
			}
			op.Args = func(n string) ArgValue { return vals[n] }
		}
		out[i] = op
	}
	return out
}

func cloneRights(r Rights) Rights {
	r.Scopes = slices.Clone(r.Scopes)
	r.Audience = slices.Clone(r.Audience)
	r.Constraints = inherit(&r.Constraints, &Constraints{})
	return r
}

var fieldNames = []string{"scope", "aud", "hosts", "cidrs", "methods", "paths", "max_body", "audit", "args", "rate", "exp", "depth"}

// FuzzAttenuate checks the delegation invariant: whatever Attenuate grants,
// the child is never permitted an operation its parent is not.
func FuzzAttenuate(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f"))
	f.Add([]byte("\x07\x03\x02\x05\x06\x07\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x04\x07\x03\x01\x02\x05\x06\x04\x04\x04\x04"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fb := &fuzzBytes{b: data}
		parent := fb.rights()
		req := fb.request(&parent)
		parentCopy, reqCopy := cloneRights(parent), cloneRequest(req)

		child, err := Attenuate(parent, req)

		if !reflect.DeepEqual(parent, parentCopy) || !reflect.DeepEqual(req, reqCopy) {
			t.Fatal("Attenuate modified an input")
		}
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || !slices.Contains(fieldNames, fe.Field) || fe.Reason == "" {
				t.Fatalf("error %v (%T) is not a *FieldError with a known field", err, err)
			}
			return
		}

		if !Covers(parent.Scopes, child.Scopes) {
			t.Fatalf("child scopes %q not covered by %q", child.Scopes, parent.Scopes)
		}
		for _, a := range child.Audience {
			if !slices.Contains(parent.Audience, a) {
				t.Fatalf("child audience %q not in parent's %q", a, parent.Audience)
			}
		}
		if fe := child.Constraints.Within(&parent.Constraints); fe != nil {
			t.Fatalf("child constraints not within parent's: %v", fe)
		}
		if parent.Constraints.Validate() == nil {
			if err := child.Constraints.Validate(); err != nil {
				t.Fatalf("valid parent, invalid child constraints: %v", err)
			}
		}
		if parent.Constraints.AuditRequired() && !child.Constraints.AuditRequired() {
			t.Fatal("child dropped audit: required")
		}
		if req.Scopes == nil && !slices.Equal(child.Scopes, parent.Scopes) {
			t.Fatalf("absent scopes not inherited: %q vs %q", child.Scopes, parent.Scopes)
		}
		if req.Constraints.Hosts == nil && !slices.Equal(child.Constraints.Hosts, parent.Constraints.Hosts) {
			t.Fatalf("absent hosts not inherited: %q vs %q", child.Constraints.Hosts, parent.Constraints.Hosts)
		}
		if req.Constraints.MaxBody == 0 && child.Constraints.MaxBody != parent.Constraints.MaxBody {
			t.Fatalf("absent max_body not inherited")
		}
		if pr, cr := parent.Constraints.Rate, child.Constraints.Rate; pr != "" {
			if cr == "" {
				t.Fatalf("child dropped the parent's rate %q", pr)
			}
			for _, d := range []time.Duration{0, time.Second, time.Minute, time.Hour, 24 * time.Hour} {
				if c, p := allowedWithin(cr, d), allowedWithin(pr, d); c > p {
					t.Fatalf("rate %q lets %d requests through in %v, the parent's %q only %d", cr, c, d, pr, p)
				}
			}
		}

		wantDepth := parent.Depth
		if req.Delegate {
			wantDepth++
		}
		limit := req.MaxDepth
		if limit == 0 {
			limit = DefaultMaxDepth
		}
		limit = min(limit, MaxDepth)
		if child.Depth != wantDepth || child.Depth > limit || child.Depth < 0 {
			t.Fatalf("depth %d (parent %d, delegate %v, max %d)", child.Depth, parent.Depth, req.Delegate, req.MaxDepth)
		}
		if !parent.Expiry.IsZero() && (child.Expiry.IsZero() || child.Expiry.After(parent.Expiry)) {
			t.Fatalf("child expiry %v outlives parent's %v", child.Expiry, parent.Expiry)
		}
		if !req.Expiry.IsZero() && !child.Expiry.Equal(req.Expiry) {
			t.Fatalf("child expiry %v, requested %v", child.Expiry, req.Expiry)
		}

		for _, op := range ops(data, &child, 64) {
			if child.Permits(&op) == nil {
				if fe := parent.Permits(&op); fe != nil {
					t.Fatalf("child permits %+v, parent denies it (%v)\nparent %+v\nchild  %+v", op, fe, parent, child)
				}
			}
			cc, pc := &child.Constraints, &parent.Constraints
			if cc.AllowsHost(op.Host) && !pc.AllowsHost(op.Host) ||
				cc.AllowsIP(op.ClientIP) && !pc.AllowsIP(op.ClientIP) ||
				cc.AllowsMethod(op.Method) && !pc.AllowsMethod(op.Method) ||
				cc.AllowsPath(op.Path) && !pc.AllowsPath(op.Path) ||
				cc.AllowsBody(op.BodySize) && !pc.AllowsBody(op.BodySize) ||
				op.Tool != "" && op.Args != nil && cc.PermitsArgs(op.Tool, op.Args) == nil && pc.PermitsArgs(op.Tool, op.Args) != nil {
				t.Fatalf("a child constraint allows what the parent's denies: %+v\nparent %+v\nchild  %+v", op, pc, cc)
			}
			for _, s := range op.Scopes {
				if Allows(child.Scopes, s) && !Allows(parent.Scopes, s) {
					t.Fatalf("child scopes %q allow %q, parent's %q do not", child.Scopes, s, parent.Scopes)
				}
			}
		}

		// The child owns its slices.
		if len(child.Scopes) > 0 && len(parent.Scopes) > 0 && &child.Scopes[0] == &parent.Scopes[0] ||
			len(child.Constraints.Hosts) > 0 && len(parent.Constraints.Hosts) > 0 && &child.Constraints.Hosts[0] == &parent.Constraints.Hosts[0] ||
			len(child.Constraints.Hosts) > 0 && len(req.Constraints.Hosts) > 0 && &child.Constraints.Hosts[0] == &req.Constraints.Hosts[0] {
			t.Fatal("child aliases an input slice")
		}
	})
}

// FuzzParseScopes: ParseScopes never panics, and what it accepts is valid,
// distinct, bounded and survives FormatScopes.
func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{"", "a", "a b", "mcp:* repository:read", "a  b", " a", "a\tb", "a::b", "a*", strings.Repeat("x ", 70)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		scopes, err := ParseScopes(s)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "scope" {
				t.Fatalf("error %v (%T) is not a scope *FieldError", err, err)
			}
			if scopes != nil {
				t.Fatalf("error with scopes %q", scopes)
			}
			return
		}
		if len(scopes) > MaxScopes || (s == "") != (scopes == nil) {
			t.Fatalf("ParseScopes(%q) = %d scopes", s, len(scopes))
		}
		for i, sc := range scopes {
			if err := ValidScope(sc); err != nil {
				t.Fatalf("accepted invalid scope %q: %v", sc, err)
			}
			if slices.Contains(scopes[:i], sc) {
				t.Fatalf("duplicate %q", sc)
			}
			if !Allows(scopes, sc) || !Match(sc, sc) {
				t.Fatalf("%q does not match itself", sc)
			}
		}
		back, err := ParseScopes(FormatScopes(scopes))
		if err != nil || !slices.Equal(back, scopes) {
			t.Fatalf("re-parse of %q: %q, %v", FormatScopes(scopes), back, err)
		}
		if ValidScope(s) == nil && !slices.Equal(scopes, []string{s}) {
			t.Fatalf("a valid scope %q parsed as %q", s, scopes)
		}
	})
}

// refUnmarshal is the obvious strict decoder built on encoding/json's
// tokenizer: slower, but easy to read, so it is the oracle for the
// hand-written reader in FuzzConstraintsJSON.
func refUnmarshal(data []byte) (Constraints, error) {
	var out Constraints
	fail := errors.New("rejected")
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return out, fail
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return out, err
		}
		key, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return out, err
		}
		if seen[key] || string(raw) == "null" {
			return out, fail
		}
		seen[key] = true
		switch key {
		case "hosts", "cidrs", "methods", "paths":
			var l []string
			if err := json.Unmarshal(raw, &l); err != nil || len(l) == 0 {
				return out, fail
			}
			switch key {
			case "hosts":
				out.Hosts = l
			case "methods":
				out.Methods = l
			case "paths":
				out.Paths = l
			case "cidrs":
				for _, s := range l {
					p, err := netip.ParsePrefix(s)
					if err != nil || p != p.Masked() || p.String() != s {
						return out, fail
					}
					out.CIDRs = append(out.CIDRs, p)
				}
			}
		case "max_body":
			s := string(raw)
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n <= 0 || strconv.FormatInt(n, 10) != s {
				return out, fail
			}
			out.MaxBody = ByteLimit(n)
		case "audit":
			var s string
			if err := json.Unmarshal(raw, &s); err != nil || s != "required" {
				return out, fail
			}
			out.Audit = AuditRequired
		case "args":
			// Not an independent oracle: args have their own table tests
			// (TestArgsJSON); here the rest of the object is.
			if err := out.Args.UnmarshalJSON(raw); err != nil {
				return out, fail
			}
		case "rate":
			var s string
			if err := json.Unmarshal(raw, &s); err != nil || s == "" {
				return out, fail
			}
			out.Rate = RateLimit(s)
		default:
			return out, fail
		}
	}
	if _, err := dec.Token(); err != nil {
		return out, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return out, fail
	}
	return out, out.Validate()
}

// FuzzConstraintsJSON checks the constraint decoder against refUnmarshal:
// the same inputs accepted, the same values decoded, and what is accepted
// encodes back to something that decodes the same.
func FuzzConstraintsJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { } `, `null`, `[]`, `{"hosts":null}`, `{"hosts":[]}`, `{"hosts":["a.x","*.b.x"]}`,
		`{"hosts":["a.x",null]}`, `{"cidrs":["10.0.0.0/8","2001:db8::/32"]}`, `{"cidrs":["10.0.0.1/8"]}`,
		`{"methods":["GET"],"paths":["/a/*","/\u00e9"],"max_body":5,"audit":"required"}`,
		`{"max_body":0}`, `{"max_body":1e3}`, `{"max_body":-1}`, `{"max_body":007}`, `{"audit":""}`,
		`{"hosts":["a.x"],"hosts":["b.x"]}`, `{"Hosts":["a.x"]}`, `{"\u0068osts":["a.x"]}`, `{"paths":["/a\"b"]}`,
		`{"hosts":["a.x"],}`, `{"hosts":["a.x"]} x`, `{"paths":["/\xff"]}`, "{\"paths\":[\"/a\tb\"]}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got Constraints
		err := got.UnmarshalJSON(data)
		want, wantErr := refUnmarshal(data)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("UnmarshalJSON(%q): error %v, reference decoder: %v", data, err, wantErr)
		}
		if err != nil {
			if !got.IsZero() {
				t.Fatalf("failed decode of %q left %+v", data, got)
			}
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("UnmarshalJSON(%q) = %+v, reference %+v", data, got, want)
		}
		if json.Valid(data) {
			var viaJSON Constraints
			if err := json.Unmarshal(data, &viaJSON); err != nil || !reflect.DeepEqual(viaJSON, got) {
				t.Fatalf("json.Unmarshal(%q) = %+v, %v", data, viaJSON, err)
			}
		}
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", got, err)
		}
		var back Constraints
		if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, got) {
			t.Fatalf("round trip %s: %+v, %v", b, back, err)
		}
	})
}
