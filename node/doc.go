// Package node is a Kavach gateway node without Caddy: what every Kavach
// handler of a configuration shares and what happens when a gateway
// starts. A Runtime owns the trusted key sets and their watching (files,
// issuers trusted by URL, external issuers, the issuers running in this
// process), one revocation set behind revocation.Service (memory, or
// Redis for a cluster) and the loop that re-seeds it, the MCP session
// store, the audit writer, the issuers it runs and the admin listener
// (one error shape, one constant-time bearer check, every issuer reachable
// with ?issuer=). One Redis client per URL serves the revocation set, the
// session store, the audit witness and the issuers' assertion replay
// store. A Shared keeps these parts across configuration reloads.
//
// Caddy's glue (package caddymodule) parses the configuration, fills
// Options from its context and calls the lifecycle methods from its own
// hooks:
//
//	rt, err := node.New(cfg, node.Options{Logger: log, DataDir: dir, Shared: shared})
//	iss, err := rt.AddIssuer(issuerCfg, nil) // each kavach_issuer
//	err = rt.Start()                         // keys, revocation, trail, issuers, admin
//	…
//	rt.Ready(r.Context()) // at the start of every request: free once ready
//	rt.Gateway().Admit(&route, gateway.Request{HTTP: r}, &admission)
//	…
//	rt.Stop()
//	rt.Release()
package node
