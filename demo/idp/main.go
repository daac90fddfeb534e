// Command kavach-demo-idp is the OpenID provider of `make demo IDP=1`: the
// real OP the tests use (internal/oidctest, built on zitadel/oidc's
// certified op package: discovery, JWKS at /keys, authorize with PKCE,
// token, userinfo) on a fixed loopback address, with demo users and their
// groups. Its login page is a user picker (no passwords), or, with -as,
// signs one user in at once.
//
// For the demo's enterprise-managed authorization step it also mints
// Identity Assertion JWT Authorization Grants (typ oauth-id-jag+jwt),
// signed by the key its JWKS publishes:
//
//	curl -d user=priya -d client_id=<kavach client> http://127.0.0.1:8083/demo/id-jag
//
// Anyone who can reach it can mint those, so it listens on loopback only.
//
//	kavach-demo-idp [-addr 127.0.0.1:8083] [-redirect <kavach issuer>/oauth/idp/callback]
//	                [-client-id kavach-demo] [-user name:email:group,group …] [-as name]
//	                [-audience <kavach issuer>]
//	                (the relying party's secret: $KAVACH_DEMO_IDP_SECRET)
//	kavach-demo-idp signin …   a sign-in through Kavach and this IdP, as a browser does (see signin.go)
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kavachgate/kavach/internal/oidctest"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "signin" {
		err = signin(os.Args[2:], os.Stdout)
	} else {
		err = serve(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kavach-demo-idp:", err)
		os.Exit(1)
	}
}

// users is the repeatable -user flag: name:email:group,group.
type users []oidctest.User

func (u *users) String() string { return fmt.Sprint(len(*u), " users") }

func (u *users) Set(v string) error {
	parts := strings.SplitN(v, ":", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return errors.New("want name:email:group,group")
	}
	var groups []string
	for _, g := range strings.Split(parts[2], ",") {
		if g = strings.TrimSpace(g); g != "" {
			groups = append(groups, g)
		}
	}
	*u = append(*u, oidctest.User{Sub: "00u-" + strings.ToLower(parts[0]), Email: parts[1], Name: parts[0], Groups: groups})
	return nil
}

// defaultUsers: one in the group the demo's Caddyfile entitles, one not.
var defaultUsers = users{
	{Sub: "00u-priya", Email: "priya@corp.example", Name: "Priya", Groups: []string{"platform-eng", "staff"}},
	{Sub: "00u-marco", Email: "marco@corp.example", Name: "Marco", Groups: []string{"marketing", "staff"}},
}

func serve(args []string) error {
	fs := flag.NewFlagSet("kavach-demo-idp", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8083", "listen address (loopback only)")
	redirect := fs.String("redirect", "http://127.0.0.1:8081/oauth/idp/callback", "the relying party's callback (Kavach: <issuer>/oauth/idp/callback)")
	clientID := fs.String("client-id", "kavach-demo", "the relying party's client id")
	audience := fs.String("audience", "", "the aud of minted ID-JAGs (Kavach's issuer). Default: the -redirect URL's origin")
	as := fs.String("as", "", "sign this user in at once instead of showing the picker")
	var us users
	fs.Var(&us, "user", "a user, name:email:group,group (repeatable). Default: priya (platform-eng, staff), marco (marketing, staff)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	secret := os.Getenv("KAVACH_DEMO_IDP_SECRET")
	if secret == "" {
		return errors.New("set KAVACH_DEMO_IDP_SECRET to the relying party's client secret")
	}
	if err := loopbackOnly(*addr); err != nil {
		return err
	}
	if len(us) == 0 {
		us = defaultUsers
	}
	if *audience == "" {
		*audience = strings.TrimSuffix(*redirect, "/oauth/idp/callback")
	}
	opts := oidctest.Options{Addr: *addr, Redirect: *redirect, ClientID: *clientID, ClientSecret: secret, Users: us}
	var auto *oidctest.User
	if *as != "" {
		for i := range us {
			if oidctest.PickerName(us[i]) == strings.ToLower(*as) {
				auto = &us[i]
			}
		}
		if auto == nil {
			return fmt.Errorf("-as %s: no such user", *as)
		}
		opts.Users = nil
	}
	o, err := oidctest.Serve(opts)
	if err != nil {
		return err
	}
	defer o.Close()
	if auto != nil {
		o.Set(*auto, oidctest.FaultNone)
	}
	o.Handle("/demo/id-jag", idjagHandler(o, us, *audience))

	fmt.Printf("kavach-demo-idp: issuer %s (client %s, callback %s)\n", o.Issuer, *clientID, *redirect)
	for _, u := range us {
		fmt.Printf("  user %-8s %-22s groups: %s\n", oidctest.PickerName(u), u.Email, strings.Join(u.Groups, ", "))
	}
	if auto != nil {
		fmt.Printf("  signs in %s at once (-as)\n", oidctest.PickerName(*auto))
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return nil
}

// loopbackOnly refuses a listen address off loopback: the picker signs
// anyone in, and /demo/id-jag mints assertions for anyone.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %s: %v", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-addr %s: the demo IdP listens on loopback only", addr)
	}
	return nil
}

// idjagHandler mints an ID-JAG for a demo user: POST user, client_id,
// and optionally resource, scope, aud, ttl (a Go duration).
func idjagHandler(o *oidctest.OP, us users, audience string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		var sub string
		for _, u := range us {
			if oidctest.PickerName(u) == strings.ToLower(r.PostForm.Get("user")) {
				sub = u.Sub
			}
		}
		if sub == "" || r.PostForm.Get("client_id") == "" {
			http.Error(w, "want user (a demo user) and client_id", http.StatusBadRequest)
			return
		}
		a := oidctest.IDJAG{
			Subject: sub, Audience: audience, ClientID: r.PostForm.Get("client_id"),
			Resource: r.PostForm.Get("resource"), Scope: r.PostForm.Get("scope"),
		}
		if v := r.PostForm.Get("aud"); v != "" {
			a.Audience = v
		}
		if v := r.PostForm.Get("ttl"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				http.Error(w, "bad ttl", http.StatusBadRequest)
				return
			}
			a.TTL = d
		}
		jwt, err := o.MintIDJAG(a)
		if err != nil {
			http.Error(w, "cannot sign", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/jwt")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, jwt)
	}
}
