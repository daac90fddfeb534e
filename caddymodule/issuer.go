package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/kavachgate/kavach/issuer"
	"github.com/kavachgate/kavach/node"
	"github.com/kavachgate/kavach/token"
)

func init() {
	caddy.RegisterModule(IssuerHandler{})
	httpcaddyfile.RegisterHandlerDirective("kavach_issuer", parseIssuer)
	httpcaddyfile.RegisterDirectiveOrder("kavach_issuer", httpcaddyfile.Before, "invoke")
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

// parseIssuer reads
//
//	kavach_issuer {
//		issuer <url>
//		store sqlite <file> | store postgres <url>
//		access_token_ttl 5m
//		refresh_token_ttl 168h
//		max_depth 5
//		registration off
//		dev_loopback_client_metadata
//	}
func parseIssuer(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	ih := new(IssuerHandler)
	if err := ih.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	// Checked here too, so the error names the line.
	maxLifetime := token.DefaultMaxLifetime
	if opt, ok := h.Option("kavach").(httpcaddyfile.App); ok {
		var app App
		if json.Unmarshal(opt.Value, &app) == nil && app.MaxTokenLifetime > 0 {
			maxLifetime = time.Duration(app.MaxTokenLifetime)
		}
	}
	if err := node.CheckAccessTTL(time.Duration(ih.AccessTokenTTL), maxLifetime); err != nil {
		h.Reset()
		for h.Next() {
			if h.Val() == "access_token_ttl" {
				break // the line to name, when there is one
			}
		}
		if h.Val() != "access_token_ttl" {
			h.Reset()
			h.Next()
		}
		return nil, h.Errf("%v", err)
	}
	return ih, nil
}

// UnmarshalCaddyfile implements caddyfile.Unmarshaler.
func (h *IssuerHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "issuer":
			if !d.Args(&h.Issuer) || d.NextArg() {
				return d.ArgErr()
			}
			if _, err := issuer.ValidateIssuerURL(h.Issuer); err != nil {
				return d.Errf("%v", err)
			}
		case "store":
			if !d.Args(&h.Store, &h.DSN) || d.NextArg() {
				return d.ArgErr()
			}
			if h.Store != "sqlite" && h.Store != "postgres" {
				return d.Errf("store must be sqlite or postgres, not %q", h.Store)
			}
		case "access_token_ttl", "refresh_token_ttl":
			name := d.Val()
			var v string
			if !d.Args(&v) || d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("%s: %q is not a positive duration", name, v)
			}
			if name == "access_token_ttl" {
				h.AccessTokenTTL = node.Duration(dur)
			} else {
				h.RefreshTokenTTL = node.Duration(dur)
			}
		case "max_depth":
			var v string
			if !d.Args(&v) || d.NextArg() {
				return d.ArgErr()
			}
			n, err := parsePositive(v)
			if err != nil || n > 16 {
				return d.Errf("max_depth: %q is not between 1 and 16", v)
			}
			h.MaxDepth = n
		case "registration":
			var v string
			if !d.Args(&v) || d.NextArg() {
				return d.ArgErr()
			}
			switch v {
			case "off":
				h.DisableRegistration = true
			case "on":
				h.DisableRegistration = false
			default:
				return d.Errf("registration: want on or off")
			}
		case "dev_loopback_client_metadata":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.DevLoopbackClientMetadata = true
		default:
			return d.Errf("unknown kavach_issuer option %q", d.Val())
		}
	}
	if h.Issuer == "" {
		return d.Err("kavach_issuer: issuer <url> is required (this site's exact public URL)")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*IssuerHandler)(nil)
	_ caddy.Validator             = (*IssuerHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*IssuerHandler)(nil)
	_ caddyfile.Unmarshaler       = (*IssuerHandler)(nil)
)

func parsePositive(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive number", v)
	}
	return n, nil
}
