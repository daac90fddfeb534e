package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kavachgate/kavach/admin"
	"github.com/kavachgate/kavach/revocation"
	"github.com/kavachgate/kavach/token"
)

// publishTimeout bounds revoke --redis.
const publishTimeout = 10 * time.Second

func revokeCommand(env *Env) Command {
	return Command{
		Name:  "revoke",
		Usage: "<id> [--until T] | --before T --sub ID|--client ID|--kid KID",
		Short: "Revokes a token, grant or agent id, or every token issued before a time",
		Long: `
Revokes through a running gateway's Kavach admin listener (the global
option 'admin 127.0.0.1:2021'), authenticating with KAVACH_ADMIN_TOKEN or
the token generated into Caddy's data directory; or, with --redis URL,
straight into the Redis a cluster of gateways shares.

  revoke <id> [--until 2026-12-01T00:00:00Z]
      Revokes a token (tok_…), grant (dlg_…) or agent (agt_…) id: every
      token carrying it is rejected. --until defaults to now + the maximum
      token lifetime + 2 × leeway, after which no such token can be valid.

  revoke --before <time|now> --sub usr_… | --client <id> | --kid <kid>
      Revokes every token of a user, client or signing key issued before
      the time.
`,
		Setup: func(cmd *cobra.Command) {
			var f revokeFlags
			a := addAdminFlags(env, cmd.Flags(), false)
			cmd.Flags().StringVar(&f.until, "until", "", "RFC 3339 time after which the entry may be forgotten")
			cmd.Flags().StringVar(&f.before, "before", "", "cutoff: revoke tokens issued before this RFC 3339 time (or \"now\")")
			cmd.Flags().StringVar(&f.sub, "sub", "", "cutoff for this user")
			cmd.Flags().StringVar(&f.client, "client", "", "cutoff for this client")
			cmd.Flags().StringVar(&f.kid, "kid", "", "cutoff for this signing key")
			cmd.Flags().StringVar(&f.redis, "redis", "", "write straight to this Redis (a cluster without an issuer) instead of the admin listener")
			cmd.Flags().DurationVar(&f.maxLifetime, "max-token-lifetime", token.DefaultMaxLifetime, "with --redis: the gateways' max_token_lifetime, for the default --until")
			cmd.Args = cobra.MaximumNArgs(1)
			cmd.RunE = func(cmd *cobra.Command, args []string) error {
				e, err := f.entry(args, time.Now())
				if err != nil {
					return err
				}
				if f.redis != "" {
					stored, err := publishRevocation(cmd.Context(), f.redis, e, f.maxLifetime)
					if err != nil {
						return err
					}
					// One line, as it always was.
					return json.NewEncoder(cmd.OutOrStdout()).Encode(admin.RevocationStored{Revoked: stored})
				}
				// Until is left out when unset so the listener applies its
				// own default (it knows the gateway's max token lifetime).
				return call(cmd, a, func(ctx context.Context, c *admin.Client) (*admin.RevocationStored, error) {
					stored, err := c.Revoke(ctx, admin.Revocation{ID: e.ID, Cutoff: e.Cutoff, Before: e.Before, Until: e.Until})
					if err != nil {
						return nil, err
					}
					return &admin.RevocationStored{Revoked: *stored}, nil
				})
			}
		},
	}
}

type revokeFlags struct {
	until, before, sub, client, kid, redis string
	maxLifetime                            time.Duration
}

// entry builds the revocation from the arguments; the server fills in a
// default until.
func (f *revokeFlags) entry(args []string, at time.Time) (revocation.Entry, error) {
	var e revocation.Entry
	if f.until != "" {
		t, err := time.Parse(time.RFC3339, f.until)
		if err != nil {
			return e, fmt.Errorf("--until: %w", err)
		}
		e.Until = t
	}
	cut := 0
	for kind, v := range map[revocation.Kind]string{revocation.CutoffSubject: f.sub, revocation.CutoffClient: f.client, revocation.CutoffKey: f.kid} {
		if v != "" {
			cut++
			e.Cutoff, e.ID = kind, v
		}
	}
	switch {
	case cut > 1:
		return e, errors.New("give one of --sub, --client, --kid")
	case cut == 1 && len(args) > 0:
		return e, errors.New("a cutoff takes no id argument")
	case cut == 1:
		if f.before == "" {
			return e, errors.New("--before is required with --sub, --client or --kid")
		}
		if f.before == "now" {
			e.Before = at.Truncate(time.Second).Add(time.Second)
		} else {
			t, err := time.Parse(time.RFC3339, f.before)
			if err != nil {
				return e, fmt.Errorf("--before: %w", err)
			}
			e.Before = t
		}
	case f.before != "":
		return e, errors.New("--before needs --sub, --client or --kid")
	case len(args) == 0:
		return e, errors.New("give the id to revoke, or --before with --sub, --client or --kid")
	default:
		e.ID = args[0]
	}
	return e, nil
}

// publishRevocation writes the entry to Redis, where every gateway of the
// cluster hears it. With an issuer, revoke through the issuer instead so its
// store keeps the revocation (DESIGN.md §5).
func publishRevocation(ctx context.Context, url string, e revocation.Entry, maxLifetime time.Duration) (revocation.Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	return revocation.PublishRevocation(ctx, url, e, maxLifetime, token.Leeway)
}
