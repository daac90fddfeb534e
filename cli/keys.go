package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/spf13/cobra"

	"github.com/kavachgate/kavach/admin"
	"github.com/kavachgate/kavach/token"
)

func keysCommand(env *Env) Command {
	return Command{
		Name:  "keys",
		Usage: "generate|jwks|rotate",
		Short: "Manages token signing keys",
		Long: `
Manages the keys that sign Kavach access tokens.

  keys generate --out key.jwk [--alg EdDSA|ES256]
      Writes a new private signing key (JWK, mode 0600). Refuses to
      overwrite an existing file.

  keys jwks --in key.jwk [--in other.jwk]
      Prints the public JWK set of the given keys, for a gateway's
      trusted_keys file.

  keys rotate [--admin 127.0.0.1:2021] [--issuer <issuer>]
      Rotates the running issuer's signing key: the new key is published
      at once and signs one JWKS refresh interval later; old keys stay
      published until their tokens have expired.
`,
		Setup: func(cmd *cobra.Command) {
			cmd.AddCommand(keysGenerateCommand(), keysJWKSCommand(), keysRotateCommand(env))
		},
	}
}

func keysGenerateCommand() *cobra.Command {
	var out, alg string
	c := &cobra.Command{
		Use:   "generate --out <file> [--alg EdDSA|ES256]",
		Short: "Writes a new private signing key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out is required")
			}
			k, err := token.GenerateSigningKey(jwa.SignatureAlgorithm(alg))
			if err != nil {
				return err
			}
			data, err := json.MarshalIndent(k, "", "  ")
			if err != nil {
				return err
			}
			if err := writeNewFile(out, append(data, '\n'), 0o600); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (kid %s, %s)\n", out, k.KID, k.Alg)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "file to write the private key to (created with mode 0600)")
	c.Flags().StringVar(&alg, "alg", string(jwa.EdDSA), "signing algorithm: EdDSA or ES256")
	return c
}

func keysJWKSCommand() *cobra.Command {
	var in []string
	c := &cobra.Command{
		Use:   "jwks --in <file> [--in <file>]",
		Short: "Prints the public JWK set of signing keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(in) == 0 {
				return errors.New("--in is required")
			}
			var keys []*token.SigningKey
			for _, f := range in {
				k, err := readSigningKey(f)
				if err != nil {
					return err
				}
				keys = append(keys, k)
			}
			set, err := token.PublicSet(keys...)
			if err != nil {
				return err
			}
			data, err := json.MarshalIndent(set, "", "  ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", data)
			return err
		},
	}
	c.Flags().StringArrayVar(&in, "in", nil, "private key file written by 'keys generate' (repeatable)")
	return c
}

func readSigningKey(path string) (*token.SigningKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := token.ParseSigningKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// writeNewFile creates path with perm, failing if it exists, so a key is
// never silently replaced.
func writeNewFile(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

func keysRotateCommand(env *Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "rotate [--admin 127.0.0.1:2021] [--issuer <issuer>]",
		Short: "Rotates the issuer's signing key",
		Args:  cobra.NoArgs,
	}
	f := addAdminFlags(env, c.Flags(), true)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return call(cmd, f, func(ctx context.Context, c *admin.Client) (*admin.KeyRotated, error) { return c.RotateKeys(ctx) })
	}
	return c
}
