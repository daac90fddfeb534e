package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/html"
)

// signin is what a person does in a browser, for `make demo-check IDP=1`:
// an OAuth client (registered here with DCR, public, PKCE) sends them to
// Kavach's /oauth/authorize; Kavach's login page → "Sign in with <the
// IdP>" → the IdP's picker → this user → back to Kavach → consent, Allow →
// the code at the client's redirect URI (never contacted: the redirect is
// read, not followed) → the token endpoint. It prints one JSON object:
// the token response plus the client_id, so the caller can use both.
// Every step that goes wrong is an error naming the step and what the
// page said.
func signin(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("kavach-demo-idp signin", flag.ContinueOnError)
	issuer := fs.String("issuer", "http://127.0.0.1:8081", "the Kavach issuer")
	resource := fs.String("resource", "http://127.0.0.1:8080/mcp", "the resource (RFC 8707)")
	scope := fs.String("scope", "mcp:review", "the scopes to ask for")
	provider := fs.String("provider", "demo-idp", "the login oidc name in the Caddyfile")
	user := fs.String("user", "priya", "the user to pick at the IdP (empty: the IdP signs someone in at once)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	const callback = "http://127.0.0.1:1/demo-client/callback"
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), callback) || len(via) > 10 {
			return http.ErrUseLastResponse
		}
		return nil
	}}

	// The client registers itself (RFC 7591), as MCP clients do.
	reg, _ := json.Marshal(map[string]any{
		"client_name": "demo sign-in", "redirect_uris": []string{callback}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"}, "response_types": []string{"code"},
	})
	var client struct {
		ClientID string `json:"client_id"`
	}
	if err := postJSON(c, *issuer+"/oauth/register", reg, http.StatusCreated, &client); err != nil {
		return fmt.Errorf("registering a client: %w", err)
	}

	verifier, state := random(), random()
	sum := sha256.Sum256([]byte(verifier))
	authz := *issuer + "/oauth/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {client.ClientID}, "redirect_uri": {callback}, "scope": {*scope},
		"state": {state}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"resource": {*resource},
	}.Encode()
	p, err := get(c, authz)
	if err != nil {
		return fmt.Errorf("the Kavach login page: %w", err)
	}
	f := p.form("provider", *provider)
	if f == nil {
		return fmt.Errorf("the Kavach login page has no \"Sign in with\" button for %s", *provider)
	}
	f.values.Set("provider", *provider)
	if p, err = post(c, f.action, f.values); err != nil {
		return fmt.Errorf("signing in with %s: %w", *provider, err)
	}
	if *user != "" && p.location == "" {
		link := p.link("user=" + url.QueryEscape(*user))
		if link == "" {
			return fmt.Errorf("the IdP's picker offers no user %s", *user)
		}
		if p, err = get(c, link); err != nil {
			return fmt.Errorf("picking %s at the IdP: %w", *user, err)
		}
	}
	if p.location == "" {
		f = p.form("action", "approve")
		if f == nil {
			return fmt.Errorf("back from the IdP, no consent page: %s", p.said())
		}
		f.values.Set("action", "approve")
		if p, err = post(c, f.action, f.values); err != nil {
			return fmt.Errorf("consenting: %w", err)
		}
	}
	if p.location == "" {
		return fmt.Errorf("no redirect to the client after consent: %s", p.said())
	}
	back, err := url.Parse(p.location)
	if err != nil {
		return err
	}
	q := back.Query()
	if q.Get("state") != state || q.Get("code") == "" {
		return fmt.Errorf("the redirect to the client has no code for this state: error=%q %s", q.Get("error"), q.Get("error_description"))
	}

	resp, err := c.PostForm(*issuer+"/oauth/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {callback},
		"client_id": {client.ClientID}, "code_verifier": {verifier}, "resource": {*resource},
	})
	if err != nil {
		return fmt.Errorf("the token endpoint: %w", err)
	}
	defer resp.Body.Close()
	var tok map[string]any
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tok) != nil {
		return fmt.Errorf("the token endpoint: HTTP %d: %s", resp.StatusCode, body)
	}
	tok["client_id"] = client.ClientID
	return json.NewEncoder(out).Encode(tok)
}

func random() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func postJSON(c *http.Client, u string, body []byte, want int, v any) error {
	resp, err := c.Post(u, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	return json.Unmarshal(b, v)
}

// page is where a request ended: a redirect to the client (location),
// or a 200 page's forms and links.
type page struct {
	url      *url.URL
	location string
	status   int
	forms    []*form
	links    []string
	errText  string
}

type form struct {
	action  string
	values  url.Values
	buttons [][2]string // name, value
}

// form is the first form with a button name=value.
func (p *page) form(name, value string) *form {
	for _, f := range p.forms {
		for _, b := range f.buttons {
			if b[0] == name && b[1] == value {
				return f
			}
		}
	}
	return nil
}

func (p *page) link(contains string) string {
	for _, l := range p.links {
		if strings.Contains(l, contains) {
			return l
		}
	}
	return ""
}

// said is what a page that is not the expected one says.
func (p *page) said() string {
	if p.errText != "" {
		return fmt.Sprintf("HTTP %d, %q", p.status, p.errText)
	}
	return fmt.Sprintf("HTTP %d at %s", p.status, p.url)
}

func get(c *http.Client, u string) (*page, error) {
	resp, err := c.Get(u)
	if err != nil {
		return nil, err
	}
	return read(resp)
}

func post(c *http.Client, u string, v url.Values) (*page, error) {
	resp, err := c.PostForm(u, v)
	if err != nil {
		return nil, err
	}
	return read(resp)
}

func read(resp *http.Response) (*page, error) {
	defer resp.Body.Close()
	p := &page{url: resp.Request.URL, status: resp.StatusCode}
	if resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther {
		p.location = resp.Header.Get("Location")
		return p, nil
	}
	root, err := html.Parse(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	var cur *form
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			a := map[string]string{}
			for _, at := range n.Attr {
				a[at.Key] = at.Val
			}
			switch n.Data {
			case "form":
				action, _ := p.url.Parse(a["action"])
				cur = &form{action: action.String(), values: url.Values{}}
				p.forms = append(p.forms, cur)
				defer func() { cur = nil }()
			case "input":
				if cur != nil && a["type"] == "hidden" {
					cur.values.Set(a["name"], a["value"])
				}
			case "button":
				if cur != nil {
					cur.buttons = append(cur.buttons, [2]string{a["name"], a["value"]})
				}
			case "a":
				if l, err := p.url.Parse(a["href"]); err == nil {
					p.links = append(p.links, l.String())
				}
			case "p":
				if strings.Contains(a["class"], "error") && p.errText == "" {
					p.errText = text(n)
				}
			}
		}
		for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
			walk(ch)
		}
	}
	walk(root)
	if resp.StatusCode != http.StatusOK {
		return p, errors.New(p.said())
	}
	return p, nil
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
			walk(ch)
		}
	}
	walk(n)
	return strings.TrimSpace(b.String())
}
