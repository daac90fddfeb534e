package storetest

import (
	"testing"
	"time"

	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/revocation"
)

const idpIss = "https://idp.example"

func signIn(sub, email string, groups []string, seen time.Time, ent map[string][]string) *store.IdPSignIn {
	return &store.IdPSignIn{
		Link:         store.IdentityLink{Issuer: idpIss, Subject: sub, Provider: "corpsso", Email: email, Name: "Alice", Groups: groups, SeenAt: seen},
		Entitlements: ent,
	}
}

// testIdPSignIn: a user is created just in time with the link, found
// again by (issuer, sub) whatever the email says, gets the evaluated
// entitlements each time, and a shrink records the cutoff in the same
// change.
func testIdPSignIn(t *testing.T, s store.Store) {
	res := "https://mcp.example/mcp"
	wide := map[string][]string{res: {"mcp:review", "repository:read"}}
	narrow := map[string][]string{res: {"mcp:review"}}

	in := signIn("00u-alice", "alice@corp.example", []string{"eng", "platform"}, at(time.Second), wide)
	_, _, err := s.SignInIdP(ctx, in)
	is(t, "no link, no NewUser", err, store.ErrNotFound)

	in.NewUser = &store.User{ID: "usr_alice", Name: "corpsso:alice@corp.example", CreatedAt: at(time.Second)}
	in.Cutoff = func(string, map[string][]string) *revocation.Entry {
		t.Error("Cutoff called for a new user")
		return nil
	}
	u, old, err := s.SignInIdP(ctx, in)
	must(t, err)
	equal(t, "old of a new user", old, map[string][]string(nil))
	want := &store.User{ID: "usr_alice", Name: "corpsso:alice@corp.example", Entitlements: wide,
		EntitlementsSource: store.EntitlementsIdP, EntitlementsAt: at(time.Second), CreatedAt: at(time.Second)}
	equal(t, "new user", u, want)
	got, err := s.UserByIdentity(ctx, idpIss, "00u-alice")
	must(t, err)
	equal(t, "UserByIdentity", got, want)
	_, err = s.UserByIdentity(ctx, "https://other.example", "00u-alice")
	is(t, "same sub at another issuer", err, store.ErrNotFound)

	// The email changed at the IdP: the same user, by sub; the link
	// shows the new email and groups.
	in = signIn("00u-alice", "alice.new@corp.example", []string{"eng"}, at(time.Minute), narrow)
	in.NewUser = &store.User{ID: "usr_other", Name: "other", CreatedAt: at(time.Minute)}
	cut := revocation.Entry{ID: "usr_alice", Cutoff: revocation.CutoffSubject, Before: at(time.Minute + time.Second), Until: at(time.Hour)}
	var sawOld map[string][]string
	in.Cutoff = func(user string, old map[string][]string) *revocation.Entry {
		if user != "usr_alice" {
			t.Errorf("Cutoff for %s", user)
		}
		sawOld = old
		return &cut
	}
	u, old, err = s.SignInIdP(ctx, in)
	must(t, err)
	equal(t, "old entitlements", old, wide)
	equal(t, "old entitlements given to Cutoff", sawOld, wide)
	equal(t, "entitlements after", u.Entitlements, narrow)
	equal(t, "evaluated at", u.EntitlementsAt, at(time.Minute))
	_, err = s.GetUser(ctx, "usr_other")
	is(t, "NewUser with an existing link", err, store.ErrNotFound)
	live, err := s.LiveRevocations(ctx, at(time.Minute))
	must(t, err)
	equal(t, "cutoff recorded", live, []revocation.Entry{cut})

	links, err := s.IdentityLinks(ctx, "usr_alice")
	must(t, err)
	equal(t, "links", links, []*store.IdentityLink{{Issuer: idpIss, Subject: "00u-alice", User: "usr_alice", Provider: "corpsso",
		Email: "alice.new@corp.example", Name: "Alice", Groups: []string{"eng"}, CreatedAt: at(time.Second), SeenAt: at(time.Minute)}})
	newUser(t, s, "usr_local")
	links, err = s.IdentityLinks(ctx, "usr_local")
	must(t, err)
	equal(t, "a local user's links", links, []*store.IdentityLink(nil))

	// The admin API sets them: source admin, until the next sign-in.
	must(t, s.SetEntitlements(ctx, "usr_alice", wide, at(2*time.Minute)))
	got, err = s.GetUser(ctx, "usr_alice")
	must(t, err)
	equal(t, "admin source", []any{got.EntitlementsSource, got.EntitlementsAt}, []any{store.EntitlementsAdmin, at(2 * time.Minute)})

	// A revoked user signs in to nothing.
	must(t, s.RevokeUser(ctx, "usr_alice", at(3*time.Minute), cutoff("usr_alice")))
	_, _, err = s.SignInIdP(ctx, signIn("00u-alice", "alice@corp.example", nil, at(4*time.Minute), narrow))
	is(t, "revoked user", err, store.ErrInactive)
	got, err = s.GetUser(ctx, "usr_alice")
	must(t, err)
	equal(t, "revoked user's entitlements unchanged", got.Entitlements, wide)
}

// testIdPSignInAtomic: a just-in-time user whose name is taken creates
// neither the user nor the link.
func testIdPSignInAtomic(t *testing.T, s store.Store) {
	newUser(t, s, "usr_a")
	in := signIn("00u-b", "b@corp.example", nil, at(time.Second), nil)
	in.NewUser = &store.User{ID: "usr_b", Name: "name-usr_a", CreatedAt: at(time.Second)}
	_, _, err := s.SignInIdP(ctx, in)
	is(t, "name taken", err, store.ErrExists)
	_, err = s.UserByIdentity(ctx, idpIss, "00u-b")
	is(t, "no link", err, store.ErrNotFound)
	_, err = s.GetUser(ctx, "usr_b")
	is(t, "no user", err, store.ErrNotFound)
}

// testGrantVia: a root grant an IdP authorized keeps its Via, is not a
// consent, and is revoked with its client.
func testGrantVia(t *testing.T, s store.Store) {
	newUser(t, s, "usr_a")
	must(t, s.CreateClient(ctx, &store.Client{ID: "cli_a", Kind: store.ClientPublic, RedirectURIs: []string{"http://127.0.0.1/cb"}, CreatedAt: t0}))
	g := &store.Grant{ID: "dlg_jag", User: "usr_a", Grantee: "cli_a", Scopes: []string{"mcp:review"},
		Audience: []string{"https://mcp.example/mcp"}, Via: store.GrantViaIDJAG + idpIss, CreatedAt: t0, ExpiresAt: at(time.Hour)}
	must(t, s.CreateGrant(ctx, g))
	got, err := s.GetGrant(ctx, "dlg_jag")
	must(t, err)
	equal(t, "grant", got, g)
	ok, err := s.HasConsent(ctx, "usr_a", "cli_a", t0)
	must(t, err)
	equal(t, "an ID-JAG grant is not a consent", ok, false)
	ids, err := s.RevokeClient(ctx, "cli_a", at(time.Minute), at(time.Hour), revocation.Entry{ID: "cli_a", Cutoff: revocation.CutoffClient, Before: at(time.Minute), Until: at(time.Hour)})
	must(t, err)
	equal(t, "revoked with the client", ids, []string{"dlg_jag"})
}
