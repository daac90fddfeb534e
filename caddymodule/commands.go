package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/cli"
)

// The kavach subcommands (package cli) are registered here, in an
// imported package, so xcaddy builds have them. The glue gives them
// Caddy's data directory and reads a config's audit option for
// 'audit verify --config'.
func init() {
	env := &cli.Env{DataDir: caddy.AppDataDir(), ConfigTrail: configTrail}
	for _, c := range cli.Commands(env) {
		caddycmd.RegisterCommand(caddycmd.Command{
			Name: c.Name, Usage: c.Usage, Short: c.Short, Long: c.Long,
			CobraFunc: func(cmd *cobra.Command) {
				c.Setup(cmd)
				exitStatus(cmd)
			},
		})
	}
}

// exitStatus makes a cli.ExitError the process's exit status, the way
// caddycmd.Main exits with a command's status.
func exitStatus(cmd *cobra.Command) {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			err := run(cmd, args)
			if ee, ok := errors.AsType[*cli.ExitError](err); ok {
				cmd.SilenceErrors = true
				return caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) { return ee.Code, nil })(cmd, args)
			}
			return err
		}
	}
	for _, sub := range cmd.Commands() {
		exitStatus(sub)
	}
}

// configTrail reads the audit option of a config (a Caddyfile, or JSON
// when the name ends in .json) as the gateway would resolve it: the trail
// and, when it names one, the key's .pub. Relative paths are taken from
// the working directory, as the gateway does.
func configTrail(file string) (cli.Trail, error) {
	body, err := os.ReadFile(file)
	if err != nil {
		return cli.Trail{}, fmt.Errorf("--config: %w", err)
	}
	if !strings.HasSuffix(file, ".json") {
		adapter := caddyconfig.GetAdapter("caddyfile")
		if adapter == nil {
			return cli.Trail{}, errors.New("--config: no caddyfile adapter in this build")
		}
		if body, _, err = adapter.Adapt(body, map[string]any{"filename": file}); err != nil {
			return cli.Trail{}, fmt.Errorf("--config %s: %w", file, err)
		}
	}
	var cfg struct {
		Apps struct {
			Kavach *struct {
				Audit *AuditConfig `json:"audit"`
			} `json:"kavach"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(body, &cfg); err != nil {
		return cli.Trail{}, fmt.Errorf("--config %s: %w", file, err)
	}
	if cfg.Apps.Kavach == nil {
		return cli.Trail{}, fmt.Errorf("--config %s: no kavach app (global option kavach { … })", file)
	}
	t, err := cfg.Apps.Kavach.Audit.trail()
	if err != nil {
		return t, fmt.Errorf("--config %s: %w", file, err)
	}
	return t, nil
}

// trail is where c writes: files or one database URL, and the key's .pub.
func (c *AuditConfig) trail() (cli.Trail, error) {
	defaultDir := filepath.Join(caddy.AppDataDir(), "kavach", "audit")
	if c == nil {
		return cli.Trail{Paths: []string{defaultDir}}, nil
	}
	if err := c.validate(); err != nil {
		return cli.Trail{}, err
	}
	var t cli.Trail
	switch c.Sink {
	case auditSinkPostgres:
		pg, keyTrail, err := c.resolvePostgres()
		if err != nil {
			return t, err
		}
		if keyTrail == "" {
			keyTrail = filepath.Join(caddy.AppDataDir(), "kavach", "audit-postgres")
		}
		_, t.Pub = audit.KeyPaths(keyTrail)
		t.Paths = []string{pg.url}
	case auditSinkFile:
		if c.Path == "" {
			return cli.Trail{Paths: []string{defaultDir}}, nil
		}
		path := caddy.NewReplacer().ReplaceAll(c.Path, "")
		if path == "" {
			return t, fmt.Errorf("audit file %s is empty", c.Path)
		}
		t.Paths = []string{path}
		keyTrail, err := c.resolveKey()
		if err != nil {
			return t, err
		}
		if keyTrail != "" {
			_, t.Pub = audit.KeyPaths(keyTrail)
		}
	default:
		return t, fmt.Errorf("the trail goes to %s: nothing here to verify", c.Sink)
	}
	return t, nil
}
