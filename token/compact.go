package token

import (
	"strings"

	"github.com/kavachgate/kavach/policy"
)

// Compact returns a copy of t laid out for a long stay in a cache: every
// string shares one allocation, every string list one backing array, the
// act chain one array, and the token, its kvc and its constraints one
// object. A decoded token is some forty small objects; a compacted one is
// four or five, so a full verify cache (65,536 tokens) costs the garbage
// collector a fraction of the marking work on every cycle, for every
// request of the process. t is not modified; the copy is equal to it
// field by field and shares nothing with it. Slices of the copy have
// their capacity capped at their length, so an append never writes into a
// neighbour.
func (t *Token) Compact() *Token {
	var size, lists int
	addStr := func(s string) { size += len(s) }
	addList := func(l []string) {
		lists += len(l)
		for _, s := range l {
			size += len(s)
		}
	}
	c := &t.Claims
	for _, s := range [...]string{c.Issuer, c.Subject, c.ClientID, c.Scope, c.ID, t.KeyID} {
		addStr(s)
	}
	addList(c.Audience)
	addList(t.Scopes)
	actors := 0
	for a := c.Actor; a != nil; a = a.Actor {
		addStr(a.Subject)
		actors++
	}
	var cn *policy.Constraints
	if k := c.Kavach; k != nil {
		addList(k.Chain)
		addList(k.Agents)
		cn = k.Constraints
		if cn != nil {
			addList(cn.Hosts)
			addList(cn.Methods)
			addList(cn.Paths)
		}
	}

	var b strings.Builder
	b.Grow(size)
	type span struct{ off, n int }
	spans := make([]span, 0, 8+actors+lists)
	put := func(s string) {
		spans = append(spans, span{b.Len(), len(s)})
		b.WriteString(s)
	}
	for _, s := range [...]string{c.Issuer, c.Subject, c.ClientID, c.Scope, c.ID, t.KeyID} {
		put(s)
	}
	for a := c.Actor; a != nil; a = a.Actor {
		put(a.Subject)
	}
	putList := func(l []string) {
		for _, s := range l {
			put(s)
		}
	}
	putList(c.Audience)
	putList(t.Scopes)
	if k := c.Kavach; k != nil {
		putList(k.Chain)
		putList(k.Agents)
		if cn != nil {
			putList(cn.Hosts)
			putList(cn.Methods)
			putList(cn.Paths)
		}
	}
	blob := b.String()
	next := 0
	str := func() string {
		s := spans[next]
		next++
		return blob[s.off : s.off+s.n]
	}

	type parts struct {
		tok  Token
		kvc  Kavach
		cnst policy.Constraints
	}
	p := new(parts)
	out := &p.tok
	out.Algorithm, out.External = t.Algorithm, t.External
	oc := &out.Claims
	oc.Issuer, oc.Subject, oc.ClientID, oc.Scope, oc.ID, out.KeyID = str(), str(), str(), str(), str(), str()
	oc.IssuedAt, oc.NotBefore, oc.Expiry = c.IssuedAt, c.NotBefore, c.Expiry
	if c.Confirmation != nil {
		oc.Confirmation = append([]byte(nil), c.Confirmation...)
	}
	if actors > 0 {
		chain := make([]Actor, actors)
		for i := range chain {
			chain[i].Subject = str()
			if i+1 < actors {
				chain[i].Actor = &chain[i+1]
			}
		}
		oc.Actor = &chain[0]
	}
	var backing []string
	if lists > 0 {
		backing = make([]string, lists)
	}
	used := 0
	list := func(l []string) []string {
		if l == nil {
			return nil
		}
		if len(l) == 0 {
			return []string{}
		}
		out := backing[used : used+len(l) : used+len(l)]
		for i := range out {
			out[i] = str()
		}
		used += len(l)
		return out
	}
	oc.Audience = list(c.Audience)
	out.Scopes = list(t.Scopes)
	if k := c.Kavach; k != nil {
		p.kvc = Kavach{Version: k.Version, Chain: list(k.Chain), Agents: list(k.Agents)}
		if cn != nil {
			p.cnst = policy.Constraints{
				Hosts:   list(cn.Hosts),
				Methods: list(cn.Methods),
				Paths:   list(cn.Paths),
				MaxBody: cn.MaxBody,
				Audit:   cn.Audit,
				Args:    cn.Args.Clone(),
				Rate:    cn.Rate,
			}
			if cn.CIDRs != nil {
				p.cnst.CIDRs = append(policy.PrefixList(nil), cn.CIDRs...)
			}
			p.kvc.Constraints = &p.cnst
		}
		oc.Kavach = &p.kvc
	}
	return out
}
