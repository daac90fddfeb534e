package node

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// IssuerParam is the query parameter that picks the issuer an admin
// request under /v1/ is for (its identifier); absent, the node's first.
const IssuerParam = "issuer"

// startAdmin serves the Kavach admin API on its loopback listener:
// /readyz without a token, everything else behind the admin token, every
// error as {"error","error_description"}.
func (rt *Runtime) startAdmin() error {
	secret, err := rt.resolveAdminSecret()
	if err != nil {
		return err
	}
	listen := rt.opts.Listen
	if listen == nil {
		listen = func(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
	}
	ln, err := listen(rt.cfg.Admin)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	rt.adminSecret.Store(&secret)
	rt.admin = &http.Server{
		Handler:           rt.AdminHandler(),
		ReadHeaderTimeout: AdminReadHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(rt.log.Handler(), slog.LevelError),
	}
	go func() {
		if err := rt.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			rt.log.Error("admin listener stopped", "error", err)
		}
	}()
	rt.log.Info("kavach admin listening", "address", rt.cfg.Admin)
	return nil
}

// AdminHandler is the admin listener's handler (its server is started by
// Start when Config.Admin is set).
func (rt *Runtime) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	if len(rt.issuers) > 0 {
		// The agent admin API of the issuer ?issuer= names.
		mux.HandleFunc("/v1/", rt.serveIssuerAdmin)
	}
	mux.Handle(revocation.RevocationsPath, revocation.NewHandler(durableSet{Set: rt.rev.svc, persist: rt.persistRevocation}, revocation.HandlerOptions{
		MaxLifetime: rt.cfg.MaxLifetime(),
		Leeway:      token.Leeway,
	}))
	root := http.NewServeMux()
	root.HandleFunc("GET /readyz", rt.serveReady)
	root.Handle("/", rt.requireAdmin(jsonErrors(mux)))
	return root
}

func (rt *Runtime) serveIssuerAdmin(w http.ResponseWriter, r *http.Request) {
	i, err := rt.issuerByID(r.URL.Query().Get(IssuerParam))
	if err != nil {
		writeError(w, http.StatusNotFound, "unknown_issuer", "no issuer of this node has that identifier")
		return
	}
	srv := i.Server()
	if srv == nil {
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the issuer is not running")
		return
	}
	srv.AdminHandler().ServeHTTP(w, r)
}

// resolveAdminSecret resolves the admin bearer token: the configured
// placeholder (which must not resolve to empty), else KAVACH_ADMIN_TOKEN,
// else a token generated once into the data directory.
func (rt *Runtime) resolveAdminSecret() (string, error) {
	if rt.cfg.AdminToken != "" {
		s := rt.opts.Resolve(rt.cfg.AdminToken)
		if s == "" {
			return "", fmt.Errorf("admin_token %s is empty", rt.cfg.AdminToken)
		}
		return s, nil
	}
	if s := os.Getenv("KAVACH_ADMIN_TOKEN"); s != "" {
		return s, nil
	}
	path := AdminTokenPath(rt.opts.DataDir)
	if data, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(data))) > 0 {
		return strings.TrimSpace(string(data)), nil
	}
	var b [adminTokenBytes]byte
	_, _ = rand.Read(b[:])
	s := base64.RawURLEncoding.EncodeToString(b[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", err
	}
	rt.log.Info("generated the kavach admin token", "file", path)
	return s, nil
}

// AdminTokenPath is where a node with data directory dataDir keeps a
// generated admin token (the CLI reads it from there).
func AdminTokenPath(dataDir string) string { return filepath.Join(dataDir, "admin_token") }

// isAdmin reports whether r carries the admin token: the one check of
// the admin listener and of the issuers' introspection, in constant time.
func (rt *Runtime) isAdmin(r *http.Request) bool {
	secret := rt.adminSecret.Load()
	if secret == nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+*secret)) == 1
}

// requireAdmin admits only requests carrying the admin token.
func (rt *Runtime) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !rt.isAdmin(r) {
			// A caller with a token learns that it is the wrong one,
			// nothing about the right one.
			desc := "admin token required"
			if r.Header.Get("Authorization") != "" {
				desc = "admin token rejected"
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="kavach-admin"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", desc)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readiness is what GET /readyz answers.
type readiness struct {
	Mode         string  `json:"mode"`
	Fresh        bool    `json:"fresh"`
	Entries      int     `json:"entries"`
	LastSyncAge  float64 `json:"last_sync_age_seconds"`
	EpochMissing bool    `json:"epoch_missing"`
}

// serveReady reports whether this gateway can decide requests: 200 when
// its revocation set is fresh, 503 otherwise. It needs no token (it says
// nothing secret and orchestrators probe it).
func (rt *Runtime) serveReady(w http.ResponseWriter, _ *http.Request) {
	st := rt.RevocationStatus()
	out := readiness{Mode: st.Mode, Fresh: st.Fresh, Entries: st.Entries, EpochMissing: st.EpochMissing}
	if !st.LastPong.IsZero() {
		out.LastSyncAge = time.Since(st.LastPong).Seconds()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !st.Fresh {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(out)
}

// writeError writes the admin listener's one error shape.
func writeError(w http.ResponseWriter, status int, code, desc string) {
	body, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{code, desc})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
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
	if code >= 400 && strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		w.swallow = true
		desc := strings.ToLower(http.StatusText(code))
		errCode := strings.ReplaceAll(desc, " ", "_")
		if code == http.StatusNotFound {
			desc = "no such endpoint"
		}
		writeError(w.ResponseWriter, code, errCode, desc)
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
