package caddymodule

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// startAdmin serves the Kavach admin API on its loopback listener.
// caddy.Listen shares the socket across config reloads, so a reload does
// not drop the listener.
func (a *App) startAdmin() error {
	secret, err := a.adminSecret()
	if err != nil {
		return err
	}
	na, err := caddy.ParseNetworkAddress(a.Admin)
	if err != nil {
		return fmt.Errorf("kavach: admin %s: %w", a.Admin, err)
	}
	ln, err := na.Listen(context.Background(), 0, net.ListenConfig{})
	if err != nil {
		return fmt.Errorf("kavach: admin listener: %w", err)
	}
	a.adminLn = ln.(net.Listener)
	a.adminKey.Store(&secret)
	mux := http.NewServeMux()
	if len(a.issuers) > 0 {
		// The agent admin API of the (first) issuer of this process.
		if srv := a.issuers[0].srv.Load(); srv != nil {
			mux.Handle("/v1/", srv.AdminHandler())
		}
	}
	mux.Handle("/v1/revocations", revocation.NewHandler(durableSet{Set: a.rev, persist: a.persistRevocation}, revocation.HandlerOptions{
		MaxLifetime: a.maxLifetime(),
		Leeway:      token.Leeway,
	}))
	root := http.NewServeMux()
	root.HandleFunc("GET /readyz", a.serveReady)
	root.Handle("/", requireBearer(secret, jsonErrors(mux)))
	a.admin = &http.Server{
		Handler:           root,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(a.logger),
	}
	go func() {
		if err := a.admin.Serve(a.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			a.logger.Error("admin listener stopped", zap.Error(err))
		}
	}()
	a.logger.Info("kavach admin listening", zap.String("address", a.Admin))
	return nil
}

// durableSet is the revocation set as the admin listener sees it: an
// entry is kept where a restart finds it before the set applies it, and
// one that cannot be kept is refused (503), never applied only in memory.
type durableSet struct {
	revocation.Set
	persist func(context.Context, revocation.Entry) error
}

func (d durableSet) Revoke(ctx context.Context, e revocation.Entry) error {
	if err := d.persist(ctx, e); err != nil {
		return err
	}
	return d.Set.Revoke(ctx, e)
}

// persistRevocation keeps an admin-listener revocation: in the store of
// every issuer of this process (which seeds the set at start and when
// Redis lost its data), else in the journal in Caddy's data directory.
func (a *App) persistRevocation(ctx context.Context, e revocation.Entry) error {
	if a.journal != nil {
		return a.journal.Append(e)
	}
	if len(a.issuers) == 0 {
		return errors.New("no issuer store and no journal to keep the revocation")
	}
	for _, h := range a.issuers {
		srv := h.srv.Load()
		if srv == nil {
			return fmt.Errorf("issuer %s is not running", h.Issuer)
		}
		if err := srv.StoreRevocation(ctx, e); err != nil {
			return fmt.Errorf("issuer %s: %w", h.Issuer, err)
		}
	}
	return nil
}

func (a *App) maxLifetime() time.Duration {
	if a.MaxTokenLifetime > 0 {
		return time.Duration(a.MaxTokenLifetime)
	}
	return token.DefaultMaxLifetime
}

// adminSecret resolves the admin bearer token: the configured placeholder
// (which must not resolve to empty), else KAVACH_ADMIN_TOKEN, else a token
// generated once into the data directory.
func (a *App) adminSecret() (string, error) {
	if a.AdminToken != "" {
		s := caddy.NewReplacer().ReplaceAll(a.AdminToken, "")
		if s == "" {
			return "", fmt.Errorf("kavach: admin_token %s is empty", a.AdminToken)
		}
		return s, nil
	}
	if s := os.Getenv("KAVACH_ADMIN_TOKEN"); s != "" {
		return s, nil
	}
	path := adminTokenFile()
	if data, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(data))) > 0 {
		return strings.TrimSpace(string(data)), nil
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	s := base64.RawURLEncoding.EncodeToString(b[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", err
	}
	a.logger.Info("generated the kavach admin token", zap.String("file", path))
	return s, nil
}

// serveReady reports whether this gateway can decide requests: 200 when
// its revocation set is fresh, 503 otherwise. It needs no token (it says
// nothing secret and orchestrators probe it).
func (a *App) serveReady(w http.ResponseWriter, _ *http.Request) {
	st := a.rev.status()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !st.Fresh {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(st)
}

// jsonErrors gives the admin listener one error shape: the answers
// net/http writes itself (http.Error's text/plain 404 for an unknown path,
// 405 for a method a path does not take) become
// {"error","error_description"} like every other admin error.
func jsonErrors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&jsonErrorWriter{ResponseWriter: w}, r)
	})
}

type jsonErrorWriter struct {
	http.ResponseWriter
	swallow bool // a plain-text error body is being replaced
}

func (w *jsonErrorWriter) WriteHeader(code int) {
	h := w.Header()
	if code >= 400 && strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		w.swallow = true
		desc := strings.ToLower(http.StatusText(code))
		errCode := strings.ReplaceAll(desc, " ", "_")
		if code == http.StatusNotFound {
			desc = "no such endpoint"
		}
		body, _ := json.Marshal(struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}{errCode, desc})
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", fmt.Sprint(len(body)+1))
		w.ResponseWriter.WriteHeader(code)
		_, _ = w.ResponseWriter.Write(append(body, '\n'))
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *jsonErrorWriter) Write(p []byte) (int, error) {
	if w.swallow {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

func (w *jsonErrorWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// requireBearer admits only requests carrying the admin token.
func requireBearer(secret string, next http.Handler) http.Handler {
	want := []byte("Bearer " + secret)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			// A caller with a token learns that it is the wrong one,
			// nothing about the right one.
			desc := "admin token required"
			if len(got) > 0 {
				desc = "admin token rejected"
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="kavach-admin"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"unauthorized","error_description":"` + desc + `"}` + "\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
