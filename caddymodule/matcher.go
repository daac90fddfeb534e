package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/kavachgate/kavach/gateway"
)

func init() {
	caddy.RegisterModule(MatchDotSegments{})
}

// MatchDotSegments (`http.matchers.kavach_dot_segments`) matches a request
// whose path, as sent, has a "." or ".." segment (also when encoded as
// %2e). Caddy's path matchers clean such a path before matching, so
// `/api/../admin` would not reach a `kavach /api/*` route while the
// upstream may still receive it as sent; the kavach directive puts a route
// with this matcher first and answers 400.
type MatchDotSegments struct{}

// CaddyModule returns the Caddy module information.
func (MatchDotSegments) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.matchers.kavach_dot_segments",
		New: func() caddy.Module { return new(MatchDotSegments) },
	}
}

// MatchWithError reports whether the decoded request path has a dot segment.
func (MatchDotSegments) MatchWithError(r *http.Request) (bool, error) {
	return gateway.HasDotSegment(r.URL.Path), nil
}

// Match is MatchWithError without the error.
func (m MatchDotSegments) Match(r *http.Request) bool {
	ok, _ := m.MatchWithError(r)
	return ok
}

// Interface guards
var (
	_ caddyhttp.RequestMatcherWithError = (*MatchDotSegments)(nil)
	_ caddyfile.Unmarshaler             = (*MatchDotSegments)(nil)
)
