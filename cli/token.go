package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kavachgate/kavach/policy"
	"github.com/kavachgate/kavach/token"
)

func tokenCommand() Command {
	return Command{
		Name:  "token",
		Usage: "mint|inspect",
		Short: "Mints or inspects access tokens offline",
		Long: `
Offline token tools for operators and tests. In a deployment only the
issuer's /oauth/token endpoint mints tokens.

  token mint --key key.jwk --iss <issuer> --aud <resource> --sub usr_…
             --agent agt_… [--agent agt_…] [--chain dlg_… …]
             --scope "a:b c:d" [--ttl 5m] [--constraint name=value …]
      Prints a signed at+jwt access token, alone, on stdout. Without
      --chain one dlg_ id is made per agent; act is built from the
      agents, the last one being the current actor.
      Constraints: hosts=a.example,*.corp.example  cidrs=10.0.0.0/8
      methods=GET,POST  paths=/mcp,/api/*  max_body=5242880
      audit=required  rate=60/m (per agent, on every route)
      args=<kvc.cnst.args JSON>
      Argument rules, one per --arg: "read_file path /repo/*",
      "fetch url host *.corp.example", "deploy env enum dev staging",
      "pay amount range 0 100", "post body maxlen 2000" (README:
      Argument rules).

  token inspect <token|->
      Decodes a token's header and claims WITHOUT verifying them.
`,
		Setup: func(cmd *cobra.Command) {
			cmd.AddCommand(tokenMintCommand(), tokenInspectCommand())
		},
	}
}

type mintFlags struct {
	key, iss, sub, scope, client, jti string
	aud, agents, chain, constraints   []string
	args                              []string
	ttl                               time.Duration
}

func tokenMintCommand() *cobra.Command {
	var f mintFlags
	c := &cobra.Command{
		Use:   "mint --key <file> --iss <issuer> --aud <resource> --sub <user> --agent <id> --scope <scopes>",
		Short: "Mints a signed access token with a local key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := readSigningKey(f.key)
			if err != nil {
				return err
			}
			claims, err := f.claims(time.Now())
			if err != nil {
				return err
			}
			tok, err := token.Mint(k, claims)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), tok)
			return err
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.key, "key", "", "private signing key file (from 'keys generate')")
	fl.StringVar(&f.iss, "iss", "", "issuer identifier (iss)")
	fl.StringArrayVar(&f.aud, "aud", nil, "audience: the protected resource URL (repeatable)")
	fl.StringVar(&f.sub, "sub", "", "the user the chain acts for (usr_…)")
	fl.StringArrayVar(&f.agents, "agent", nil, "agent of the delegation chain, root first (repeatable)")
	fl.StringArrayVar(&f.chain, "chain", nil, "grant id per agent, root first (repeatable; default: new dlg_ ids)")
	fl.StringVar(&f.scope, "scope", "", "space-separated scopes")
	fl.StringVar(&f.client, "client", "", "client_id (default: the current agent)")
	fl.StringVar(&f.jti, "jti", "", "token id (default: a new tok_ id)")
	fl.DurationVar(&f.ttl, "ttl", token.DefaultTTL, "lifetime")
	fl.StringArrayVar(&f.constraints, "constraint", nil, "constraint name=value (repeatable)")
	fl.StringArrayVar(&f.args, "arg", nil, `argument rule "<tool> <argument> <facet> <value…>" (repeatable), e.g. "read_file path /repo/*"`)
	return c
}

// claims turns the flags into token claims; every invariant the verifier
// checks is then checked again by token.Mint.
func (f *mintFlags) claims(at time.Time) (*token.Claims, error) {
	switch {
	case f.key == "":
		return nil, errors.New("--key is required")
	case f.iss == "":
		return nil, errors.New("--iss is required")
	case len(f.aud) == 0:
		return nil, errors.New("--aud is required")
	case f.sub == "":
		return nil, errors.New("--sub is required")
	case len(f.agents) == 0:
		return nil, errors.New("at least one --agent is required")
	case f.ttl <= 0:
		return nil, errors.New("--ttl must be positive")
	}
	chain := f.chain
	if len(chain) == 0 {
		for range f.agents {
			chain = append(chain, token.NewID(token.PrefixGrant))
		}
	} else if len(chain) != len(f.agents) {
		return nil, fmt.Errorf("%d --chain ids for %d --agent ids: give one grant per agent", len(chain), len(f.agents))
	}
	var cnst policy.Constraints
	for _, kv := range f.constraints {
		if err := setConstraint(&cnst, kv); err != nil {
			return nil, err
		}
	}
	if err := addArgLines(&cnst, f.args); err != nil {
		return nil, err
	}
	if err := cnst.Validate(); err != nil {
		return nil, err
	}
	c := &token.Claims{
		Issuer:   f.iss,
		Subject:  f.sub,
		Actor:    token.ActorFor(f.agents),
		ClientID: f.client,
		Audience: f.aud,
		Scope:    f.scope,
		ID:       f.jti,
		IssuedAt: at.Unix(),
		Expiry:   at.Add(f.ttl).Unix(),
		Kavach:   &token.Kavach{Version: token.KavachVersion, Chain: chain, Agents: f.agents},
	}
	if c.ClientID == "" {
		c.ClientID = f.agents[len(f.agents)-1]
	}
	if c.ID == "" {
		c.ID = token.NewID(token.PrefixToken)
	}
	if !cnst.IsZero() {
		c.Kavach.Constraints = &cnst
	}
	return c, nil
}

// setConstraint applies one name=value flag. Lists are comma-separated.
func setConstraint(c *policy.Constraints, kv string) error {
	name, value, ok := strings.Cut(kv, "=")
	if !ok || value == "" {
		return fmt.Errorf("constraint %q: want name=value", kv)
	}
	list := strings.Split(value, ",")
	switch name {
	case "hosts":
		c.Hosts = append(c.Hosts, list...)
	case "methods":
		c.Methods = append(c.Methods, list...)
	case "paths":
		c.Paths = append(c.Paths, list...)
	case "cidrs":
		var l policy.PrefixList
		if err := l.UnmarshalJSON(jsonStrings(list)); err != nil {
			return fmt.Errorf("constraint cidrs: %w", err)
		}
		c.CIDRs = append(c.CIDRs, l...)
	case "max_body":
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("constraint max_body: %q is not a positive number of bytes", value)
		}
		c.MaxBody = policy.ByteLimit(n)
	case "rate":
		c.Rate = policy.RateLimit(value)
		if err := c.Validate(); err != nil {
			return fmt.Errorf("constraint %w", err)
		}
	case "audit":
		if value != string(policy.AuditRequired) {
			return fmt.Errorf("constraint audit: only %q is valid", policy.AuditRequired)
		}
		c.Audit = policy.AuditRequired
	case "args":
		// The kvc.cnst.args object as JSON; --arg is the line form.
		var a policy.Args
		if err := a.UnmarshalJSON([]byte(value)); err != nil {
			return fmt.Errorf("constraint %w", err)
		}
		c.Args = a.Inherit(c.Args)
	default:
		return fmt.Errorf("unknown constraint %q (hosts, cidrs, methods, paths, max_body, audit, args, rate)", name)
	}
	return nil
}

// addArgLines applies --arg "<tool> <name> <facet> <value…>" flags (the
// Caddyfile's `arg` line with the tool in front) to c.Args, then checks
// the rules they made are complete.
func addArgLines(c *policy.Constraints, lines []string) error {
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 3 {
			return fmt.Errorf("--arg %q: want \"<tool> <argument> <facet> <value…>\" (facets: %s)", l, policy.ArgFacets)
		}
		if c.Args == nil {
			c.Args = policy.Args{}
		}
		ta := c.Args[f[0]]
		if ta == nil {
			ta = policy.ToolArgs{}
			c.Args[f[0]] = ta
		}
		if err := policy.AddArgLine(ta, f[0], f[1:]); err != nil {
			return fmt.Errorf("--arg %q: %w", l, err)
		}
	}
	return c.Validate()
}

func jsonStrings(l []string) []byte {
	b, _ := json.Marshal(l)
	return b
}

func tokenInspectCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect <token|->",
		Short: "Decodes a token without verifying it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw := args[0]
			if raw == "-" {
				data, err := io.ReadAll(io.LimitReader(bufio.NewReader(cmd.InOrStdin()), token.MaxTokenSize+1))
				if err != nil {
					return err
				}
				raw = string(data)
			}
			in, err := token.Inspect(raw)
			if err != nil {
				return err
			}
			out, err := json.MarshalIndent(in, "", "  ")
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", out)
			fmt.Fprintln(cmd.ErrOrStderr(), "NOT VERIFIED: this shows what the token claims, not whether its signature, issuer or lifetime hold.")
			return nil
		},
	}
}
