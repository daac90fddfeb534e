package main

import (
	"net/http"
	"strings"
)

// Caller is who the Kavach gateway says is calling: it removes any
// client-sent Kavach-* header and adds these after verifying the token
// (README.md, "What the gateway checks"). The upstream trusts them because
// only the gateway can reach it (this server listens on loopback only).
type Caller struct {
	Subject string   `json:"subject,omitempty" jsonschema:"the user the chain acts for (Kavach-Subject)"`
	Actor   string   `json:"actor,omitempty" jsonschema:"the agent making the call (Kavach-Actor)"`
	Chain   []string `json:"chain,omitempty" jsonschema:"the delegation chain, root first (Kavach-Chain)"`
	Scope   string   `json:"scope,omitempty" jsonschema:"the token's scopes (Kavach-Scope)"`
	Summary string   `json:"summary" jsonschema:"who called, in words"`
}

// callerFrom reads the gateway's identity headers.
func callerFrom(h http.Header) Caller {
	c := Caller{
		Subject: h.Get("Kavach-Subject"),
		Actor:   h.Get("Kavach-Actor"),
		Scope:   h.Get("Kavach-Scope"),
	}
	if v := h.Get("Kavach-Chain"); v != "" {
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				c.Chain = append(c.Chain, a)
			}
		}
	}
	c.Summary = c.describe()
	return c
}

// describe says "agt_R, child of agt_O, acting for usr_alice".
func (c Caller) describe() string {
	if c.Subject == "" && c.Actor == "" && len(c.Chain) == 0 {
		return "anonymous: no Kavach identity headers (called directly, not through the gateway)"
	}
	actor := c.Actor
	prior := c.Chain
	if n := len(prior); n > 0 && (actor == "" || prior[n-1] == actor) {
		actor, prior = prior[n-1], prior[:n-1]
	}
	var b strings.Builder
	if actor == "" {
		b.WriteString("no agent")
	} else {
		b.WriteString(actor)
	}
	for i := len(prior) - 1; i >= 0; i-- {
		b.WriteString(", child of ")
		b.WriteString(prior[i])
	}
	if c.Subject != "" {
		b.WriteString(", acting for ")
		b.WriteString(c.Subject)
	}
	return b.String()
}
