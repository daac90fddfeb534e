package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// ArgFacets are the words AddArgLine takes after an argument's name.
const ArgFacets = "path, host, url, scheme, port, enum, range, maxlen or optional"

// AddArgLine adds one argument-rule line to ta, the rules of tool: the
// text form shared by the Caddyfile (`arg …` in a tool's block) and the
// CLI (`--arg "<tool> …"`). fields are
//
//	<name> path <pattern…>    # or <name> <pattern…> when the first starts with '/'
//	<name> host <host…>       # a host name/address, or a URL whose host counts
//	<name> url <host…>        # an absolute URL whose host is one of these
//	<name> scheme <scheme…>   # the URL schemes allowed (default http https)
//	<name> port <port…>       # explicit URL ports allowed besides the default
//	<name> enum <value…>
//	<name> range <min> <max>  # a JSON number, integer bounds, inclusive
//	<name> maxlen <n>         # a string of at most n characters
//	<name> optional           # the argument may be missing
//
// Lines for the same argument add facets to its rule; a facet given twice
// is an error. A pattern ending in "/**" is written "/*" (both mean
// everything below the directory). The facet's syntax, and facets that
// cannot combine, are errors here; a rule that is still incomplete (a
// scheme with no hosts yet) is not, so the caller validates the whole
// when its lines are read.
func AddArgLine(ta ToolArgs, tool string, fields []string) error {
	if len(fields) < 2 {
		return fmt.Errorf("arg <name> <facet> <value…>: facets are %s", ArgFacets)
	}
	name, facet, vals := fields[0], fields[1], fields[2:]
	if strings.HasPrefix(facet, "/") {
		facet, vals = "path", fields[1:]
	}
	r := ta[name]
	check := func(set bool) error {
		if set {
			return fmt.Errorf("arg %s: %s is given twice (one line lists every value)", name, facet)
		}
		if len(vals) == 0 {
			return fmt.Errorf("arg %s %s needs at least one value", name, facet)
		}
		return nil
	}
	var single ArgRule // the facet alone, for its syntax
	var err error
	switch facet {
	case "path":
		if err = check(r.Paths != nil); err == nil {
			for _, v := range vals {
				if p, ok := strings.CutSuffix(v, "/**"); ok {
					v = p + "/*"
				}
				r.Paths = append(r.Paths, v)
			}
			single.Paths = r.Paths
		}
	case "host", "url":
		if err = check(r.Hosts != nil); err == nil {
			r.Hosts, r.URL = vals, facet == "url"
			single.Hosts = r.Hosts
		}
	case "scheme":
		if err = check(r.Schemes != nil); err == nil {
			r.Schemes = vals
			single = ArgRule{Hosts: StringList{"x"}, Schemes: vals}
		}
	case "port":
		if err = check(r.Ports != nil); err == nil {
			for _, v := range vals {
				n, perr := strconv.Atoi(v)
				if perr != nil || n < 1 || n > 65535 {
					return fmt.Errorf("arg %s port: %q is not a port (1 to 65535)", name, v)
				}
				r.Ports = append(r.Ports, n)
			}
			single = ArgRule{Hosts: StringList{"x"}, Ports: r.Ports}
		}
	case "enum":
		if err = check(r.Enum != nil); err == nil {
			r.Enum = vals
			single.Enum = vals
		}
	case "range":
		if err = check(r.Range != nil); err == nil {
			if len(vals) != 2 {
				return fmt.Errorf("arg %s range <min> <max>: two integers", name)
			}
			lo, err1 := strconv.ParseInt(vals[0], 10, 64)
			hi, err2 := strconv.ParseInt(vals[1], 10, 64)
			if err1 != nil || err2 != nil {
				return fmt.Errorf("arg %s range %s %s: the bounds must be integers", name, vals[0], vals[1])
			}
			r.Range = &Range{Min: lo, Max: hi}
			single.Range = r.Range
		}
	case "maxlen":
		if err = check(r.MaxLen != 0); err == nil {
			n, perr := strconv.ParseInt(vals[0], 10, 64)
			if len(vals) != 1 || perr != nil || n < 1 {
				return fmt.Errorf("arg %s maxlen <n>: one positive number of characters", name)
			}
			r.MaxLen = n
			single.MaxLen = n
		}
	case "optional":
		if r.Optional || len(vals) != 0 {
			return fmt.Errorf("arg %s optional takes no value and is given once", name)
		}
		r.Optional = true
	default:
		return fmt.Errorf("arg %s %s: unknown facet %q (want %s; a path pattern starts with '/')", name, facet, facet, ArgFacets)
	}
	if err != nil {
		return err
	}
	if facet != "optional" {
		if fe := (Args{tool: {name: single}}).validate(); fe != nil {
			return fe
		}
	}
	if r.Paths != nil || r.Hosts != nil || r.Enum != nil || r.Range != nil || r.MaxLen != 0 {
		// Facets that cannot combine are refused at the line that adds
		// the second.
		if fe := (Args{tool: {name: r}}).validate(); fe != nil {
			return fe
		}
	}
	ta[name] = r
	return nil
}
