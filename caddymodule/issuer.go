package caddymodule

import (
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/kavachgate/kavach/node"
)

func init() {
	caddy.RegisterModule(IssuerHandler{})
}

// IssuerHandler (`http.handlers.kavach_issuer`) is the Kavach issuer: an
// OAuth 2.1 authorization server for agents (package issuer). It serves
// the OAuth endpoints on its site; its agent admin API is served by the
// kavach app's admin listener, and it writes revocations into the app's
// revocation set.
type IssuerHandler struct {
	node.IssuerConfig

	app *App
	iss *node.Issuer
}

// CaddyModule returns the Caddy module information.
func (IssuerHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.kavach_issuer",
		New: func() caddy.Module { return new(IssuerHandler) },
	}
}

// Provision registers the issuer with the kavach app's node, which opens
// the store and starts it in App.Start (nothing is opened here:
// Provision also runs under `kavach validate`).
func (h *IssuerHandler) Provision(ctx caddy.Context) error {
	appIface, err := ctx.App("kavach")
	if err != nil {
		return err
	}
	h.app = appIface.(*App)
	if h.Store == "" {
		h.Store = node.StoreSQLite
	}
	h.iss, err = h.app.rt.AddIssuer(h.IssuerConfig, clientIP)
	return err
}

// clientIP is Caddy's client_ip, which honours trusted_proxies.
func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

// Validate refuses a configuration the issuer could not run with. The
// kavach app is provisioned before this handler, so its
// max_token_lifetime is known here (issuer.New would refuse it at run).
func (h *IssuerHandler) Validate() error {
	return h.IssuerConfig.Validate(h.app.MaxLifetime())
}

// ServeHTTP serves the issuer's endpoints and answers 404 to anything
// else (never Caddy's empty 200): to serve more on the issuer's site, put
// the handler under a matcher (`handle /oauth/* { kavach_issuer … }`, plus
// the /.well-known/ paths).
func (h *IssuerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	srv := h.iss.Server()
	if srv == nil {
		return caddyhttp.Error(http.StatusServiceUnavailable, errors.New("issuer starting"))
	}
	if !srv.Handles(r) {
		return caddyhttp.Error(http.StatusNotFound, errors.New("not found"))
	}
	srv.Handler().ServeHTTP(w, r)
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*IssuerHandler)(nil)
	_ caddy.Validator             = (*IssuerHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*IssuerHandler)(nil)
	_ caddyfile.Unmarshaler       = (*IssuerHandler)(nil)
)
