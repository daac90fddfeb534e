package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kavachgate/kavach/issuer"
	"github.com/kavachgate/kavach/issuer/store"
	"github.com/kavachgate/kavach/revocation"
)

// The issuer benchmarks mint tokens over real HTTP (loopback) from an
// issuer on a real SQLite store, with concurrent clients as a busy agent
// fleet would: client_credentials (an agent's own token) and RFC 8693
// token exchange (a narrowed token). They report tokens/s and the p99 of
// one request.
//
//	go test -run '^$' -bench Issuer -benchtime 4000x ./bench/

const issuerResource = "https://api.bench.test/api"

type issuerFixture struct {
	srv      *httptest.Server
	id, sec  string
	subject  string // a token of the agent, for exchanges
	tokenURL string
}

func startIssuerBench(b *testing.B) *issuerFixture {
	b.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "kavach.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	hs := httptest.NewUnstartedServer(nil)
	iss := "http://" + hs.Listener.Addr().String()
	s, err := issuer.New(issuer.Config{
		Issuer: iss, Store: st,
		Revoked: revocation.NewMemory(revocation.MemoryOptions{}),
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	hs.Config.Handler = s.Handler()
	hs.Start()
	b.Cleanup(hs.Close)

	admin := func(path string, body any, out any) {
		data, _ := json.Marshal(body)
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(data))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		s.AdminHandler().ServeHTTP(w, req)
		if w.Code != http.StatusCreated {
			b.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
		if out != nil {
			if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
				b.Fatal(err)
			}
		}
	}
	admin("/v1/users", map[string]any{"id": "usr_bench", "name": "bench", "entitlements": map[string][]string{issuerResource: {"repo:read", "repo:write"}}}, nil)
	var agent struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	admin("/v1/agents", map[string]any{"name": "bench", "owner": "usr_bench", "scopes": []string{"repo:read", "repo:write"}, "ttl": "1h"}, &agent)
	f := &issuerFixture{srv: hs, id: agent.ClientID, sec: agent.ClientSecret, tokenURL: iss + "/oauth/token"}
	tok, err := f.post(http.DefaultClient, url.Values{"grant_type": {"client_credentials"}, "resource": {issuerResource}})
	if err != nil {
		b.Fatal(err)
	}
	f.subject = tok
	return f
}

// post sends one token request as the agent and returns the access token.
func (f *issuerFixture) post(c *http.Client, form url.Values) (string, error) {
	req, err := http.NewRequest(http.MethodPost, f.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(f.id, f.sec)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%d %s", resp.StatusCode, body)
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.AccessToken == "" {
		return "", fmt.Errorf("no access_token in %s", body)
	}
	return out.AccessToken, nil
}

// runIssuer sends b.N requests from `workers` concurrent clients.
func runIssuer(b *testing.B, f *issuerFixture, workers int, form url.Values) {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	lat := make([][]time.Duration, workers)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if _, err := f.post(c, form); err != nil {
					failed.Store(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tokens/s")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
}

// BenchmarkIssuerClientCredentials: an agent's own token.
func BenchmarkIssuerClientCredentials(b *testing.B) {
	f := startIssuerBench(b)
	runIssuer(b, f, 8, url.Values{"grant_type": {"client_credentials"}, "scope": {"repo:read"}, "resource": {issuerResource}})
}

// BenchmarkIssuerTokenExchange: a narrowed token by RFC 8693 (verifying
// the subject token, its chain in the store, attenuation, signing).
func BenchmarkIssuerTokenExchange(b *testing.B) {
	f := startIssuerBench(b)
	runIssuer(b, f, 8, url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {f.subject},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
		"scope":              {"repo:read"},
	})
}
