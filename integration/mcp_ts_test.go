package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// tsClientDir holds the MCP TypeScript SDK clients (integration/tsclient:
// package.json pins @modelcontextprotocol/sdk and @modelcontextprotocol/client
// exactly, package-lock.json is committed, scripts/deps.sh runs `npm ci`
// there).
const tsClientDir = "tsclient"

// The official MCP TypeScript SDK's two published lines: v1, one package,
// and v2, whose client is a package of its own.
const (
	tsSDKv1 = "@modelcontextprotocol/sdk"
	tsSDKv2 = "@modelcontextprotocol/client"
)

// TestMCPTypeScript runs the official MCP TypeScript SDK's client (from
// npm, on the machine's Node) against the demo stack (Caddyfile.example:
// issuer, gateway, the demo code-review MCP server), as TestMCPOAuth does
// with the Go SDK. The client is given only the MCP endpoint URL: the
// SDK's StreamableHTTPClientTransport meets the gateway's 401, discovers
// the issuer from the RFC 9728 metadata and the issuer's RFC 8414
// metadata, registers (RFC 7591 DCR, or a client ID metadata document),
// and runs authorization code + PKCE; the script posts the issuer's real
// login and consent forms over HTTP, in node, so the SDK sees exactly what
// an app with a browser would (integration/tsclient/headless.mjs). The
// user is entitled to the read scopes only: tools/list shows the read
// tools, read_diff works, write_file is refused with 403
// insufficient_scope; then the test entitles the user to
// repository:write, the app steps up, and write_file works.
//
// Protocol revisions, one SDK line each:
//
//   - 2025-11-25: @modelcontextprotocol/sdk 1.32.2 (oauth-flow.mjs), the
//     newest v1, whose client always offers its LATEST_PROTOCOL_VERSION,
//     2025-11-25; it has no 2026-07-28 in SUPPORTED_PROTOCOL_VERSIONS. The
//     test fails when the pinned v1 offers 2026-07-28, so that a run of
//     it against the stateless upstream is added then.
//   - 2026-07-28: @modelcontextprotocol/client 2.4.0 (oauth-flow-v2.mjs)
//     with versionNegotiation 'auto', against the stateless demo upstream
//     (demo/server -stateless: the demo server, built on the Go SDK,
//     offers 2026-07-28 only there); the test fails if the client fell
//     back to initialize.
func TestMCPTypeScript(t *testing.T) {
	node, pinned := tsClientNode(t)

	// The client ID metadata document (CIMD) of the CIMD runs, on https
	// (the SDKs accept only https client ID URLs) on loopback: the issuer
	// fetches it with loopback allowed (dev_loopback_client_metadata) and
	// trusts this server's certificate (SSL_CERT_FILE).
	var docFetches atomic.Int32
	var docBody atomic.Value
	docs := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/kavach-ts-app.json" {
			http.NotFound(w, r)
			return
		}
		docFetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, docBody.Load().(string))
	}))
	t.Cleanup(docs.Close)
	certFile := filepath.Join(t.TempDir(), "cimd-ca.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: docs.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	readScopes := []string{"mcp:review", "pullrequest:read", "repository:read"}
	withWrite := sorted(append(slices.Clone(readScopes), "repository:write"))

	n := 0
	for _, rev := range []struct {
		protocol, pkg, script string
	}{
		{"2025-11-25", tsSDKv1, "oauth-flow.mjs"},
		{"2026-07-28", tsSDKv2, "oauth-flow-v2.mjs"},
	} {
		v2 := rev.pkg == tsSDKv2
		s := startDemoStack(t, demoStackOptions{
			Stateless:   v2,
			IssuerLines: []string{"dev_loopback_client_metadata"},
			Env:         []string{"SSL_CERT_FILE=" + certFile},
		})
		metaURL := s.gateway + "/.well-known/oauth-protected-resource/mcp"
		for _, cimd := range []bool{false, true} {
			n++
			i, name := n, rev.protocol+"/DCR"
			if cimd {
				name = rev.protocol + "/CIMD"
			}
			t.Run(name, func(t *testing.T) {
				userID, userName, password := fmt.Sprintf("usr_ts%d", i), fmt.Sprintf("ts-user-%d", i), fmt.Sprintf("ts user %d password", i)
				s.createUser(t, userID, userName, password, map[string][]string{s.resource: readScopes})
				redirectURL := fmt.Sprintf("http://127.0.0.1:%d/callback", freePort(t))
				env := []string{
					"KAVACH_TS_USER=" + userName,
					"KAVACH_TS_PASSWORD=" + password,
					"KAVACH_TS_REDIRECT_URL=" + redirectURL,
					"KAVACH_TS_ALLOWED=read_diff",
					"KAVACH_TS_FORBIDDEN=write_file",
					`KAVACH_TS_FORBIDDEN_ARGS={"path":"NOTES.md","content":"written by the TypeScript SDK client\n"}`,
				}
				clientMetadataURL := ""
				if cimd {
					clientMetadataURL = docs.URL + "/kavach-ts-app.json"
					doc, _ := json.Marshal(map[string]any{
						"client_id": clientMetadataURL, "client_name": "Kavach TS SDK test app (CIMD)",
						"redirect_uris": []string{redirectURL}, "token_endpoint_auth_method": "none",
						"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
					})
					docBody.Store(string(doc))
					env = append(env, "KAVACH_TS_CLIENT_METADATA_URL="+clientMetadataURL)
				}

				fetchesBefore := docFetches.Load()
				res := runTSClient(t, node, rev.script, s.resource, env, func(ev tsEvent) {
					if ev.What != "entitlement" {
						t.Fatalf("the script waits for %q", ev.What)
					}
					// The user is given the write scope (an admin's decision);
					// the token the client holds does not change by itself.
					s.cli(t, nil, "user", "entitle", userID, "--entitle", s.resource+"="+strings.Join(withWrite, ","))
				})
				t.Logf("%s %s, protocol %s, client %s", res.SDK.Package, res.SDK.Version, res.Steps.Connect.ProtocolVersion, res.clientID())

				if res.SDK.Package != rev.pkg || res.SDK.Version != pinned[rev.pkg] {
					t.Errorf("the script ran %s %q, package.json pins %s %s", res.SDK.Package, res.SDK.Version, rev.pkg, pinned[rev.pkg])
				}
				if !v2 && slices.Contains(res.SDK.SupportedProtocolVersions, "2026-07-28") {
					t.Errorf("%s %s offers 2026-07-28 (%v): add a run with the stateless demo upstream", res.SDK.Package, res.SDK.Version, res.SDK.SupportedProtocolVersions)
				}
				c := res.Steps.Connect
				if c.ProtocolVersion != rev.protocol || c.Session == v2 {
					t.Errorf("connected with protocol %q, session %v; want %s with a session (2025-11-25) or without (stateless 2026-07-28)", c.ProtocolVersion, c.Session, rev.protocol)
				}
				if v2 && (c.HeaderVersion != rev.protocol || !slices.Contains(c.DiscoverVersions, rev.protocol)) {
					t.Errorf("MCP-Protocol-Version %q, server/discover offered %q; want %s in both", c.HeaderVersion, c.DiscoverVersions, rev.protocol)
				}

				// Discovery: the first request (initialize, or v2's
				// server/discover probe) is refused with the metadata
				// challenge; the SDK reads that metadata, then the issuer's,
				// before it registers or asks for anything.
				if len(res.HTTP) == 0 || res.HTTP[0].Method != http.MethodPost || res.HTTP[0].URL != s.resource || res.HTTP[0].Status != http.StatusUnauthorized ||
					res.HTTP[0].WWWAuthenticate != `Bearer scope="`+strings.Join(demoScopes, " ")+`", resource_metadata="`+metaURL+`"` {
					t.Fatalf("first request %+v: want POST %s → 401 naming %s", res.HTTP, s.resource, metaURL)
				}
				if v2 && (res.HTTP[0].MCPMethod != "server/discover" || res.HTTP[0].MCPProtocolVersion != rev.protocol) {
					t.Errorf("first request: Mcp-Method %q, MCP-Protocol-Version %q; want the server/discover probe at %s", res.HTTP[0].MCPMethod, res.HTTP[0].MCPProtocolVersion, rev.protocol)
				}
				prm, asm := res.first(http.MethodGet, metaURL), res.first(http.MethodGet, s.issuer+"/.well-known/oauth-authorization-server")
				firstIssuerCall := res.firstPrefix(s.issuer + "/oauth/")
				if prm < 0 || asm < prm || firstIssuerCall < asm || res.HTTP[prm].Status != http.StatusOK || res.HTTP[asm].Status != http.StatusOK {
					t.Errorf("discovery: RFC 9728 metadata at %d, RFC 8414 metadata at %d, first /oauth/ request at %d; want them in that order, 200:\n%s", prm, asm, firstIssuerCall, res.httpLog())
				}

				// Registration.
				reg := res.first(http.MethodPost, s.issuer+"/oauth/register")
				if len(res.Registrations) == 0 {
					t.Fatalf("the SDK saved no client information:\n%s", res.httpLog())
				}
				clientID := res.Registrations[0].ClientID
				if cimd {
					if fetched := docFetches.Load() - fetchesBefore; reg >= 0 || clientID != clientMetadataURL || fetched == 0 {
						t.Errorf("CIMD: POST /oauth/register at %d, client_id %q, the document fetched %d times; want no registration, client_id %s, fetched by the issuer",
							reg, clientID, fetched, clientMetadataURL)
					}
				} else if reg < 0 || res.HTTP[reg].Status != http.StatusCreated || !strings.HasPrefix(clientID, "cli_") {
					t.Errorf("DCR: POST /oauth/register at %d, client_id %q; want 201 and a cli_ client:\n%s", reg, clientID, res.httpLog())
				}

				// The authorization request and what the user saw: the SDK
				// asks for the metadata's scopes_supported; the user grants
				// what she is entitled to, the rest is shown as refused.
				if len(res.Authorizations) < 1 {
					t.Fatalf("no authorization request")
				}
				a := res.Authorizations[0]
				if a.Params["client_id"] != clientID || a.Params["code_challenge_method"] != "S256" || a.Params["resource"] != s.resource ||
					a.Params["redirect_uri"] != redirectURL || a.Params["response_type"] != "code" || a.Params["state"] == "" {
					t.Errorf("authorization request %v: want client %s, S256, resource %s, redirect %s, a state", a.Params, clientID, s.resource, redirectURL)
				}
				if got := sortedFields(a.Params["scope"]); !slices.Equal(got, sorted(demoScopes)) {
					t.Errorf("the SDK asked for scope %q, want the metadata's scopes_supported %q", a.Params["scope"], demoScopes)
				}
				if !slices.Equal(sorted(a.Consent.Granted), sorted(readScopes)) || !slices.Equal(sorted(a.Consent.Refused), []string{"comment:write", "repository:write"}) {
					t.Errorf("consent page: granted %q, refused %q; want %q and the other two", a.Consent.Granted, a.Consent.Refused, readScopes)
				}
				if a.Response.Iss != s.issuer || !a.Response.StateMatches {
					t.Errorf("authorization response: iss %q, state matches %v; want %s, true (RFC 9207)", a.Response.Iss, a.Response.StateMatches, s.issuer)
				}
				if len(res.Tokens) == 0 || !slices.Equal(sortedFields(res.Tokens[0].Scope), sorted(readScopes)) || !res.Tokens[0].RefreshToken {
					t.Errorf("first token %+v: want scope %q and a refresh token", res.Tokens, readScopes)
				}

				// tools/list is filtered to what the user granted; the
				// allowed tool reaches the server as the user, through the
				// app.
				if !slices.Equal(res.Steps.ToolsBefore, []string{"read_diff", "read_file"}) {
					t.Errorf("tools/list: %q, want read_diff and read_file", res.Steps.ToolsBefore)
				}
				if c := res.Steps.Allowed.calledBy(); res.Steps.Allowed.IsError || c.Subject != userID || c.Actor != clientID ||
					!slices.Equal(sortedFields(c.Scope), sorted(readScopes)) || !strings.Contains(res.Steps.Allowed.Text, "diff --git") {
					t.Errorf("read_diff: error %v, called by %+v; want the diff, for %s through %s with %q", res.Steps.Allowed.IsError, c, userID, clientID, readScopes)
				}

				// The forbidden tool: 403 insufficient_scope naming the
				// route's scope and the tool's, and nothing reaches the
				// server.
				wantChallenge := `Bearer error="insufficient_scope", scope="mcp:review repository:write", error_description="insufficient scope", resource_metadata="` + metaURL + `"`
				denied := res.inStep("denied")
				if len(denied) == 0 || denied[0].Status != http.StatusForbidden || denied[0].WWWAuthenticate != wantChallenge {
					t.Errorf("write_file: %+v; want 403 with %s", denied, wantChallenge)
				}
				if v2 && len(denied) > 0 && (denied[0].MCPMethod != "tools/call" || denied[0].MCPName != "write_file") {
					t.Errorf("write_file: Mcp-Method %q, Mcp-Name %q; want tools/call, write_file", denied[0].MCPMethod, denied[0].MCPName)
				}
				for _, e := range denied {
					if e.Status == http.StatusOK && e.URL == s.resource {
						t.Errorf("write_file reached the server before the step-up:\n%s", res.httpLog())
					}
				}
				d := res.Steps.Denied
				if !v2 {
					// v1 then tries to step up by itself, but with its
					// refresh token (a refresh cannot widen the grant), gets
					// the same 403 and gives up with an error.
					if d.AllowedAnyway || d.Error == nil || fmt.Sprint(d.Error.Code) != "403" {
						t.Errorf("write_file before the step-up: %+v; want the SDK's 403 error", d)
					}
				} else {
					// v2 steps up at once: a new authorization request for
					// the union of its grant and the challenged scope. The
					// consent page shows repository:write beyond the user's
					// access; she denies, and the SDK hands the app the
					// access_denied (after checking the iss of the refusal).
					if len(res.Authorizations) < 2 {
						t.Fatalf("%d authorization requests, want the step-up's in the denied step:\n%s", len(res.Authorizations), res.httpLog())
					}
					ask := res.Authorizations[1]
					if ask.Step != "denied" || !slices.Equal(sortedFields(ask.Params["scope"]), withWrite) || ask.Params["client_id"] != clientID ||
						!slices.Equal(sorted(ask.Consent.Refused), []string{"repository:write"}) || ask.Response.Error != "access_denied" || ask.Response.Iss != s.issuer {
						t.Errorf("step-up before the entitlement: step %s, %v, consent %+v, response %+v; want scope %q, repository:write refused, access_denied from %s",
							ask.Step, ask.Params, ask.Consent, ask.Response, withWrite, s.issuer)
					}
					if d.AllowedAnyway || d.Error == nil || fmt.Sprint(d.Error.Code) != "access_denied" {
						t.Errorf("write_file before the entitlement: %+v; want the SDK's access_denied", d)
					}
				}

				// The step-up after the entitlement: the app asks for the
				// scope the 403 named (v1: exactly; v2: with its grant); the
				// user consents; the call goes through.
				wantAuthz, stepScope, stepGranted := 2, []string{"mcp:review", "repository:write"}, []string{"mcp:review", "repository:write"}
				if v2 {
					wantAuthz, stepScope, stepGranted = 3, withWrite, withWrite
				}
				if len(res.Authorizations) != wantAuthz {
					t.Fatalf("%d authorization requests, want %d:\n%s", len(res.Authorizations), wantAuthz, res.httpLog())
				}
				up := res.Authorizations[wantAuthz-1]
				if up.Step != "stepup" || !slices.Equal(sortedFields(up.Params["scope"]), stepScope) || up.Params["client_id"] != clientID ||
					!slices.Equal(sorted(up.Consent.Granted), stepGranted) || up.Response.Iss != s.issuer {
					t.Errorf("step-up authorization: step %s, %v, consent %+v; want scope %q, granted", up.Step, up.Params, up.Consent, stepScope)
				}
				st := res.Steps.Stepup
				if st.Error != nil || st.IsError || !strings.Contains(st.Text, "NOTES.md") || st.calledBy().Subject != userID || st.calledBy().Actor != clientID {
					t.Errorf("write_file after the step-up: %+v\n%s", st, res.httpLog())
				}
				last := res.Tokens[len(res.Tokens)-1]
				if v2 {
					// v2 merges: the new token keeps the read scopes, so the
					// list now shows the write tool beside the read ones.
					if !slices.Equal(sortedFields(st.calledBy().Scope), withWrite) || !slices.Equal(sortedFields(last.Scope), withWrite) {
						t.Errorf("after the step-up: write_file called with %q, token scope %q; want %q", st.calledBy().Scope, last.Scope, withWrite)
					}
					if want := []string{"read_diff", "read_file", "write_file"}; !slices.Equal(res.Steps.ToolsAfter, want) {
						t.Errorf("tools/list after the step-up: %q, want %q", res.Steps.ToolsAfter, want)
					}
				} else {
					// The MCP session is bound to the user and client, which
					// the new consent keeps: the retry runs in the same
					// session.
					if !st.SessionKept {
						t.Errorf("the step-up did not keep the MCP session:\n%s", res.httpLog())
					}
					// v1 requests exactly the challenged scope (no union with
					// the earlier grant): the list shows what the new token
					// allows.
					if want := toolsFor(sortedFields(last.Scope)); !slices.Equal(res.Steps.ToolsAfter, want) {
						t.Errorf("tools/list after the step-up: %q, want %q (token scope %q)", res.Steps.ToolsAfter, want, last.Scope)
					}
				}
			})
		}
	}
}

// toolsFor: the demo tools a token with these scopes may call.
func toolsFor(scopes []string) []string {
	var out []string
	for tool, sc := range map[string]string{"read_diff": "pullrequest:read", "read_file": "repository:read", "write_file": "repository:write", "post_comment": "comment:write"} {
		if slices.Contains(scopes, sc) && slices.Contains(scopes, "mcp:review") {
			out = append(out, tool)
		}
	}
	slices.Sort(out)
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// tsResult is what the scripts print last (headless.mjs's record).
type tsResult struct {
	Event string `json:"event"`
	Step  string `json:"step"`
	Error *tsErr `json:"error"`
	SDK   struct {
		Package                   string   `json:"package"`
		Version                   string   `json:"version"`
		LatestProtocolVersion     string   `json:"latest_protocol_version"`
		SupportedProtocolVersions []string `json:"supported_protocol_versions"`
	} `json:"sdk"`
	HTTP          []tsHTTP `json:"http"`
	Registrations []struct {
		ClientID string `json:"client_id"`
	} `json:"registrations"`
	Authorizations []struct {
		Step     string            `json:"step"`
		Params   map[string]string `json:"params"`
		Decision string            `json:"decision"`
		Consent  struct {
			Granted []string `json:"granted"`
			Refused []string `json:"refused"`
		} `json:"consent"`
		Response struct {
			Iss          string `json:"iss"`
			StateMatches bool   `json:"state_matches"`
			Error        string `json:"error"`
		} `json:"response"`
	} `json:"authorizations"`
	Tokens []struct {
		Step         string `json:"step"`
		Scope        string `json:"scope"`
		RefreshToken bool   `json:"refresh_token"`
	} `json:"tokens"`
	Steps struct {
		Connect struct {
			ProtocolVersion  string   `json:"protocol_version"`
			HeaderVersion    string   `json:"header_version"`    // v2: the transport's MCP-Protocol-Version
			DiscoverVersions []string `json:"discover_versions"` // v2: server/discover's supportedVersions
			Session          bool     `json:"session"`
		} `json:"connect"`
		ToolsBefore []string     `json:"tools_before"`
		Allowed     tsToolResult `json:"allowed"`
		Denied      tsToolResult `json:"denied"`
		Stepup      tsToolResult `json:"stepup"`
		ToolsAfter  []string     `json:"tools_after"`
	} `json:"steps"`
}

// tsHTTP is one request the SDK made (the script's recording fetch): what
// it sent (method, URL, the MCP headers) and the answer's status and
// challenge.
type tsHTTP struct {
	Step               string `json:"step"`
	Method             string `json:"method"`
	URL                string `json:"url"`
	MCPProtocolVersion string `json:"mcp_protocol_version"`
	MCPMethod          string `json:"mcp_method"`
	MCPName            string `json:"mcp_name"`
	Status             int    `json:"status"`
	WWWAuthenticate    string `json:"www_authenticate"`
}

// tsErr is an error the script caught: its class, code (v1's
// StreamableHTTPError: the HTTP status; v2's OAuthError: the OAuth error
// code) and message.
type tsErr struct {
	Name    string `json:"name"`
	Code    any    `json:"code"`
	Message string `json:"message"`
}

type tsToolResult struct {
	IsError       bool            `json:"is_error"`
	AllowedAnyway bool            `json:"allowed_anyway"`
	SessionKept   bool            `json:"session_kept"`
	Text          string          `json:"text"`
	Structured    json.RawMessage `json:"structured"`
	Error         *tsErr          `json:"error"`
}

type tsCaller struct {
	Subject string `json:"subject"`
	Actor   string `json:"actor"`
	Scope   string `json:"scope"`
}

func (r tsToolResult) calledBy() tsCaller {
	var v struct {
		CalledBy tsCaller `json:"called_by"`
	}
	_ = json.Unmarshal(r.Structured, &v)
	return v.CalledBy
}

func (r *tsResult) clientID() string {
	if len(r.Registrations) == 0 {
		return ""
	}
	return r.Registrations[0].ClientID
}

func (r *tsResult) first(method, url string) int {
	return slices.IndexFunc(r.HTTP, func(e tsHTTP) bool {
		return e.Method == method && e.URL == url
	})
}

func (r *tsResult) firstPrefix(prefix string) int {
	for i, e := range r.HTTP {
		if strings.HasPrefix(e.URL, prefix) {
			return i
		}
	}
	return -1
}

func (r *tsResult) inStep(step string) (out []tsHTTP) {
	for _, e := range r.HTTP {
		if e.Step == step {
			out = append(out, e)
		}
	}
	return out
}

func (r *tsResult) httpLog() string {
	var b strings.Builder
	for i, e := range r.HTTP {
		fmt.Fprintf(&b, "  %2d %-8s %-6s %s %s → %d %s\n", i, e.Step, e.Method, e.URL, e.MCPMethod, e.Status, e.WWWAuthenticate)
	}
	return b.String()
}

// tsEvent is a line the script prints while it runs.
type tsEvent struct {
	Event string `json:"event"`
	What  string `json:"what"`
}

// runTSClient runs `node integration/tsclient/<script> <endpoint>` with env
// added, answers each {"event":"await"} line by calling onAwait and then
// writing "continue", and returns the final result line.
func runTSClient(t *testing.T, node, script, endpoint string, env []string, onAwait func(tsEvent)) *tsResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, endpoint)
	cmd.Dir = tsClientDir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	setChildAttrs(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("%s stderr:\n%s", script, stderr.String())
		}
	}()
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var last []byte
	for sc.Scan() {
		line := slices.Clone(sc.Bytes())
		var ev tsEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatalf("%s printed a line that is not JSON: %v\n%s", script, err, line)
		}
		if ev.Event == "await" {
			onAwait(ev)
			if _, err := io.WriteString(stdin, "continue\n"); err != nil {
				t.Fatal(err)
			}
			continue
		}
		last = line
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading %s's output: %v", script, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within 2 minutes", script)
	}
	var res tsResult
	if err := json.Unmarshal(last, &res); err != nil {
		t.Fatalf("%s's last line %q: %v", script, last, err)
	}
	if res.Event != "result" {
		t.Fatalf("%s failed in step %s: %+v\n%s\n%s", script, res.Step, res.Error, res.httpLog(), last)
	}
	return &res
}

// tsClientNode returns the node binary and the SDK versions package.json
// pins, once the client's dependencies are installed as package-lock.json
// says (scripts/deps.sh runs npm ci). Outside CI a machine without them
// skips; under CI=true that fails.
func tsClientNode(t *testing.T) (node string, pinned map[string]string) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...) + " (scripts/deps.sh installs Node.js and runs npm ci there)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed")
	}
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	raw, err := os.ReadFile(filepath.Join(tsClientDir, "package.json"))
	if err != nil || json.Unmarshal(raw, &pkg) != nil {
		t.Fatalf("%s/package.json: %v", tsClientDir, err)
	}
	pinned = map[string]string{}
	for _, name := range []string{tsSDKv1, tsSDKv2} {
		want := pkg.Dependencies[name]
		if want == "" {
			t.Fatalf("%s/package.json: want a pinned %s", tsClientDir, name)
		}
		var installed struct {
			Version string `json:"version"`
		}
		raw, err = os.ReadFile(filepath.Join(tsClientDir, "node_modules", filepath.FromSlash(name), "package.json"))
		if err != nil || json.Unmarshal(raw, &installed) != nil {
			missing("integration/%s/node_modules has no %s", tsClientDir, name)
		}
		if installed.Version != want {
			missing("integration/%s/node_modules has %s %s, package.json pins %s", tsClientDir, name, installed.Version, want)
		}
		pinned[name] = want
	}
	return node, pinned
}
