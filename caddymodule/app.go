package caddymodule

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"

	"github.com/kavachgate/kavach/node"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the `kavach` app: the gateway node every Kavach handler of a
// config shares (package node: trusted keys, the verified-token cache,
// the revocation set, the audit trail, the issuers and the Kavach admin
// listener). The Caddyfile's global `kavach { … }` option configures it;
// the fields are node.Config's.
type App struct {
	node.Config

	rt     *node.Runtime
	shared bool // holds the nodes pool entry
	logger *slog.Logger
}

// nodes holds, in one entry, the node.Shared of the process: the parts
// its runtimes share across config reloads (revocation set, MCP session
// store, Redis clients, audit writers, issuer stores).
var nodes = caddy.NewUsagePool()

const nodesKey = "kavach.node"

type sharedParts struct{ *node.Shared }

func (s sharedParts) Destruct() error { return s.Close() }

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "kavach",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision builds the node: the key ring from local files, the verifier
// and cache, the shared revocation set and session store. Nothing is
// fetched, opened or started here: Provision also runs under
// `kavach validate`.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Slogger()
	val, _, err := nodes.LoadOrNew(nodesKey, func() (caddy.Destructor, error) {
		return sharedParts{node.NewShared()}, nil
	})
	if err != nil {
		return err
	}
	a.shared = true
	repl := caddy.NewReplacer()
	a.rt, err = node.New(a.Config, node.Options{
		Logger:  a.logger,
		Resolve: func(s string) string { return repl.ReplaceAll(s, "") },
		DataDir: kavachDataDir(),
		Shared:  val.(sharedParts).Shared,
		Listen:  listenAdmin,
		Metrics: decisionMetrics{},
	})
	if err != nil {
		return err
	}
	registerMetrics(ctx, a.rt)
	return nil
}

// listenAdmin opens the admin listener through Caddy, which shares the
// socket across config reloads, so a reload does not drop it.
func listenAdmin(addr string) (net.Listener, error) {
	na, err := caddy.ParseNetworkAddress(addr)
	if err != nil {
		return nil, err
	}
	ln, err := na.Listen(context.Background(), 0, net.ListenConfig{})
	if err != nil {
		return nil, err
	}
	return ln.(net.Listener), nil
}

// Validate checks the configuration without side effects.
func (a *App) Validate() error {
	if err := a.Config.Validate(); err != nil {
		return err
	}
	if a.Admin != "" {
		// What listenAdmin listens with, so that validate refuses what run would.
		if na, err := caddy.ParseNetworkAddress(a.Admin); err != nil || na.PortRangeSize() != 1 {
			return fmt.Errorf("admin %s: want one loopback host:port", a.Admin)
		}
	}
	return nil
}

// Start starts the node.
func (a *App) Start() error { return a.rt.Start() }

// Stop stops the node.
func (a *App) Stop() error { return a.rt.Stop() }

// Cleanup releases the node's shared parts (the last config holding the
// audit writer closes the trail: flush and final checkpoint).
func (a *App) Cleanup() error {
	var err error
	if a.rt != nil {
		if err = a.rt.Release(); err != nil {
			a.logger.Error("releasing the kavach node", "error", err)
		}
	}
	if a.shared {
		_, _ = nodes.Delete(nodesKey)
	}
	return err
}

// kavachDataDir is the node's directory in Caddy's data directory.
func kavachDataDir() string { return filepath.Join(caddy.AppDataDir(), "kavach") }

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
