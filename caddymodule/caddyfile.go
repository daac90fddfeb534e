package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/kavachgate/kavach/gateway"
	"github.com/kavachgate/kavach/token"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("kavach", parseGlobal)
	httpcaddyfile.RegisterDirective("kavach", parseKavach)
	httpcaddyfile.RegisterDirectiveOrder("kavach", httpcaddyfile.Before, "invoke")
	httpcaddyfile.RegisterDirective("kavach_metadata", parseKavachMetadata)
	httpcaddyfile.RegisterDirectiveOrder("kavach_metadata", httpcaddyfile.Before, "invoke")
	httpcaddyfile.RegisterHandlerDirective("kavach_issuer", parseIssuer)
	httpcaddyfile.RegisterDirectiveOrder("kavach_issuer", httpcaddyfile.Before, "invoke")
}

// parseGlobal reads the global option into the kavach app (the grammar is
// node.Config.UnmarshalDirective's).
func parseGlobal(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	d.Next() // option name
	if err := app.UnmarshalDirective(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "kavach", Value: caddyconfig.JSON(app, nil)}, nil
}

// parseKavach turns `kavach [<matcher>] { … }` into one matcher-less
// route whose handler guards the site's paths against dot segments, serves
// the RFC 9728 metadata of the resource at its well-known path, and
// enforces on the matcher's requests (the matcher is the handler's own,
// see Handler.MatchRaw).
func parseKavach(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	h.Next() // directive name; ExtractMatcherSet rewinds to it
	matcher, err := h.ExtractMatcherSet()
	if err != nil {
		return nil, err
	}
	handler := new(Handler)
	var resourceTok caddyfile.Token
	h.Next() // directive name
	if err := handler.UnmarshalDirective(h.Dispenser, func() { resourceTok = h.Token() }); err != nil {
		return nil, err
	}
	warnUnservedResource(h, resourceTok, "kavach", handler.Resource)
	handler.Metadata = true
	if matcher != nil {
		handler.MatchRaw = caddyhttp.RawMatcherSets{matcher}
	}
	route := caddyhttp.Route{HandlersRaw: []json.RawMessage{caddyconfig.JSONModuleObject(handler, "handler", "kavach", nil)}}
	return []httpcaddyfile.ConfigValue{{Class: "route", Value: route}}, nil
}

// parseKavachMetadata serves a resource's metadata at site level, for
// protection configured inside route or handle blocks whose matchers would
// hide the well-known path.
func parseKavachMetadata(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	meta := new(Metadata)
	if err := meta.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	h.Reset()
	h.Next()
	warnUnservedResource(h, h.Token(), "kavach_metadata", meta.Resource)
	route := caddyhttp.Route{
		MatcherSetsRaw: []caddy.ModuleMap{{"path": caddyconfig.JSON(caddyhttp.MatchPath{gateway.MetadataPath(meta.Resource)}, nil)}},
		HandlersRaw:    []json.RawMessage{caddyconfig.JSONModuleObject(meta, "handler", "kavach_metadata", nil)},
		Terminal:       true,
	}
	return []httpcaddyfile.ConfigValue{{Class: "route", Value: caddyhttp.Subroute{Routes: caddyhttp.RouteList{route}}}}, nil
}

// UnmarshalCaddyfile reads the block of the kavach directive (the matcher,
// if any, has been taken by the directive's parser); the grammar is
// gateway.RouteConfig.UnmarshalDirective's.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	return h.RouteConfig.UnmarshalDirective(d, nil)
}

// parseIssuer reads the kavach_issuer directive (the grammar is
// node.IssuerConfig.UnmarshalDirective's), checking its access token
// lifetime against the global max_token_lifetime.
func parseIssuer(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	maxLifetime := token.DefaultMaxLifetime
	if opt, ok := h.Option("kavach").(httpcaddyfile.App); ok {
		var app App
		if json.Unmarshal(opt.Value, &app) == nil && app.MaxTokenLifetime > 0 {
			maxLifetime = time.Duration(app.MaxTokenLifetime)
		}
	}
	ih := new(IssuerHandler)
	h.Next() // directive name
	if err := ih.UnmarshalDirective(h.Dispenser, maxLifetime); err != nil {
		return nil, err
	}
	return ih, nil
}

// UnmarshalCaddyfile implements caddyfile.Unmarshaler.
func (h *IssuerHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	return h.UnmarshalDirective(d, 0)
}

// UnmarshalCaddyfile reads
//
//	kavach_metadata <resource> {
//		authorization_servers <url...>
//		scopes_supported <scope...>
//	}
func (m *Metadata) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.NextArg() {
		return d.ArgErr()
	}
	m.Resource = d.Val()
	if err := gateway.ValidateResource(m.Resource); err != nil {
		return d.Errf("%v", err)
	}
	if err := noArgs(d); err != nil {
		return err
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "authorization_servers":
			m.AuthorizationServers = append(m.AuthorizationServers, d.RemainingArgs()...)
		case "scopes_supported":
			m.ScopesSupported = append(m.ScopesSupported, d.RemainingArgs()...)
		default:
			return d.Errf("unknown kavach_metadata option %q", d.Val())
		}
	}
	return nil
}

// UnmarshalCaddyfile reads `kavach_dot_segments` (no arguments).
func (m *MatchDotSegments) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	return noArgs(d)
}

// noArgs refuses an argument after the current token.
func noArgs(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// warnUnservedResource adds an adapter warning when no address of the site
// block a directive sits in can receive requests for resource
// (gateway.SiteServes): such a resource is most likely a typo. It is a
// warning, not an error: a proxy or load balancer in front may map the
// resource's origin to this site. at is the token the warning names.
func warnUnservedResource(h httpcaddyfile.Helper, at caddyfile.Token, directive, resource string) {
	if h.IsNamedRoute() || resource == "" {
		return // a named route is not in a site block
	}
	u, err := url.Parse(resource)
	if err != nil {
		return
	}
	keys, ok := siteKeys(h)
	if !ok || len(keys) == 0 {
		return
	}
	httpPort, httpsPort := caddyhttp.DefaultHTTPPort, caddyhttp.DefaultHTTPSPort
	if p, ok := h.Option("http_port").(int); ok {
		httpPort = p
	}
	if p, ok := h.Option("https_port").(int); ok {
		httpsPort = p
	}
	for _, k := range keys {
		if gateway.SiteServes(k, u, httpPort, httpsPort) {
			return
		}
	}
	addWarning(h, caddyconfig.Warning{
		File: at.File, Line: at.Line, Directive: directive,
		Message: fmt.Sprintf("resource %s is not served by this site (%s): clients send its tokens and fetch its metadata at that scheme, host and port, "+
			"so it is right only when a proxy in front maps it to this site", resource, strings.Join(keys, ", ")),
	})
}

// siteKeys and addWarning reach two parts of an httpcaddyfile.Helper that
// Caddy keeps unexported: the keys (addresses) of the site block being
// parsed, and the adapter's warnings, which `kavach adapt`, `validate` and
// `run` print with the file and line. Where a Caddy version lays Helper out
// otherwise, the site check is skipped rather than wrong;
// TestResourceSiteWarning pins the layout of the version this module
// builds with.
func siteKeys(h httpcaddyfile.Helper) ([]string, bool) {
	block := reflect.ValueOf(h).FieldByName("parentBlock")
	if !block.IsValid() || block.Type() != reflect.TypeFor[caddyfile.ServerBlock]() {
		return nil, false
	}
	keys := block.FieldByName("Keys")
	out := make([]string, 0, keys.Len())
	for i := range keys.Len() {
		out = append(out, keys.Index(i).FieldByName("Text").String())
	}
	return out, true
}

func addWarning(h httpcaddyfile.Helper, w caddyconfig.Warning) {
	v := reflect.ValueOf(h).FieldByName("warnings")
	if !v.IsValid() || v.Type() != reflect.TypeFor[*[]caddyconfig.Warning]() || v.IsNil() {
		return
	}
	// The field is unexported, so reflect will not hand out the pointer as
	// a value; its address is the adapter's own slice.
	ws := (*[]caddyconfig.Warning)(v.UnsafePointer())
	*ws = append(*ws, w)
}
