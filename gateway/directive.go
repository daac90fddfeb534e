package gateway

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/kavachgate/kavach/internal/directive"
	"github.com/kavachgate/kavach/mcp"
	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/ratelimit"
)

// kavachForms are the two forms of the directive's scope line.
const kavachForms = "`scope <scope…>` (every request) or `scope <METHOD|*> <path> <scope…>`"

// mcpPatterns are the MCP rule lines and what their pattern may be.
var mcpPatterns = map[string]string{"tool": "name|*", "prompt": "name|*", "resource_uri": "uri|prefix*|*"}

// UnmarshalDirective reads the lines of the kavach directive's block (the
// reader is on the directive's name, its matcher taken):
//
//	kavach [<matcher>] {
//		resource <url>                        # required: the RFC 8707 audience
//		scope <scope…>                        # required of every request
//		scope <METHOD|*> <path> <scope…>      # required of matching requests
//		audit required                        # decision records durable first
//		allow_path_params                     # let `;` path parameters through (see AllowPathParams)
//		rate <n>/<s|m|h> per <agent|root|user> [burst <n>] [tool <name>]  # a token bucket; several lines: all apply
//		rate_limit_fail open|closed           # Redis not answering in time (default closed: 503)
//		report_only                           # record policy denials (enforced: false), forward them
//
//		mcp                                   # an MCP route (DESIGN.md §4.1); with it:
//		tool <name|*> <scope…> [{             # tools/call
//			arg <name> <facet> <value…>   # argument rules (parseToolArgs)
//		}]
//		resource_uri <uri|prefix*|*> <scope…> # resources/read, resources/subscribe
//		prompt <name|*> <scope…>              # prompts/get
//		allowed_origins <origin…>             # besides the resource's own
//		audit_arguments [redact <name…>]      # record call arguments, these members redacted
//	}
//
// The lines may come in any order. A route is an MCP route by its `mcp`
// line or by a tool, resource_uri or prompt rule (they are about MCP
// messages). allowed_origins and audit_arguments alone make it one only
// when its resource is an MCP endpoint by the transport's convention (the
// resource URL's path ends in /mcp), and are an error on any other route,
// never a silent switch (in JSON, a route is an MCP route by the presence
// of the "mcp" object).
//
// onResource, when not nil, is called while the reader is on the resource
// line (the glue notes its place for a warning about it).
func (cfg *RouteConfig) UnmarshalDirective(d directive.Reader, onResource func()) error {
	if err := directive.NoArgs(d); err != nil {
		return err
	}
	var (
		isMCP   bool
		mcpLine bool
		mcpErr  error // about the first MCP-only line, returned when `mcp` is missing
		toolErr error // about the first `rate … tool` line, the same
		rules   mcp.Rules
		m       MCPConfig
		err     error
	)
	for d.NextBlock(0) {
		opt := d.Val()
		switch opt {
		case "tool", "prompt", "resource_uri", "allowed_origins", "audit_arguments":
			// A bare rule line does not make a route an MCP route: an
			// operator who forgot `mcp` must hear so rather than find the
			// route inspecting every POST (or, before, none). A tool rule
			// with argument rules does (below): those exist only in
			// tools/call bodies, so the block says what the route is.
			if mcpErr == nil {
				mcpErr = d.Errf("%s is an MCP rule, and this route has no `mcp` line: add `mcp` to the block to make it an MCP route (then every POST is inspected, DESIGN.md §4.1); a route whose resource ends in /mcp, or with a tool rule carrying `arg` rules, is one without it", opt)
			}
		}
		switch opt {
		case "resource":
			args := d.RemainingArgs()
			switch {
			case len(args) == 0:
				return d.Err("resource <url>: the URL is missing (the RFC 8707 resource tokens for this route must name in aud)")
			case len(args) > 1:
				return d.Errf("resource takes one URL, the RFC 8707 audience; an MCP resource rule is `resource_uri %s <scope…>`", args[0])
			case cfg.Resource != "":
				return d.Errf("resource is given twice (%s, then %s): a route has one audience", cfg.Resource, args[0])
			}
			cfg.Resource = args[0]
			if onResource != nil {
				onResource()
			}
			if err := ValidateResource(cfg.Resource); err != nil {
				return d.Errf("%v", err)
			}
		case "tool", "prompt", "resource_uri":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.Errf("%s <%s> <scope…>: a rule needs a pattern and at least one scope", opt, mcpPatterns[opt])
			}
			list := map[string]*[]mcp.Rule{"tool": &rules.Tools, "prompt": &rules.Prompts, "resource_uri": &rules.Resources}[opt]
			*list = append(*list, mcp.Rule{Pattern: args[0], Scopes: args[1:]})
			// Compiled after each line, so that an error (a duplicate
			// among them) names the line that caused it.
			if err := rules.Compile(); err != nil {
				msg := err.Error()
				if rest, ok := strings.CutPrefix(msg, "resource "); ok {
					msg = "resource_uri " + rest // package mcp names the kind, not the Caddyfile line
				}
				return d.Err(msg)
			}
			if opt == "tool" {
				ta, err := parseToolArgs(d, args[0])
				if err != nil {
					return err
				}
				if ta != nil {
					isMCP = true
					if m.Args == nil {
						m.Args = policy.Args{}
					}
					m.Args[args[0]] = ta
				}
			} else if d.NextBlock(d.Nesting()) {
				return d.Errf("%s takes no block: only a tool has argument rules", opt)
			}
		case "mcp":
			if d.NextArg() || d.NextBlock(d.Nesting()) {
				return d.Err("mcp takes no arguments and no block: the MCP lines (tool, resource_uri, prompt, allowed_origins, audit_arguments) go beside it")
			}
			if mcpLine {
				return d.Err("mcp is given twice")
			}
			mcpLine, isMCP = true, true
		case "allowed_origins":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Err("allowed_origins <origin…>: name at least one scheme://host[:port]")
			}
			for _, o := range args {
				if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Count(o, "/") != 2 {
					return d.Errf("allowed origin %q must be http(s)://host[:port], without a path", o)
				}
			}
			m.AllowedOrigins = append(m.AllowedOrigins, args...)
		case "audit_arguments":
			if m.AuditArguments != nil {
				return d.Err("audit_arguments is given twice: one line names every member to redact")
			}
			if m.AuditArguments, err = parseAuditArguments(d); err != nil {
				return err
			}
		case "allow_path_params":
			if d.NextArg() {
				return d.Err("allow_path_params takes no arguments")
			}
			cfg.AllowPathParams = true
		case "audit":
			if !d.NextArg() || d.Val() != "required" || d.NextArg() {
				return d.Err("kavach: `audit required` is the route's only audit option")
			}
			cfg.AuditRequired = true
		case "scope":
			if err := parseScope(d, cfg); err != nil {
				return err
			}
		case "rate":
			if err := parseRate(d, cfg); err != nil {
				return err
			}
			if c := cfg.RateLimits[len(cfg.RateLimits)-1]; c.Tool != "" && toolErr == nil {
				toolErr = d.Errf("rate %s per %s tool %s: a limit on a tool needs an MCP route (an `mcp` line, or a resource ending in /mcp)", c.Rate, c.Per, c.Tool)
			}
		case "rate_limit_fail":
			args := d.RemainingArgs()
			if len(args) != 1 || (args[0] != "open" && args[0] != "closed") {
				return d.Err("rate_limit_fail open|closed: what a rate-limited request gets when Redis does not answer in time (closed: 503, the default)")
			}
			if cfg.RateLimitFail != "" {
				return d.Err("rate_limit_fail is given twice")
			}
			cfg.RateLimitFail = args[0]
		case "report_only":
			if d.NextArg() {
				return d.Err("report_only takes no arguments")
			}
			cfg.ReportOnly = true
		default:
			return d.Errf("unknown kavach option %q (want resource, scope, audit, allow_path_params, rate, rate_limit_fail, report_only, mcp, tool, resource_uri, prompt, allowed_origins or audit_arguments)", opt)
		}
	}
	if mcpErr != nil && !isMCP {
		if !mcpEndpoint(cfg.Resource) {
			return mcpErr
		}
		isMCP = true
	}
	if isMCP {
		m.Tools, m.Resources, m.Prompts = rules.Tools, rules.Resources, rules.Prompts
		cfg.MCP = &m
	}
	if toolErr != nil && !isMCP {
		return toolErr
	}
	if cfg.Resource == "" {
		return d.Err("kavach: resource is required (the URL tokens for this route are issued for)")
	}
	return nil
}

// rateForm is the `rate` line's syntax, for errors.
const rateForm = "`rate <n>/<s|m|h> per <agent|root|user> [burst <n>] [tool <name>]`"

// parseRate reads the rest of a `rate` line and checks it at once, so an
// error names its line.
func parseRate(d directive.Reader, cfg *RouteConfig) error {
	args := d.RemainingArgs()
	if len(args) < 3 || args[1] != "per" {
		return d.Errf("rate: want %s", rateForm)
	}
	c := RateLimitConfig{Rate: args[0], Per: args[2]}
	for rest := args[3:]; len(rest) > 0; rest = rest[2:] {
		switch {
		case len(rest) < 2 || (rest[0] != "burst" && rest[0] != "tool"):
			return d.Errf("rate: want %s", rateForm)
		case rest[0] == "burst" && c.Burst == 0:
			b, err := strconv.ParseInt(rest[1], 10, 64)
			if err != nil || b < 1 {
				return d.Errf("rate %s: burst %q is not a whole number from 1", args[0], rest[1])
			}
			c.Burst = b
		case rest[0] == "tool" && c.Tool == "":
			c.Tool = rest[1]
		default:
			return d.Errf("rate %s: %s is given twice", args[0], rest[0])
		}
	}
	l, err := c.Compile("")
	if err != nil {
		return d.Errf("%v (%s)", err, rateForm)
	}
	for _, o := range cfg.RateLimits {
		if prev, _ := o.Compile(""); prev != nil && prev.String() == l.String() {
			return d.Errf("rate %s is given twice", l)
		}
	}
	if len(cfg.RateLimits) == ratelimit.MaxLimitsPerRoute {
		return d.Errf("rate: at most %d limits on one route", ratelimit.MaxLimitsPerRoute)
	}
	cfg.RateLimits = append(cfg.RateLimits, c)
	return nil
}

// parseAuditArguments reads the rest of `audit_arguments [redact <name…>]`.
func parseAuditArguments(d directive.Reader) (*AuditArguments, error) {
	blockErr := d.Err("audit_arguments takes no block: `audit_arguments [redact <name…>]` on one line")
	args := d.RemainingArgs()
	if d.NextBlock(d.Nesting()) {
		return nil, blockErr
	}
	a := new(AuditArguments)
	switch {
	case len(args) == 0:
		return a, nil
	case args[0] != "redact":
		return nil, d.Errf("audit_arguments records the arguments of MCP calls, with `redact <name…>` naming members never recorded; found %q", args[0])
	case len(args) == 1:
		return nil, d.Err("audit_arguments redact <name…>: name at least one member to redact")
	}
	a.Redact = args[1:]
	if err := a.Validate(); err != nil {
		return nil, d.Errf("audit_arguments redact: %v", err)
	}
	return a, nil
}

// parseScope reads `scope <scope…>` or `scope <METHOD|*> <path> <scope…>`.
// A rule is recognised by its head (a registered method, "*", or a word
// of letters followed by a path), so that a typo in either part is an
// error about that part rather than a scope that names a method.
func parseScope(d directive.Reader, cfg *RouteConfig) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.Errf("scope needs at least one scope: %s", kavachForms)
	}
	if slices.Contains(args, "") {
		return d.Errf("scope has an empty argument (\"\"): %s", kavachForms)
	}
	head := args[0]
	isPath := func(s string) bool { return s[0] == '/' || s == "*" }
	if IsRuleMethod(head) || (len(args) >= 2 && isPath(args[1]) && methodWord(head)) {
		switch {
		case len(args) == 1 && head == "*":
			return d.Errf("scope \"*\": a rule needs a path and at least one scope: `scope * <path> <scope…>`")
		case len(args) == 1:
			return d.Errf("%q is an HTTP method, not a scope: a rule is `scope %s <path> <scope…>`", head, head)
		case !isPath(args[1]) && !strings.ContainsAny(args[1], "/*."):
			return d.Errf("scope %s %s: the method has no path: a rule is `scope %s <path> <scope…>` (path exact, or ending in *)", head, args[1], head)
		}
		rule := Rule{Method: head, Path: args[1], Scopes: args[2:]}
		if err := rule.Validate(); err != nil {
			return d.Errf("%v", err)
		}
		cfg.Rules = append(cfg.Rules, rule)
		return nil
	}
	for _, a := range args {
		if a[0] == '/' {
			return d.Errf("%q looks like a path: a rule is `scope <METHOD> <path> <scope…>` with an upper-case method", a)
		}
		if a != "*" && IsRuleMethod(a) {
			return d.Errf("%q is an HTTP method, not a scope: a rule is `scope %s <path> <scope…>`, the method first", a, a)
		}
	}
	if err := ValidateScopes(args); err != nil {
		return d.Errf("%v", err)
	}
	cfg.Scopes = append(cfg.Scopes, args...)
	return nil
}

// methodWord reports whether s is spelled like an HTTP method (letters and
// '-'), whatever its case: followed by a path, it was meant as one.
func methodWord(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '-') {
			return false
		}
	}
	return s != ""
}

// mcpEndpoint reports whether resource names an MCP endpoint by the
// streamable HTTP transport's convention: a path ending in /mcp.
func mcpEndpoint(resource string) bool {
	u, err := url.Parse(resource)
	return err == nil && (u.Path == "/mcp" || strings.HasSuffix(u.Path, "/mcp"))
}

// parseToolArgs reads the block of `tool <name> <scope…> { … }`, if any:
//
//	arg <name> <facet> <value…>
//
// with the facets of policy.AddArgLine. Lines for the same argument add
// facets to its rule; a rule that is incomplete at the end of the block
// (`arg url scheme https` without hosts) is an error naming the block's
// last line. Errors name the line.
func parseToolArgs(d directive.Reader, tool string) (policy.ToolArgs, error) {
	var out policy.ToolArgs
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if d.Val() != "arg" {
			return nil, d.Errf("tool %s: unknown line %q in its block (want `arg <name> <facet> <value…>`)", tool, d.Val())
		}
		if tool == "*" {
			return nil, d.Err("tool *: argument rules need a tool name (`tool <name> <scope…> { arg … }`)")
		}
		if out == nil {
			out = policy.ToolArgs{}
		}
		if err := policy.AddArgLine(out, tool, d.RemainingArgs()); err != nil {
			return nil, d.Errf("%v", err)
		}
	}
	if out != nil {
		if err := (&policy.Constraints{Args: policy.Args{tool: out}}).Validate(); err != nil {
			return nil, d.Errf("%v", err)
		}
	}
	return out, nil
}
