package caddymodule

import (
	"encoding/json"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/kavachgate/kavach/gateway"
)

func init() {
	caddy.RegisterModule(Metadata{})
}

// Metadata (`http.handlers.kavach_metadata`) serves a protected resource's
// RFC 9728 metadata, which MCP clients fetch after a 401 to find the
// authorization server.
type Metadata struct {
	// Resource is the protected resource's identifier (RFC 9728 §2).
	Resource string `json:"resource"`
	// AuthorizationServers are issuer identifiers. Default: the Kavach
	// issuers the kavach app trusts.
	AuthorizationServers []string `json:"authorization_servers,omitempty"`
	// ScopesSupported are advertised to clients. Optional.
	ScopesSupported []string `json:"scopes_supported,omitempty"`

	body []byte
}

// CaddyModule returns the Caddy module information.
func (Metadata) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.kavach_metadata",
		New: func() caddy.Module { return new(Metadata) },
	}
}

// Provision renders the metadata document once.
func (m *Metadata) Provision(ctx caddy.Context) error {
	if err := gateway.ValidateResource(m.Resource); err != nil {
		return err
	}
	servers := m.AuthorizationServers
	if len(servers) == 0 {
		appIface, err := ctx.App("kavach")
		if err != nil {
			return err
		}
		servers = appIface.(*App).KavachIssuerIDs()
	}
	doc := struct {
		Resource               string   `json:"resource"`
		AuthorizationServers   []string `json:"authorization_servers,omitempty"`
		ScopesSupported        []string `json:"scopes_supported,omitempty"`
		BearerMethodsSupported []string `json:"bearer_methods_supported"`
	}{m.Resource, servers, m.ScopesSupported, []string{"header"}}
	body, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	m.body = append(body, '\n')
	return nil
}

// ServeHTTP answers GET and HEAD with the document. It is public, so any
// origin may read it (browser-based MCP clients fetch it cross-origin).
func (m *Metadata) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return nil
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		return caddyhttp.Error(http.StatusMethodNotAllowed, nil)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	_, err := w.Write(m.body)
	return err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Metadata)(nil)
	_ caddyhttp.MiddlewareHandler = (*Metadata)(nil)
	_ caddyfile.Unmarshaler       = (*Metadata)(nil)
)
