// Package storetest is the conformance suite of store.Store: every
// implementation runs it, so they all keep the rules store.go documents.
//
//	func TestSQLite(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "kavach.db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/revocation"
)

// Run runs every test of the suite, in parallel subtests. open returns a
// new, empty store each time it is called; the suite closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Users", testUsers},
		{"IdPSignIn", testIdPSignIn},
		{"IdPSignInAtomic", testIdPSignInAtomic},
		{"GrantVia", testGrantVia},
		{"UserExists", testUserExists},
		{"NotFound", testNotFound},
		{"Times", testTimes},
		{"Agents", testAgents},
		{"AgentExistsIsAtomic", testAgentExistsIsAtomic},
		{"AgentRefused", testAgentRefused},
		{"Grants", testGrants},
		{"ChainActive", testChainActive},
		{"RevokeCascade", testRevokeCascade},
		{"RevokeAgain", testRevokeAgain},
		{"RevokeGrantFamily", testRevokeGrantFamily},
		{"RevokeUser", testRevokeUser},
		{"Clients", testClients},
		{"MetadataClients", testMetadataClients},
		{"HasConsent", testHasConsent},
		{"Consents", testConsents},
		{"Codes", testCodes},
		{"RefreshRotation", testRefreshRotation},
		{"RefreshCollisionIsAtomic", testRefreshCollisionIsAtomic},
		{"AuthRequests", testAuthRequests},
		{"Sessions", testSessions},
		{"SigningKeys", testSigningKeys},
		{"Revocations", testRevocations},
		{"Sweep", testSweep},
		{"RaceConsumeCode", testRaceConsumeCode},
		{"RaceRotateRefresh", testRaceRotateRefresh},
		{"RaceReadersAndWriters", testRaceReadersAndWriters},
		{"RaceCreateUnderRevoke", testRaceCreateUnderRevoke},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// t0 is the suite's clock: whole milliseconds, as the store keeps them.
var t0 = time.UnixMilli(1_750_000_000_000).UTC()

func at(d time.Duration) time.Time { return t0.Add(d) }

var ctx = context.Background()

// cnst has every constraint field, so a field the store drops shows.
var cnst = policy.Constraints{
	Hosts:   policy.StringList{"mcp.internal", "*.corp.example"},
	CIDRs:   policy.PrefixList{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")},
	Methods: policy.StringList{"GET", "POST"},
	Paths:   policy.StringList{"/mcp", "/api/repos/*"},
	MaxBody: 5 << 20,
	Audit:   policy.AuditRequired,
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// is fails unless err matches want (nil: no error).
func is(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) { // errors.Is(err, nil) is err == nil
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, deref(got), deref(want))
	}
}

// deref prints pointers' values, and slices of pointers element by element.
func deref(v any) any {
	rv := reflect.ValueOf(v)
	switch {
	case rv.Kind() == reflect.Pointer && !rv.IsNil():
		return rv.Elem().Interface()
	case rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Pointer:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = deref(rv.Index(i).Interface())
		}
		return out
	}
	return v
}

func newUser(t *testing.T, s store.Store, id string) *store.User {
	t.Helper()
	u := &store.User{ID: id, Name: "name-" + id, CreatedAt: t0}
	must(t, s.CreateUser(ctx, u))
	return u
}

// rootAgent creates a root agent of owner with grant gid.
func rootAgent(t *testing.T, s store.Store, owner, id, gid string) *store.Agent {
	t.Helper()
	a, g := rootSpec(owner, id, gid)
	must(t, s.CreateAgent(ctx, a, g, t0))
	return a
}

func rootSpec(owner, id, gid string) (*store.Agent, *store.Grant) {
	a := &store.Agent{ID: id, Name: id, Owner: owner, Chain: []string{gid}, Agents: []string{id},
		Scopes: []string{"mcp:review"}, SecretHash: []byte("secret-" + id), CreatedAt: t0}
	g := &store.Grant{ID: gid, User: owner, Grantee: id, Scopes: a.Scopes, CreatedAt: t0}
	return a, g
}

// childAgent creates a child of parent with grant gid.
func childAgent(t *testing.T, s store.Store, parent *store.Agent, id, gid string) *store.Agent {
	t.Helper()
	a, g := childSpec(parent, id, gid)
	must(t, s.CreateAgent(ctx, a, g, t0))
	return a
}

func childSpec(parent *store.Agent, id, gid string) (*store.Agent, *store.Grant) {
	a := &store.Agent{ID: id, Name: id, Owner: parent.Owner, Parent: parent.ID,
		Chain:  append(slices.Clone(parent.Chain), gid),
		Agents: append(slices.Clone(parent.Agents), id),
		Scopes: []string{"mcp:review"}, SecretHash: []byte("secret-" + id), CreatedAt: t0}
	g := &store.Grant{ID: gid, Parent: parent.Chain[len(parent.Chain)-1], User: parent.Owner, Grantee: id,
		Scopes: a.Scopes, CreatedAt: t0}
	return a, g
}

func hash(s string) []byte {
	h := make([]byte, 32)
	copy(h, s)
	return h
}

func testUsers(t *testing.T, s store.Store) {
	alice := &store.User{ID: "usr_alice", Name: "alice", PasswordHash: "$2a$10$abc",
		Entitlements: map[string][]string{"https://mcp.example/mcp": {"mcp:review", "repository:*"}},
		CreatedAt:    at(time.Second)}
	bob := &store.User{ID: "usr_bob", Name: "bob", CreatedAt: t0,
		Entitlements: map[string][]string{}} // empty: read back as nil
	must(t, s.CreateUser(ctx, alice))
	must(t, s.CreateUser(ctx, bob))

	got, err := s.GetUser(ctx, "usr_alice")
	must(t, err)
	equal(t, "GetUser", got, alice)
	got, err = s.GetUserByName(ctx, "bob")
	must(t, err)
	equal(t, "GetUserByName", got, &store.User{ID: "usr_bob", Name: "bob", CreatedAt: t0})

	list, err := s.ListUsers(ctx)
	must(t, err)
	equal(t, "ListUsers ids", ids(list), []string{"usr_bob", "usr_alice"}) // creation order

	ent := map[string][]string{"https://a.example/": {"x:read"}, "https://b.example/": {"y:*"}}
	must(t, s.SetEntitlements(ctx, "usr_bob", ent, at(time.Minute)))
	must(t, s.SetPassword(ctx, "usr_bob", "$argon2id$v=19$..."))
	got, err = s.GetUser(ctx, "usr_bob")
	must(t, err)
	equal(t, "after SetEntitlements and SetPassword", got,
		&store.User{ID: "usr_bob", Name: "bob", PasswordHash: "$argon2id$v=19$...", Entitlements: ent,
			EntitlementsSource: store.EntitlementsAdmin, EntitlementsAt: at(time.Minute), CreatedAt: t0})
}

func ids[T any](list []*T) []string {
	var out []string
	for _, v := range list {
		rv := reflect.ValueOf(v).Elem()
		f := rv.FieldByName("ID")
		if !f.IsValid() {
			f = rv.FieldByName("KID")
		}
		out = append(out, f.String())
	}
	return out
}

func testUserExists(t *testing.T, s store.Store) {
	newUser(t, s, "usr_a")
	is(t, "same id", s.CreateUser(ctx, &store.User{ID: "usr_a", Name: "other", CreatedAt: t0}), store.ErrExists)
	is(t, "same name", s.CreateUser(ctx, &store.User{ID: "usr_b", Name: "name-usr_a", CreatedAt: t0}), store.ErrExists)
	_, err := s.GetUser(ctx, "usr_b")
	is(t, "the refused user", err, store.ErrNotFound)
}

func testNotFound(t *testing.T, s store.Store) {
	newUser(t, s, "usr_a")
	rootAgent(t, s, "usr_a", "agt_a", "dlg_a")
	nf := store.ErrNotFound
	for name, call := range map[string]func() error{
		"GetUser":         func() error { _, err := s.GetUser(ctx, "usr_x"); return err },
		"GetUserByName":   func() error { _, err := s.GetUserByName(ctx, "x"); return err },
		"SetEntitlements": func() error { return s.SetEntitlements(ctx, "usr_x", nil, t0) },
		"SetPassword":     func() error { return s.SetPassword(ctx, "usr_x", "h") },
		"UserByIdentity":  func() error { _, err := s.UserByIdentity(ctx, "https://idp.example", "x"); return err },
		"IdentityLinks":   func() error { _, err := s.IdentityLinks(ctx, "usr_x"); return err },
		"SignInIdP": func() error {
			_, _, err := s.SignInIdP(ctx, &store.IdPSignIn{Link: store.IdentityLink{Issuer: "https://idp.example", Subject: "x", SeenAt: t0}})
			return err
		},
		"GetAgent":          func() error { _, err := s.GetAgent(ctx, "agt_x"); return err },
		"ListAgents":        func() error { _, err := s.ListAgents(ctx, "usr_x"); return err },
		"Children":          func() error { _, err := s.Children(ctx, "agt_x"); return err },
		"SetAgentCred":      func() error { return s.SetAgentCredential(ctx, "agt_x", []byte("h"), nil) },
		"GetGrant":          func() error { _, err := s.GetGrant(ctx, "dlg_x"); return err },
		"ChainActive":       func() error { return s.ChainActive(ctx, []string{"dlg_a", "dlg_x"}, t0) },
		"ChainActiveEmpty":  func() error { return s.ChainActive(ctx, nil, t0) },
		"RevokeAgent":       func() error { _, err := s.RevokeAgent(ctx, "agt_x", t0, at(time.Hour)); return err },
		"RevokeGrant":       func() error { _, err := s.RevokeGrant(ctx, "dlg_x", t0, at(time.Hour)); return err },
		"RevokeUser":        func() error { return s.RevokeUser(ctx, "usr_x", t0, cutoff("usr_x")) },
		"GetClient":         func() error { _, err := s.GetClient(ctx, "cli_x"); return err },
		"ConsumeCode":       func() error { _, err := s.ConsumeCode(ctx, hash("x"), t0); return err },
		"GetRefresh":        func() error { _, err := s.GetRefresh(ctx, hash("x")); return err },
		"RotateRefresh":     func() error { _, err := s.RotateRefresh(ctx, hash("x"), refresh("y", "dlg_a"), nil, t0, 0); return err },
		"SetClientRes":      func() error { return s.SetClientResources(ctx, "cli_x", []string{"https://mcp.example/mcp"}) },
		"GetAuthRequest":    func() error { _, err := s.GetAuthRequest(ctx, "x", t0); return err },
		"DeleteAuthRequest": func() error { return s.DeleteAuthRequest(ctx, "x") },
		"PutSession":        func() error { return s.PutSession(ctx, &store.Session{Hash: hash("x"), User: "usr_x"}) },
		"GetSession":        func() error { _, err := s.GetSession(ctx, hash("x"), t0); return err },
		"DeleteSession":     func() error { return s.DeleteSession(ctx, hash("x")) },
		"RetireSigningKey":  func() error { return s.RetireSigningKey(ctx, "kid_x", t0) },
	} {
		is(t, name, call(), nf)
	}
	// Lists of something that exists but is empty are not an error.
	kids, err := s.Children(ctx, "agt_a")
	is(t, "Children of a leaf", err, nil)
	equal(t, "Children of a leaf", len(kids), 0)
}

func cutoff(user string) revocation.Entry {
	return revocation.Entry{ID: user, Cutoff: revocation.CutoffSubject, Before: t0, Until: at(2 * time.Hour)}
}

func refresh(h, family string) *store.RefreshToken {
	return &store.RefreshToken{Hash: hash(h), Family: family, ClientID: "cli_app", User: "usr_a",
		Resource: "https://mcp.example/mcp", Scopes: []string{"mcp:review"}, CreatedAt: t0, ExpiresAt: at(24 * time.Hour)}
}

// testTimes: times come back in UTC, truncated to the millisecond, and the
// zero time stays zero.
func testTimes(t *testing.T, s store.Store) {
	created := time.Date(2025, 6, 1, 14, 0, 0, 123_456_789, time.FixedZone("CEST", 2*3600))
	must(t, s.CreateUser(ctx, &store.User{ID: "usr_a", Name: "a", CreatedAt: created}))
	got, err := s.GetUser(ctx, "usr_a")
	must(t, err)
	want := time.Date(2025, 6, 1, 12, 0, 0, 123_000_000, time.UTC)
	if got.CreatedAt != want || got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, want)
	}
	if !got.RevokedAt.IsZero() {
		t.Errorf("RevokedAt = %v, want the zero time", got.RevokedAt)
	}
}

func testAgents(t *testing.T, s store.Store) {
	newUser(t, s, "usr_a")
	newUser(t, s, "usr_b")
	root := &store.Agent{ID: "agt_root", Name: "orchestrator", Owner: "usr_a", Chain: []string{"dlg_root"},
		Agents: []string{"agt_root"}, Scopes: []string{"mcp:review", "repository:read"}, Constraints: cnst,
		PublicKey: []byte(`{"kty":"OKP","crv":"Ed25519","x":"abc"}`), CreatedAt: t0, ExpiresAt: at(24 * time.Hour)}
	rootGrant := &store.Grant{ID: "dlg_root", User: "usr_a", Grantee: "agt_root", Scopes: root.Scopes,
		Audience: []string{"https://mcp.example/mcp"}, Constraints: cnst, CreatedAt: t0, ExpiresAt: at(24 * time.Hour)}
	must(t, s.CreateAgent(ctx, root, rootGrant, t0))

	got, err := s.GetAgent(ctx, "agt_root")
	must(t, err)
	equal(t, "GetAgent", got, root)
	g, err := s.GetGrant(ctx, "dlg_root")
	must(t, err)
	equal(t, "GetGrant", g, rootGrant)

	child := childAgent(t, s, root, "agt_child", "dlg_child")
	grandchild := childAgent(t, s, child, "agt_grand", "dlg_grand")
	other := rootAgent(t, s, "usr_b", "agt_other", "dlg_other")
	got, err = s.GetAgent(ctx, "agt_grand")
	must(t, err)
	equal(t, "grandchild", got, grandchild)

	all, err := s.ListAgents(ctx, "")
	must(t, err)
	equal(t, "ListAgents", ids(all), []string{"agt_child", "agt_grand", "agt_other", "agt_root"})
	mine, err := s.ListAgents(ctx, "usr_b")
	must(t, err)
	equal(t, "ListAgents(usr_b)", mine, []*store.Agent{other})
	kids, err := s.Children(ctx, "agt_root")
	must(t, err)
	equal(t, "Children", kids, []*store.Agent{child})

	// Switching from a secret to a key clears the secret.
	key := []byte(`{"kty":"OKP","crv":"Ed25519","x":"def"}`)
	must(t, s.SetAgentCredential(ctx, "agt_child", nil, key))
	got, err = s.GetAgent(ctx, "agt_child")
	must(t, err)
	if got.SecretHash != nil || !bytes.Equal(got.PublicKey, key) {
		t.Errorf("after SetAgentCredential: secret %x, key %s", got.SecretHash, got.PublicKey)
	}
}

func testAgentExistsIsAtomic(t *testing.T, s store.Store) {
	newUser(t, s, "usr_a")
	rootAgent(t, s, "usr_a", "agt_a", "dlg_a")

	// The agent id is taken: the new grant must not stay behind.
	a, g := rootSpec("usr_a", "agt_a", "dlg_new")
	is(t, "same agent id", s.CreateAgent(ctx, a, g, t0), store.ErrExists)
	_, err := s.GetGrant(ctx, "dlg_new")
	is(t, "grant of the refused agent", err, store.ErrNotFound)

	a, g = rootSpec("usr_a", "agt_new", "dlg_a")
	is(t, "same grant id", s.CreateAgent(ctx, a, g, t0), store.ErrExists)
	_, err = s.GetAgent(ctx, "agt_new")
	is(t, "the refused agent", err, store.ErrNotFound)
}

func testAgentRefused(t *testing.T, s store.Store) {
	newUser(t, s, "usr_a")
	newUser(t, s, "usr_gone")
	newUser(t, s, "usr_b")
	must(t, s.RevokeUser(ctx, "usr_gone", t0, cutoff("usr_gone")))
	live := rootAgent(t, s, "usr_a", "agt_live", "dlg_live")
	revoked := rootAgent(t, s, "usr_a", "agt_revoked", "dlg_revoked")
	_, err := s.RevokeAgent(ctx, "agt_revoked", t0, at(time.Hour))
	must(t, err)
	a, g := rootSpec("usr_a", "agt_expiring", "dlg_expiring")
	a.ExpiresAt = at(time.Hour)
	must(t, s.CreateAgent(ctx, a, g, t0))
	expiring := a
	// The agent itself never expires, but the root grant does.
	a, g = rootSpec("usr_a", "agt_shortgrant", "dlg_shortgrant")
	g.ExpiresAt = at(time.Hour)
	must(t, s.CreateAgent(ctx, a, g, t0))
	shortGrant := a

	ghost := &store.Agent{ID: "agt_ghost", Owner: "usr_a", Chain: []string{"dlg_ghost"}, Agents: []string{"agt_ghost"}}

	for _, tt := range []struct {
		name string
		spec func() (*store.Agent, *store.Grant)
		now  time.Time
		want error // nil: any error but the sentinels
	}{
		{"unknown owner", func() (*store.Agent, *store.Grant) { return rootSpec("usr_x", "agt_n", "dlg_n") }, t0, store.ErrNotFound},
		{"revoked owner", func() (*store.Agent, *store.Grant) { return rootSpec("usr_gone", "agt_n", "dlg_n") }, t0, store.ErrInactive},
		{"unknown parent", func() (*store.Agent, *store.Grant) { return childSpec(ghost, "agt_n", "dlg_n") }, t0, store.ErrNotFound},
		{"revoked parent", func() (*store.Agent, *store.Grant) { return childSpec(revoked, "agt_n", "dlg_n") }, t0, store.ErrInactive},
		{"expired parent", func() (*store.Agent, *store.Grant) { return childSpec(expiring, "agt_n", "dlg_n") }, at(time.Hour), store.ErrInactive},
		{"expired grant in the chain", func() (*store.Agent, *store.Grant) { return childSpec(shortGrant, "agt_n", "dlg_n") }, at(2 * time.Hour), store.ErrInactive},
		{"owner differs from parent's", func() (*store.Agent, *store.Grant) {
			a, g := childSpec(live, "agt_n", "dlg_n")
			a.Owner, g.User = "usr_b", "usr_b"
			return a, g
		}, t0, nil},
		{"chain does not end with the grant", func() (*store.Agent, *store.Grant) {
			a, g := rootSpec("usr_a", "agt_n", "dlg_n")
			a.Chain = []string{"dlg_other"}
			return a, g
		}, t0, nil},
		{"grant parent is not the parent's grant", func() (*store.Agent, *store.Grant) {
			a, g := childSpec(live, "agt_n", "dlg_n")
			g.Parent = "dlg_expiring"
			return a, g
		}, t0, nil},
	} {
		a, g := tt.spec()
		err := s.CreateAgent(ctx, a, g, tt.now)
		switch {
		case tt.want != nil && !errors.Is(err, tt.want):
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.want)
		case tt.want == nil && (err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInactive) || errors.Is(err, store.ErrExists)):
			t.Errorf("%s: error %v, want an inconsistency error", tt.name, err)
		}
		if _, err := s.GetAgent(ctx, "agt_n"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: the refused agent was stored (%v)", tt.name, err)
		}
		if _, err := s.GetGrant(ctx, "dlg_n"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: the refused agent's grant was stored (%v)", tt.name, err)
		}
	}
	// Before it expires, the same child is accepted.
	a, g = childSpec(shortGrant, "agt_n", "dlg_n")
	must(t, s.CreateAgent(ctx, a, g, at(59*time.Minute)))
}

func testGrants(t *testing.T, s store.Store) {
	newUser(t, s, "usr_a")
	newUser(t, s, "usr_b")
	consent := &store.Grant{ID: "dlg_consent", User: "usr_a", Grantee: "cli_app", Scopes: []string{"mcp:review"},
		Audience: []string{"https://mcp.example/mcp"}, CreatedAt: t0, ExpiresAt: at(30 * 24 * time.Hour)}
	must(t, s.CreateGrant(ctx, consent))
	got, err := s.GetGrant(ctx, "dlg_consent")
	must(t, err)
	equal(t, "GetGrant", got, consent)
	is(t, "same id", s.CreateGrant(ctx, consent), store.ErrExists)

	hop := &store.Grant{ID: "dlg_hop", Parent: "dlg_consent", User: "usr_a", Grantee: "agt_x", Scopes: []string{"mcp:review"},
		Constraints: cnst, CreatedAt: t0}
	must(t, s.CreateGrant(ctx, hop))
	got, err = s.GetGrant(ctx, "dlg_hop")
	must(t, err)
	equal(t, "child grant", got, hop)

	is(t, "unknown user", s.CreateGrant(ctx, &store.Grant{ID: "dlg_n", User: "usr_x", CreatedAt: t0}), store.ErrNotFound)
	is(t, "unknown parent", s.CreateGrant(ctx, &store.Grant{ID: "dlg_n", Parent: "dlg_x", User: "usr_a", CreatedAt: t0}), store.ErrNotFound)
	is(t, "own parent", s.CreateGrant(ctx, &store.Grant{ID: "dlg_n", Parent: "dlg_n", User: "usr_a", CreatedAt: t0}), store.ErrNotFound)
	if err := s.CreateGrant(ctx, &store.Grant{ID: "dlg_n", Parent: "dlg_consent", User: "usr_b", CreatedAt: t0}); err == nil {
		t.Error("a grant below another user's grant was accepted")
	}
	_, err = s.RevokeGrant(ctx, "dlg_consent", t0, at(time.Hour))
	must(t, err)
	is(t, "revoked parent", s.CreateGrant(ctx, &store.Grant{ID: "dlg_n", Parent: "dlg_consent", User: "usr_a", CreatedAt: t0}), store.ErrInactive)
	_, err = s.GetGrant(ctx, "dlg_n")
	is(t, "refused grants", err, store.ErrNotFound)
}

func testChainActive(t *testing.T, s store.Store) {
	newUser(t, s, "usr_a")
	a, g := rootSpec("usr_a", "agt_a", "dlg_a")
	g.ExpiresAt = at(time.Hour)
	must(t, s.CreateAgent(ctx, a, g, t0))
	b := childAgent(t, s, a, "agt_b", "dlg_b")
	c := childAgent(t, s, b, "agt_c", "dlg_c")

	is(t, "active chain", s.ChainActive(ctx, c.Chain, t0), nil)
	is(t, "just before expiry", s.ChainActive(ctx, c.Chain, at(time.Hour-time.Millisecond)), nil)
	is(t, "at expiry", s.ChainActive(ctx, c.Chain, at(time.Hour)), store.ErrInactive)
	is(t, "unknown grant", s.ChainActive(ctx, append(slices.Clone(c.Chain), "dlg_x"), t0), store.ErrNotFound)

	_, err := s.RevokeAgent(ctx, "agt_c", t0, at(time.Hour))
	must(t, err)
	is(t, "revoked last grant", s.ChainActive(ctx, c.Chain, t0), store.ErrInactive)
	is(t, "the parent's chain", s.ChainActive(ctx, b.Chain, t0), nil)

	must(t, s.RevokeUser(ctx, "usr_a", t0, cutoff("usr_a")))
	is(t, "revoked user", s.ChainActive(ctx, b.Chain, t0), store.ErrInactive)
}

// tree builds alice's agents
//
//	agt_a ─ agt_b ─ agt_c ─ agt_d
//	      └ agt_b2
//	agt_x
//
// with grants dlg_<letter>.
func tree(t *testing.T, s store.Store) map[string]*store.Agent {
	newUser(t, s, "usr_alice")
	m := map[string]*store.Agent{}
	m["a"] = rootAgent(t, s, "usr_alice", "agt_a", "dlg_a")
	m["b"] = childAgent(t, s, m["a"], "agt_b", "dlg_b")
	m["b2"] = childAgent(t, s, m["a"], "agt_b2", "dlg_b2")
	m["c"] = childAgent(t, s, m["b"], "agt_c", "dlg_c")
	m["d"] = childAgent(t, s, m["c"], "agt_d", "dlg_d")
	m["x"] = rootAgent(t, s, "usr_alice", "agt_x", "dlg_x")
	return m
}

// revokedAt returns the RevokedAt of an agent and its grant, which must
// agree.
func revokedAt(t *testing.T, s store.Store, agent string) time.Time {
	t.Helper()
	a, err := s.GetAgent(ctx, agent)
	must(t, err)
	g, err := s.GetGrant(ctx, a.Chain[len(a.Chain)-1])
	must(t, err)
	if !a.RevokedAt.Equal(g.RevokedAt) {
		t.Fatalf("%s revoked at %v, its grant at %v", agent, a.RevokedAt, g.RevokedAt)
	}
	return a.RevokedAt
}

func testRevokeCascade(t *testing.T, s store.Store) {
	m := tree(t, s)
	now, until := at(time.Hour), at(2*time.Hour)
	got, err := s.RevokeAgent(ctx, "agt_b", now, until)
	must(t, err)
	equal(t, "revoked ids", got, []string{"agt_b", "dlg_b", "agt_c", "dlg_c", "agt_d", "dlg_d"})

	for _, id := range []string{"agt_b", "agt_c", "agt_d"} {
		equal(t, id+" RevokedAt", revokedAt(t, s, id), now)
	}
	for _, id := range []string{"agt_a", "agt_b2", "agt_x"} {
		equal(t, id+" RevokedAt", revokedAt(t, s, id), time.Time{})
	}
	var want []revocation.Entry
	for _, id := range []string{"agt_b", "agt_c", "agt_d", "dlg_b", "dlg_c", "dlg_d"} {
		want = append(want, revocation.Entry{ID: id, Until: until})
	}
	live, err := s.LiveRevocations(ctx, now)
	must(t, err)
	equal(t, "revocation entries", live, want)

	is(t, "chain below the revoked agent", s.ChainActive(ctx, m["d"].Chain, now), store.ErrInactive)
	is(t, "sibling chain", s.ChainActive(ctx, m["b2"].Chain, now), nil)
	a, g := childSpec(m["d"], "agt_e", "dlg_e")
	is(t, "child of a revoked descendant", s.CreateAgent(ctx, a, g, now), store.ErrInactive)

	// Revoking the root walks the whole tree (already revoked parts too),
	// breadth first, siblings by grant id.
	got, err = s.RevokeGrant(ctx, "dlg_a", at(3*time.Hour), at(4*time.Hour))
	must(t, err)
	equal(t, "revoked ids from the root grant", got,
		[]string{"agt_a", "dlg_a", "agt_b", "dlg_b", "agt_b2", "dlg_b2", "agt_c", "dlg_c", "agt_d", "dlg_d"})
	equal(t, "agt_b keeps its first revocation", revokedAt(t, s, "agt_b"), now)
	equal(t, "agt_b2 RevokedAt", revokedAt(t, s, "agt_b2"), at(3*time.Hour))
	equal(t, "agt_x RevokedAt", revokedAt(t, s, "agt_x"), time.Time{})
	live, err = s.LiveRevocations(ctx, now)
	must(t, err)
	want = []revocation.Entry{
		{ID: "agt_a", Until: at(4 * time.Hour)}, {ID: "agt_b", Until: until}, {ID: "agt_b2", Until: at(4 * time.Hour)},
		{ID: "agt_c", Until: until}, {ID: "agt_d", Until: until},
		{ID: "dlg_a", Until: at(4 * time.Hour)}, {ID: "dlg_b", Until: until}, {ID: "dlg_b2", Until: at(4 * time.Hour)},
		{ID: "dlg_c", Until: until}, {ID: "dlg_d", Until: until},
	}
	equal(t, "revocation entries after revoking the root", live, want)
}

func testRevokeAgain(t *testing.T, s store.Store) {
	tree(t, s)
	first, err := s.RevokeAgent(ctx, "agt_b", at(time.Hour), at(2*time.Hour))
	must(t, err)
	before, err := s.LiveRevocations(ctx, t0)
	must(t, err)

	again, err := s.RevokeAgent(ctx, "agt_b", at(5*time.Hour), at(6*time.Hour))
	must(t, err)
	equal(t, "ids of the second revocation", again, first)
	after, err := s.LiveRevocations(ctx, t0)
	must(t, err)
	equal(t, "entries after the second revocation", after, before)
	for _, id := range []string{"agt_b", "agt_c", "agt_d"} {
		equal(t, id+" RevokedAt", revokedAt(t, s, id), at(time.Hour))
	}
}

func testRevokeGrantFamily(t *testing.T, s store.Store) {
	newUser(t, s, "usr_a")
	family := &store.Grant{ID: "dlg_fam", User: "usr_a", Grantee: "cli_app", Scopes: []string{"mcp:review"}, CreatedAt: t0}
	must(t, s.CreateGrant(ctx, family))
	must(t, s.CreateRefresh(ctx, refresh("r1", "dlg_fam")))
	// r0 was rotated to r0next just before the revocation, inside its
	// grace window: the revocation ends the window and drops the sealed
	// successor.
	must(t, s.CreateRefresh(ctx, refresh("r0", "dlg_fam")))
	_, err := s.RotateRefresh(ctx, hash("r0"), refresh("r0next", "dlg_fam"), []byte("sealed r0next"), at(50*time.Second), time.Hour)
	must(t, err)
	other := &store.Grant{ID: "dlg_other", User: "usr_a", Grantee: "cli_app", CreatedAt: t0}
	must(t, s.CreateGrant(ctx, other))
	must(t, s.CreateRefresh(ctx, refresh("r2", "dlg_other")))

	got, err := s.RevokeGrant(ctx, "dlg_fam", at(time.Minute), at(time.Hour))
	must(t, err)
	equal(t, "revoked ids", got, []string{"dlg_fam"})
	old, err := s.RotateRefresh(ctx, hash("r0"), refresh("r0retry", "dlg_fam"), []byte("sealed r0retry"), at(2*time.Minute), time.Hour)
	is(t, "a retry within grace after the family was revoked", err, store.ErrUsed)
	equal(t, "sealed successor of a revoked family", old.Successor, []byte(nil))
	is(t, "the family's chain", s.ChainActive(ctx, []string{"dlg_fam"}, at(time.Minute)), store.ErrInactive)

	r, err := s.GetRefresh(ctx, hash("r1"))
	must(t, err)
	equal(t, "refresh token of the family: RevokedAt", r.RevokedAt, at(time.Minute))
	old, err = s.RotateRefresh(ctx, hash("r1"), refresh("r1next", "dlg_fam"), []byte("sealed r1next"), at(2*time.Minute), time.Minute)
	is(t, "rotating a revoked family's token", err, store.ErrUsed)
	equal(t, "the refused token", old.Hash, hash("r1"))
	_, err = s.GetRefresh(ctx, hash("r1next"))
	is(t, "successor of a refused rotation", err, store.ErrNotFound)

	r, err = s.GetRefresh(ctx, hash("r2"))
	must(t, err)
	equal(t, "other family's token: RevokedAt", r.RevokedAt, time.Time{})
	live, err := s.LiveRevocations(ctx, t0)
	must(t, err)
	equal(t, "revocation entries", live, []revocation.Entry{{ID: "dlg_fam", Until: at(time.Hour)}})
}

func testRevokeUser(t *testing.T, s store.Store) {
	newUser(t, s, "usr_a")
	newUser(t, s, "usr_b")
	a := rootAgent(t, s, "usr_a", "agt_a", "dlg_a")
	rootAgent(t, s, "usr_b", "agt_b", "dlg_b")

	cut := cutoff("usr_a")
	must(t, s.RevokeUser(ctx, "usr_a", at(time.Minute), cut))
	u, err := s.GetUser(ctx, "usr_a")
	must(t, err)
	equal(t, "RevokedAt", u.RevokedAt, at(time.Minute))
	live, err := s.LiveRevocations(ctx, t0)
	must(t, err)
	equal(t, "cutoff entry", live, []revocation.Entry{cut})

	is(t, "chain of the revoked user", s.ChainActive(ctx, a.Chain, at(time.Minute)), store.ErrInactive)
	is(t, "chain of another user", s.ChainActive(ctx, []string{"dlg_b"}, at(time.Minute)), nil)
	x, g := childSpec(a, "agt_n", "dlg_n")
	is(t, "agent below the revoked user", s.CreateAgent(ctx, x, g, at(time.Minute)), store.ErrInactive)
	x, g = rootSpec("usr_a", "agt_n", "dlg_n")
	is(t, "agent of the revoked user", s.CreateAgent(ctx, x, g, at(time.Minute)), store.ErrInactive)
	is(t, "grant of the revoked user", s.CreateGrant(ctx, &store.Grant{ID: "dlg_n", User: "usr_a", CreatedAt: t0}), store.ErrInactive)

	// Again: the first time stays, the cutoff moves later.
	later := revocation.Entry{ID: "usr_a", Cutoff: revocation.CutoffSubject, Before: at(time.Hour), Until: at(3 * time.Hour)}
	must(t, s.RevokeUser(ctx, "usr_a", at(time.Hour), later))
	u, err = s.GetUser(ctx, "usr_a")
	must(t, err)
	equal(t, "RevokedAt after the second revocation", u.RevokedAt, at(time.Minute))
	live, err = s.LiveRevocations(ctx, t0)
	must(t, err)
	equal(t, "cutoff after the second revocation", live, []revocation.Entry{later})

	if err := s.RevokeUser(ctx, "usr_b", t0, revocation.Entry{ID: "usr_b"}); err == nil {
		t.Error("RevokeUser accepted an invalid cutoff")
	}
	u, err = s.GetUser(ctx, "usr_b")
	must(t, err)
	equal(t, "user of a refused revocation: RevokedAt", u.RevokedAt, time.Time{})
}

func testClients(t *testing.T, s store.Store) {
	app := &store.Client{ID: "cli_app", Name: "Claude Desktop", Kind: store.ClientPublic,
		RedirectURIs: []string{"http://127.0.0.1/callback", "https://app.example/cb"}, CreatedAt: t0}
	rs := &store.Client{ID: "cli_rs", Name: "gateway", Kind: store.ClientResourceServer,
		Resources: []string{"https://mcp.example/mcp", "https://api.example/"}, SecretHash: hash("rs-secret"), CreatedAt: t0}
	must(t, s.CreateClient(ctx, app))
	must(t, s.CreateClient(ctx, rs))
	for _, want := range []*store.Client{app, rs} {
		got, err := s.GetClient(ctx, want.ID)
		must(t, err)
		equal(t, "GetClient", got, want)
	}
	is(t, "same id", s.CreateClient(ctx, &store.Client{ID: "cli_app", Kind: store.ClientPublic}), store.ErrExists)

	// A resource server's resources are replaced as a whole.
	must(t, s.SetClientResources(ctx, "cli_rs", []string{"https://other.example/mcp"}))
	got, err := s.GetClient(ctx, "cli_rs")
	must(t, err)
	equal(t, "resources after SetClientResources", got.Resources, []string{"https://other.example/mcp"})
	must(t, s.SetClientResources(ctx, "cli_rs", nil))
	got, err = s.GetClient(ctx, "cli_rs")
	must(t, err)
	equal(t, "resources cleared", got.Resources, []string(nil))

	// Revoking a client marks it (the first time stays), revokes the
	// consents given to it with their refresh tokens, and records the
	// cutoff with it.
	newUser(t, s, "usr_a")
	newUser(t, s, "usr_b")
	for _, g := range []*store.Grant{
		{ID: "dlg_c2", User: "usr_b", Grantee: "cli_app", CreatedAt: t0},
		{ID: "dlg_c1", User: "usr_a", Grantee: "cli_app", CreatedAt: t0},
		{ID: "dlg_rs", User: "usr_a", Grantee: "cli_rs", CreatedAt: t0},
	} {
		must(t, s.CreateGrant(ctx, g))
	}
	must(t, s.CreateRefresh(ctx, refresh("r1", "dlg_c1")))
	must(t, s.CreateRefresh(ctx, refresh("r2", "dlg_rs")))
	cut := revocation.Entry{ID: "cli_app", Cutoff: revocation.CutoffClient, Before: at(time.Second), Until: at(time.Hour)}
	ids, err := s.RevokeClient(ctx, "cli_app", at(time.Second), at(time.Hour), cut)
	must(t, err)
	equal(t, "revoked ids", ids, []string{"dlg_c1", "dlg_c2"})
	ids, err = s.RevokeClient(ctx, "cli_app", at(time.Minute), at(2*time.Hour), cut)
	must(t, err)
	equal(t, "revoked ids the second time", ids, []string(nil))
	got, err = s.GetClient(ctx, "cli_app")
	must(t, err)
	if !got.RevokedAt.Equal(at(time.Second)) {
		t.Errorf("RevokedAt = %v, want the first revocation %v", got.RevokedAt, at(time.Second))
	}
	is(t, "chain of a consent to the revoked client", s.ChainActive(ctx, []string{"dlg_c1"}, at(time.Second)), store.ErrInactive)
	is(t, "chain of a consent to another client", s.ChainActive(ctx, []string{"dlg_rs"}, at(time.Second)), nil)
	for h, want := range map[string]time.Time{"r1": at(time.Second), "r2": {}} {
		r, err := s.GetRefresh(ctx, hash(h))
		must(t, err)
		equal(t, "refresh token "+h+": RevokedAt", r.RevokedAt, want)
	}
	live, err := s.LiveRevocations(ctx, at(2*time.Second))
	must(t, err)
	equal(t, "revocation entries", live, []revocation.Entry{
		{ID: "dlg_c1", Until: at(time.Hour)}, {ID: "dlg_c2", Until: at(time.Hour)}, cut,
	})
	_, err = s.RevokeClient(ctx, "cli_nope", at(time.Second), at(time.Hour), cut)
	is(t, "unknown client", err, store.ErrNotFound)
}

// testMetadataClients: clients identified by a metadata document URL are
// revoked by URL or by host (and its subdomains), with their consents.
func testMetadataClients(t *testing.T, s store.Store) {
	newUser(t, s, "usr_a")
	const (
		a   = "https://tools.example/a.json"
		b   = "https://tools.example:8443/b.json?x=1"
		sub = "https://eu.Tools.Example./c.json"
		oth = "https://other.example/tools.example.json" // names the host, is not on it
		ip  = "http://127.0.0.1:9/c.json"
	)
	for i, id := range []string{a, b, sub, oth, ip} {
		g := &store.Grant{ID: fmt.Sprintf("dlg_%d", i), User: "usr_a", Grantee: id, CreatedAt: t0}
		must(t, s.CreateGrant(ctx, g))
		must(t, s.CreateRefresh(ctx, refresh(fmt.Sprintf("r%d", i), g.ID)))
	}
	cutoffOf := func(client string) revocation.Entry {
		return revocation.Entry{ID: client, Cutoff: revocation.CutoffClient, Before: at(time.Second), Until: at(time.Hour)}
	}
	revoked := func(id string) bool {
		t.Helper()
		ok, err := s.MetadataClientRevoked(ctx, id)
		must(t, err)
		return ok
	}
	for _, id := range []string{a, b, sub, oth, ip} {
		if revoked(id) {
			t.Fatalf("%s revoked before any revocation", id)
		}
	}

	// By URL, exactly that string.
	clients, ids, err := s.RevokeMetadataClients(ctx, store.ClientRevocation{ClientID: a}, at(time.Second), at(time.Hour), cutoffOf)
	must(t, err)
	equal(t, "clients of a URL revocation", clients, []string{a})
	equal(t, "ids of a URL revocation", ids, []string{"dlg_0"})
	if !revoked(a) || revoked(a+"?") || revoked(b) {
		t.Fatal("a URL revocation covers the wrong clients")
	}
	// A URL never seen can be revoked in advance.
	clients, ids, err = s.RevokeMetadataClients(ctx, store.ClientRevocation{ClientID: "https://new.example/c.json"}, at(time.Second), at(time.Hour), cutoffOf)
	must(t, err)
	equal(t, "clients of an unseen URL", clients, []string{"https://new.example/c.json"})
	equal(t, "ids of an unseen URL", ids, []string(nil))

	// By host: the host on any port and scheme, and its subdomains.
	clients, ids, err = s.RevokeMetadataClients(ctx, store.ClientRevocation{Host: "tools.example"}, at(time.Minute), at(time.Hour), cutoffOf)
	must(t, err)
	equal(t, "clients of a host revocation", clients, []string{sub, b})
	equal(t, "ids of a host revocation", ids, []string{"dlg_2", "dlg_1"})
	for id, want := range map[string]bool{
		a: true, b: true, sub: true, "https://x.y.tools.example/new.json": true, "http://TOOLS.example/new": true,
		oth: false, ip: false, "https://eviltools.example/c.json": false, "https://tools.example.org/c.json": false,
	} {
		if got := revoked(id); got != want {
			t.Errorf("after revoking tools.example, %s revoked = %v, want %v", id, got, want)
		}
	}
	for i, want := range []bool{true, true, true, false, false} {
		r, err := s.GetRefresh(ctx, hash(fmt.Sprintf("r%d", i)))
		must(t, err)
		if got := !r.RevokedAt.IsZero(); got != want {
			t.Errorf("refresh token of client %d revoked = %v, want %v", i, got, want)
		}
	}
	// An IP address covers only itself.
	_, _, err = s.RevokeMetadataClients(ctx, store.ClientRevocation{Host: "0.1"}, at(time.Minute), at(time.Hour), cutoffOf)
	must(t, err)
	if revoked(ip) {
		t.Error("a host revocation of 0.1 covers 127.0.0.1")
	}
	_, _, err = s.RevokeMetadataClients(ctx, store.ClientRevocation{Host: "127.0.0.1"}, at(time.Minute), at(time.Hour), cutoffOf)
	must(t, err)
	if !revoked(ip) {
		t.Error("a host revocation of 127.0.0.1 does not cover it")
	}

	live, err := s.LiveRevocations(ctx, t0)
	must(t, err)
	var cutoffs []string
	for _, e := range live {
		if e.Cutoff == revocation.CutoffClient {
			cutoffs = append(cutoffs, e.ID)
		}
	}
	slices.Sort(cutoffs)
	equal(t, "client cutoffs", cutoffs, []string{ip, "https://eu.Tools.Example./c.json", "https://new.example/c.json", a, b})

	// Again: the first time stays; the list has each once.
	_, _, err = s.RevokeMetadataClients(ctx, store.ClientRevocation{Host: "tools.example"}, at(time.Hour), at(2*time.Hour), cutoffOf)
	must(t, err)
	list, err := s.ClientRevocations(ctx)
	must(t, err)
	equal(t, "client revocations", list, []store.ClientRevocation{
		{ClientID: "https://new.example/c.json", RevokedAt: at(time.Second)},
		{ClientID: a, RevokedAt: at(time.Second)},
		{Host: "0.1", RevokedAt: at(time.Minute)},
		{Host: "127.0.0.1", RevokedAt: at(time.Minute)},
		{Host: "tools.example", RevokedAt: at(time.Minute)},
	})

	for _, bad := range []store.ClientRevocation{{}, {ClientID: a, Host: "tools.example"}, {Host: "Tools.example"}, {Host: "tools.example."}} {
		if _, _, err := s.RevokeMetadataClients(ctx, bad, at(time.Hour), at(2*time.Hour), cutoffOf); err == nil {
			t.Errorf("RevokeMetadataClients(%+v) succeeded", bad)
		}
	}
}

// testHasConsent: a live root grant from the user to the client.
func testHasConsent(t *testing.T, s store.Store) {
	newUser(t, s, "usr_a")
	newUser(t, s, "usr_b")
	rootAgent(t, s, "usr_a", "agt_a", "dlg_agent")
	for _, g := range []*store.Grant{
		{ID: "dlg_live", User: "usr_a", Grantee: "cli_app", CreatedAt: t0, ExpiresAt: at(time.Hour)},
		{ID: "dlg_rev", User: "usr_a", Grantee: "https://tools.example/c.json", CreatedAt: t0},
	} {
		must(t, s.CreateGrant(ctx, g))
	}
	_, err := s.RevokeGrant(ctx, "dlg_rev", at(time.Second), at(time.Hour))
	must(t, err)
	for _, tt := range []struct {
		user, client string
		at           time.Time
		want         bool
	}{
		{"usr_a", "cli_app", at(time.Minute), true},
		{"usr_a", "cli_app", at(time.Hour), false}, // expired
		{"usr_b", "cli_app", at(time.Minute), false},
		{"usr_a", "https://tools.example/c.json", at(time.Minute), false}, // revoked
		{"usr_a", "cli_other", at(time.Minute), false},
	} {
		got, err := s.HasConsent(ctx, tt.user, tt.client, tt.at)
		must(t, err)
		if got != tt.want {
			t.Errorf("HasConsent(%s, %s, %v) = %v, want %v", tt.user, tt.client, tt.at, got, tt.want)
		}
	}
}

// testConsents: a user's live root grants to OAuth clients, never an
// agent's, never another user's.
func testConsents(t *testing.T, s store.Store) {
	newUser(t, s, "usr_a")
	newUser(t, s, "usr_b")
	rootAgent(t, s, "usr_a", "agt_a", "dlg_agent")
	for _, g := range []*store.Grant{
		{ID: "dlg_live", User: "usr_a", Grantee: "cli_app", Scopes: []string{"repo:read"}, CreatedAt: t0, ExpiresAt: at(time.Hour)},
		{ID: "dlg_doc", User: "usr_a", Grantee: "https://tools.example/c.json", CreatedAt: at(time.Second)},
		{ID: "dlg_rev", User: "usr_a", Grantee: "cli_old", CreatedAt: t0},
		{ID: "dlg_bob", User: "usr_b", Grantee: "cli_app", CreatedAt: t0},
	} {
		must(t, s.CreateGrant(ctx, g))
	}
	_, err := s.RevokeGrant(ctx, "dlg_rev", at(time.Second), at(time.Hour))
	must(t, err)
	ids := func(gs []*store.Grant) (out []string) {
		for _, g := range gs {
			out = append(out, g.ID)
		}
		return out
	}
	got, err := s.Consents(ctx, "usr_a", at(time.Minute))
	must(t, err)
	if want := []string{"dlg_live", "dlg_doc"}; !slices.Equal(ids(got), want) {
		t.Errorf("Consents(usr_a) = %v, want %v", ids(got), want)
	}
	if len(got) > 0 && !slices.Equal(got[0].Scopes, []string{"repo:read"}) {
		t.Errorf("consent scopes = %v", got[0].Scopes)
	}
	got, err = s.Consents(ctx, "usr_a", at(2*time.Hour)) // dlg_live expired
	must(t, err)
	if want := []string{"dlg_doc"}; !slices.Equal(ids(got), want) {
		t.Errorf("Consents(usr_a) later = %v, want %v", ids(got), want)
	}
	if _, err := s.Consents(ctx, "usr_nobody", t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Consents(unknown user) = %v, want ErrNotFound", err)
	}
}

func testCodes(t *testing.T, s store.Store) {
	code := &store.Code{Hash: hash("code"), ClientID: "cli_app", User: "usr_a", Grant: "dlg_consent",
		RedirectURI: "http://127.0.0.1:9999/cb", Challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		Resource: "https://mcp.example/mcp", Scopes: []string{"mcp:review"}, ExpiresAt: at(time.Minute)}
	must(t, s.CreateCode(ctx, code))
	is(t, "same hash", s.CreateCode(ctx, code), store.ErrExists)

	got, err := s.ConsumeCode(ctx, hash("code"), at(time.Second))
	must(t, err)
	want := *code
	want.UsedAt = at(time.Second)
	equal(t, "consumed code", got, &want)

	// Reuse: the code comes back, with the first use's time, so the caller
	// can revoke what that use produced.
	got, err = s.ConsumeCode(ctx, hash("code"), at(2*time.Second))
	is(t, "second use", err, store.ErrUsed)
	equal(t, "code of the second use", got, &want)
}

func testRefreshRotation(t *testing.T, s store.Store) {
	r0 := refresh("r0", "dlg_fam")
	must(t, s.CreateRefresh(ctx, r0))
	is(t, "same hash", s.CreateRefresh(ctx, r0), store.ErrExists)
	got, err := s.GetRefresh(ctx, hash("r0"))
	must(t, err)
	equal(t, "GetRefresh", got, r0)

	const grace = 30 * time.Second
	r1 := refresh("r1", "dlg_fam")
	r1.CreatedAt = at(time.Minute)
	sealed := []byte("r1, sealed by the issuer")
	old, err := s.RotateRefresh(ctx, hash("r0"), r1, sealed, at(time.Minute), grace)
	must(t, err)
	want := *r0
	want.RotatedAt = at(time.Minute)
	want.Successor = sealed
	equal(t, "old token", old, &want)
	got, err = s.GetRefresh(ctx, hash("r1"))
	must(t, err)
	equal(t, "successor", got, r1)
	got, err = s.GetRefresh(ctx, hash("r0"))
	must(t, err)
	equal(t, "old token read back", got, &want)

	// A retry within grace gets the first rotation's successor and
	// inserts nothing; the window runs from the first rotation.
	old, err = s.RotateRefresh(ctx, hash("r0"), refresh("r1retry", "dlg_fam"), []byte("another"), at(time.Minute+grace-time.Millisecond), grace)
	is(t, "retry within grace", err, store.ErrRotated)
	equal(t, "old token on retry", old, &want)
	_, err = s.GetRefresh(ctx, hash("r1retry"))
	is(t, "successor of a retry", err, store.ErrNotFound)

	// After grace, reuse is refused and nothing is inserted.
	old, err = s.RotateRefresh(ctx, hash("r0"), refresh("r1late", "dlg_fam"), []byte("late"), at(time.Minute+grace), grace)
	is(t, "reuse after grace", err, store.ErrUsed)
	equal(t, "old token on reuse", old, &want)
	_, err = s.GetRefresh(ctx, hash("r1late"))
	is(t, "successor of a refused rotation", err, store.ErrNotFound)

	// The sealed successor is kept until the window ends, then swept.
	must(t, s.Sweep(ctx, at(time.Minute+grace-time.Millisecond)))
	got, err = s.GetRefresh(ctx, hash("r0"))
	must(t, err)
	equal(t, "sealed successor inside the window after Sweep", got.Successor, sealed)
	must(t, s.Sweep(ctx, at(time.Minute+grace)))
	got, err = s.GetRefresh(ctx, hash("r0"))
	must(t, err)
	equal(t, "sealed successor after the window and Sweep", got.Successor, []byte(nil))
	equal(t, "rotation time after Sweep", got.RotatedAt, at(time.Minute))

	// Grace 0: any reuse is refused, and no successor is kept.
	must(t, s.CreateRefresh(ctx, refresh("z0", "dlg_fam")))
	old, err = s.RotateRefresh(ctx, hash("z0"), refresh("z1", "dlg_fam"), []byte("z1"), t0, 0)
	must(t, err)
	equal(t, "successor kept without grace", old.Successor, []byte(nil))
	_, err = s.RotateRefresh(ctx, hash("z0"), refresh("z2", "dlg_fam"), []byte("z2"), t0, 0)
	is(t, "reuse without grace", err, store.ErrUsed)
}

func testRefreshCollisionIsAtomic(t *testing.T, s store.Store) {
	must(t, s.CreateRefresh(ctx, refresh("r0", "dlg_fam")))
	must(t, s.CreateRefresh(ctx, refresh("taken", "dlg_fam")))
	_, err := s.RotateRefresh(ctx, hash("r0"), refresh("taken", "dlg_fam"), []byte("taken"), t0, time.Minute)
	is(t, "successor hash taken", err, store.ErrExists)
	got, err := s.GetRefresh(ctx, hash("r0"))
	must(t, err)
	equal(t, "old token after the failed rotation: RotatedAt", got.RotatedAt, time.Time{})
	equal(t, "old token after the failed rotation: Successor", got.Successor, []byte(nil))
	_, err = s.RotateRefresh(ctx, hash("r0"), refresh("r1", "dlg_fam"), []byte("r1"), t0, time.Minute)
	is(t, "rotation after the failed one", err, nil)
}

func testAuthRequests(t *testing.T, s store.Store) {
	r := &store.AuthRequest{ID: "req_1", ClientID: "cli_app", RedirectURI: "http://127.0.0.1/cb", State: "xyz",
		Challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", Resource: "https://mcp.example/mcp",
		Scopes: []string{"mcp:review"}, ExpiresAt: at(10 * time.Minute)}
	must(t, s.PutAuthRequest(ctx, r))
	got, err := s.GetAuthRequest(ctx, "req_1", t0)
	must(t, err)
	equal(t, "GetAuthRequest", got, r)
	_, err = s.GetAuthRequest(ctx, "req_1", at(10*time.Minute))
	is(t, "expired request", err, store.ErrNotFound)

	r2 := *r
	r2.Scopes, r2.State = []string{"mcp:review", "repository:read"}, "abc"
	must(t, s.PutAuthRequest(ctx, &r2))
	got, err = s.GetAuthRequest(ctx, "req_1", t0)
	must(t, err)
	equal(t, "replaced request", got, &r2)

	must(t, s.DeleteAuthRequest(ctx, "req_1"))
	_, err = s.GetAuthRequest(ctx, "req_1", t0)
	is(t, "deleted request", err, store.ErrNotFound)
}

func testSessions(t *testing.T, s store.Store) {
	newUser(t, s, "usr_a")
	ss := &store.Session{Hash: hash("cookie"), User: "usr_a", CSRF: "csrf-token", CreatedAt: t0, ExpiresAt: at(time.Hour)}
	must(t, s.PutSession(ctx, ss))
	got, err := s.GetSession(ctx, hash("cookie"), at(time.Hour-time.Millisecond))
	must(t, err)
	equal(t, "GetSession", got, ss)
	_, err = s.GetSession(ctx, hash("cookie"), at(time.Hour))
	is(t, "expired session", err, store.ErrNotFound)

	ss2 := *ss
	ss2.CSRF = "rotated"
	must(t, s.PutSession(ctx, &ss2))
	got, err = s.GetSession(ctx, hash("cookie"), t0)
	must(t, err)
	equal(t, "replaced session", got, &ss2)

	must(t, s.DeleteSession(ctx, hash("cookie")))
	_, err = s.GetSession(ctx, hash("cookie"), t0)
	is(t, "deleted session", err, store.ErrNotFound)
}

func testSigningKeys(t *testing.T, s store.Store) {
	k := func(kid string, created time.Duration) *store.SigningKey {
		return &store.SigningKey{KID: kid, Private: []byte(`{"kty":"OKP","d":"` + kid + `"}`), CreatedAt: at(created),
			ActiveAt: at(created + time.Minute)}
	}
	k1, k2, k3 := k("k1", 0), k("k2", time.Hour), k("k3", 2*time.Hour)
	k1.ExpiresAt = at(48 * time.Hour)
	for _, key := range []*store.SigningKey{k2, k3, k1} {
		must(t, s.AddSigningKey(ctx, key))
	}
	is(t, "same kid", s.AddSigningKey(ctx, k("k2", 0)), store.ErrExists)
	got, err := s.ListSigningKeys(ctx)
	must(t, err)
	equal(t, "ListSigningKeys", got, []*store.SigningKey{k1, k2, k3})

	must(t, s.RetireSigningKey(ctx, "k1", at(3*time.Hour)))
	must(t, s.RetireSigningKey(ctx, "k1", at(4*time.Hour)))
	got, err = s.ListSigningKeys(ctx)
	must(t, err)
	equal(t, "k1 RetiredAt", got[0].RetiredAt, at(3*time.Hour))
	equal(t, "k2 RetiredAt", got[1].RetiredAt, time.Time{})
}

func testRevocations(t *testing.T, s store.Store) {
	tok := revocation.Entry{ID: "tok_a", Until: at(time.Hour)}
	sub := revocation.Entry{ID: "usr_x", Cutoff: revocation.CutoffSubject, Before: t0, Until: at(2 * time.Hour)}
	// The same string as an id revocation is a different entry.
	id := revocation.Entry{ID: "usr_x", Until: at(time.Hour)}
	kid := revocation.Entry{ID: "k1", Cutoff: revocation.CutoffKey, Before: t0, Until: at(30 * time.Minute)}
	must(t, s.AddRevocations(ctx, []revocation.Entry{tok, sub, id, kid}))
	live, err := s.LiveRevocations(ctx, t0)
	must(t, err)
	equal(t, "LiveRevocations", live, []revocation.Entry{tok, id, kid, sub})
	live, err = s.LiveRevocations(ctx, at(time.Hour))
	must(t, err)
	equal(t, "LiveRevocations an hour later", live, []revocation.Entry{sub})

	// Re-adding never shortens: the later Until (and Before) stays.
	must(t, s.AddRevocations(ctx, []revocation.Entry{
		{ID: "tok_a", Until: at(30 * time.Minute)},
		{ID: "usr_x", Cutoff: revocation.CutoffSubject, Before: at(time.Minute), Until: at(90 * time.Minute)},
		{ID: "usr_x", Until: at(3 * time.Hour)},
	}))
	live, err = s.LiveRevocations(ctx, t0)
	must(t, err)
	equal(t, "after re-adding", live, []revocation.Entry{
		tok, {ID: "usr_x", Until: at(3 * time.Hour)}, kid,
		{ID: "usr_x", Cutoff: revocation.CutoffSubject, Before: at(time.Minute), Until: at(2 * time.Hour)},
	})

	// An invalid entry refuses the whole batch.
	err = s.AddRevocations(ctx, []revocation.Entry{{ID: "tok_new", Until: at(time.Hour)}, {ID: "tok_bad"}})
	if !errors.Is(err, revocation.ErrInvalidEntry) {
		t.Fatalf("invalid entry: error %v, want revocation.ErrInvalidEntry", err)
	}
	after, err := s.LiveRevocations(ctx, t0)
	must(t, err)
	if len(after) != 4 {
		t.Errorf("a refused batch was partly stored: %+v", after)
	}
}

func testSweep(t *testing.T, s store.Store) {
	newUser(t, s, "usr_a")
	past, future := at(-time.Second), at(time.Second)
	for name, exp := range map[string]time.Time{"old": past, "new": future} {
		must(t, s.CreateCode(ctx, &store.Code{Hash: hash("code-" + name), ExpiresAt: exp}))
		must(t, s.PutAuthRequest(ctx, &store.AuthRequest{ID: "req-" + name, ExpiresAt: exp}))
		must(t, s.PutSession(ctx, &store.Session{Hash: hash("sess-" + name), User: "usr_a", ExpiresAt: exp}))
		r := refresh("ref-"+name, "dlg_fam")
		r.ExpiresAt = exp
		must(t, s.CreateRefresh(ctx, r))
		must(t, s.AddRevocations(ctx, []revocation.Entry{{ID: "tok_" + name, Until: exp}}))
		must(t, s.AddSigningKey(ctx, &store.SigningKey{KID: "key-" + name, Private: []byte("k"), CreatedAt: at(-time.Hour), ExpiresAt: exp}))
	}
	must(t, s.AddSigningKey(ctx, &store.SigningKey{KID: "key-forever", Private: []byte("k"), CreatedAt: at(-time.Hour)}))

	// present asks with a time before everything expired, so only a
	// deleted row is missing.
	early := at(-time.Hour)
	present := func(name string) map[string]bool {
		_, refErr := s.GetRefresh(ctx, hash("ref-"+name))
		_, reqErr := s.GetAuthRequest(ctx, "req-"+name, early)
		_, sessErr := s.GetSession(ctx, hash("sess-"+name), early)
		live, err := s.LiveRevocations(ctx, early)
		must(t, err)
		keys, err := s.ListSigningKeys(ctx)
		must(t, err)
		// ConsumeCode is the only reader of codes; it marks the code, which
		// does not matter here.
		_, consumeErr := s.ConsumeCode(ctx, hash("code-"+name), t0)
		return map[string]bool{
			"refresh token": refErr == nil, "auth request": reqErr == nil, "session": sessErr == nil,
			"revocation":  slices.ContainsFunc(live, func(e revocation.Entry) bool { return e.ID == "tok_"+name }),
			"signing key": slices.ContainsFunc(keys, func(k *store.SigningKey) bool { return k.KID == "key-"+name }),
			"code":        !errors.Is(consumeErr, store.ErrNotFound),
		}
	}
	all := map[string]bool{"refresh token": true, "auth request": true, "session": true, "revocation": true, "signing key": true, "code": true}
	equal(t, "expired rows before Sweep", present("old"), all)

	must(t, s.Sweep(ctx, t0))
	none := map[string]bool{"refresh token": false, "auth request": false, "session": false, "revocation": false, "signing key": false, "code": false}
	equal(t, "expired rows after Sweep", present("old"), none)
	equal(t, "live rows after Sweep", present("new"), all)
	keys, err := s.ListSigningKeys(ctx)
	must(t, err)
	if !slices.ContainsFunc(keys, func(k *store.SigningKey) bool { return k.KID == "key-forever" }) {
		t.Error("Sweep deleted a key without expiry")
	}
}

// race runs fn(i) for i in [0, n) at once and returns their errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			errs[i] = fn(i)
		})
	}
	start.Done()
	done.Wait()
	return errs
}

const racers = 20

func testRaceConsumeCode(t *testing.T, s store.Store) {
	must(t, s.CreateCode(ctx, &store.Code{Hash: hash("code"), ClientID: "cli_app", ExpiresAt: at(time.Minute)}))
	codes := make([]*store.Code, racers)
	errs := race(racers, func(i int) error {
		var err error
		codes[i], err = s.ConsumeCode(ctx, hash("code"), at(time.Duration(i+1)*time.Millisecond))
		return err
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("code redeemed twice (racers %d and %d)", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrUsed):
			t.Fatalf("racer %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no racer redeemed the code")
	}
	for i, c := range codes {
		if c == nil || !c.UsedAt.Equal(at(time.Duration(winner+1)*time.Millisecond)) {
			t.Fatalf("racer %d got %+v, want the code used by racer %d", i, c, winner)
		}
	}
}

func testRaceRotateRefresh(t *testing.T, s store.Store) {
	for _, grace := range []time.Duration{0, time.Minute} {
		t.Run(fmt.Sprint("grace ", grace), func(t *testing.T) {
			r0 := fmt.Sprint("r0-", grace)
			must(t, s.CreateRefresh(ctx, refresh(r0, "dlg_fam")))
			next := func(i int) string { return fmt.Sprint("next-", grace, "-", i) }
			olds := make([]*store.RefreshToken, racers)
			errs := race(racers, func(i int) error {
				var err error
				olds[i], err = s.RotateRefresh(ctx, hash(r0), refresh(next(i), "dlg_fam"), []byte(next(i)), at(time.Second), grace)
				return err
			})
			// Exactly one racer rotates; the others are refused (no grace)
			// or told the winner's successor (within grace).
			loser := store.ErrUsed
			if grace > 0 {
				loser = store.ErrRotated
			}
			var winners []int
			for i, err := range errs {
				switch {
				case err == nil:
					winners = append(winners, i)
				case !errors.Is(err, loser):
					t.Fatalf("racer %d: %v, want nil or %v", i, err, loser)
				}
			}
			if len(winners) != 1 {
				t.Fatalf("%d racers rotated the token (%v), want exactly one", len(winners), winners)
			}
			w := winners[0]
			for i := range racers {
				_, err := s.GetRefresh(ctx, hash(next(i)))
				if (err == nil) != (i == w) {
					t.Errorf("successor of racer %d: %v (winner %d)", i, err, w)
				}
				if grace > 0 && !bytes.Equal(olds[i].Successor, []byte(next(w))) {
					t.Errorf("racer %d was told successor %q, the winner %d stored %q", i, olds[i].Successor, w, next(w))
				}
			}
		})
	}
}

// testRaceReadersAndWriters: concurrent reads and writes never fail (with
// SQLite, never SQLITE_BUSY).
func testRaceReadersAndWriters(t *testing.T, s store.Store) {
	newUser(t, s, "usr_owner")
	a := rootAgent(t, s, "usr_owner", "agt_root", "dlg_root")
	const rounds = 10
	errs := race(racers, func(i int) error {
		for r := range rounds {
			id := fmt.Sprintf("usr_%d_%d", i, r)
			var err error
			switch i % 4 {
			case 0:
				err = s.CreateUser(ctx, &store.User{ID: id, Name: id, CreatedAt: t0})
			case 1:
				_, err = s.ListUsers(ctx)
			case 2:
				err = s.ChainActive(ctx, a.Chain, t0)
			case 3:
				err = s.AddRevocations(ctx, []revocation.Entry{{ID: "tok_" + id, Until: at(time.Hour)}})
				if err == nil {
					_, err = s.LiveRevocations(ctx, t0)
				}
			}
			if err != nil {
				return fmt.Errorf("racer %d round %d: %w", i, r, err)
			}
		}
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	users, err := s.ListUsers(ctx)
	must(t, err)
	equal(t, "users written", len(users), 1+racers/4*rounds)
}

// testRaceCreateUnderRevoke: agents created while their ancestor is being
// revoked are either refused or revoked with it, never left active below a
// revoked agent.
func testRaceCreateUnderRevoke(t *testing.T, s store.Store) {
	newUser(t, s, "usr_a")
	root := rootAgent(t, s, "usr_a", "agt_root", "dlg_root")
	mid := childAgent(t, s, root, "agt_mid", "dlg_mid")
	errs := race(racers, func(i int) error {
		if i == racers/2 {
			_, err := s.RevokeAgent(ctx, "agt_root", at(time.Second), at(time.Hour))
			return err
		}
		a, g := childSpec(mid, fmt.Sprint("agt_n", i), fmt.Sprint("dlg_n", i))
		if err := s.CreateAgent(ctx, a, g, at(time.Second)); err != nil && !errors.Is(err, store.ErrInactive) {
			return fmt.Errorf("racer %d: %w", i, err)
		}
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	agents, err := s.ListAgents(ctx, "usr_a")
	must(t, err)
	for _, a := range agents {
		if a.RevokedAt.IsZero() {
			t.Errorf("%s is active below the revoked agt_root", a.ID)
		}
	}
	live, err := s.LiveRevocations(ctx, at(time.Second))
	must(t, err)
	if got, want := len(live), 2*len(agents); got != want {
		t.Errorf("%d revocation entries for %d revoked agents and their grants", got, len(agents))
	}
}
