// Command mint pre-mints many distinct access tokens for `make bench`
// (configuration C: a fresh token on every request). One process signing
// on every core is far faster than one `kavach token mint` process per
// token.
//
//	mint -key key.jwk -iss ISS -aud URL -scope S -n 50000 -files 4 -out dir/tok
//
// writes dir/tok.000 … dir/tok.003, each with 50000 tokens, one per line,
// every token distinct (its own jti and grant ids). With -out - it writes
// -n tokens to stdout.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/kavachgate/kavach/token"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mint:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		keyFile = flag.String("key", "", "private signing key file (from 'kavach keys generate')")
		iss     = flag.String("iss", "", "issuer (iss)")
		aud     = flag.String("aud", "", "audience: the protected resource URL")
		scope   = flag.String("scope", "", "space-separated scopes")
		sub     = flag.String("sub", "usr_bench", "user (sub)")
		agents  = flag.String("agents", "agt_bench_root,agt_bench", "comma-separated agents, root first")
		ttl     = flag.Duration("ttl", 30*time.Minute, "lifetime (at most the gateway's max_token_lifetime)")
		n       = flag.Int("n", 1, "tokens per file")
		files   = flag.Int("files", 1, "number of files")
		out     = flag.String("out", "-", "output file prefix (PREFIX.000, …), or - for stdout")
	)
	flag.Parse()
	switch {
	case *keyFile == "" || *iss == "" || *aud == "":
		return errors.New("-key, -iss and -aud are required")
	case *n <= 0 || *files <= 0:
		return errors.New("-n and -files must be positive")
	}
	data, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	key, err := token.ParseSigningKey(data)
	if err != nil {
		return err
	}
	m := &minter{key: key, iss: *iss, aud: *aud, scope: *scope, sub: *sub, agents: strings.Split(*agents, ","), ttl: *ttl}
	if *out == "-" {
		w := bufio.NewWriter(os.Stdout)
		if err := m.write(w, *n); err != nil {
			return err
		}
		return w.Flush()
	}
	for i := 0; i < *files; i++ {
		if err := m.writeFile(fmt.Sprintf("%s.%03d", *out, i), *n); err != nil {
			return err
		}
	}
	return nil
}

type minter struct {
	key                  *token.SigningKey
	iss, aud, scope, sub string
	agents               []string
	ttl                  time.Duration
}

func (m *minter) writeFile(name string, n int) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := m.write(w, n); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// write mints n tokens on every core and writes them one per line.
func (m *minter) write(w io.Writer, n int) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	toks := make([]string, n)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for wk := 0; wk < workers; wk++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := wk; i < n; i += workers {
				t, err := m.one()
				if err != nil {
					errs[wk] = err
					return
				}
				toks[i] = t
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, t := range toks {
		if _, err := io.WriteString(w, t+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// one mints a token shaped like `kavach token mint`'s: a new jti and a new
// grant id per agent, so no two tokens share a cache key.
func (m *minter) one() (string, error) {
	at := time.Now()
	chain := make([]string, len(m.agents))
	for i := range chain {
		chain[i] = token.NewID(token.PrefixGrant)
	}
	c := &token.Claims{
		Issuer:   m.iss,
		Subject:  m.sub,
		Actor:    token.ActorFor(m.agents),
		ClientID: m.agents[len(m.agents)-1],
		Audience: token.Audience{m.aud},
		Scope:    m.scope,
		ID:       token.NewID(token.PrefixToken),
		IssuedAt: at.Unix(),
		Expiry:   at.Add(m.ttl).Unix(),
		Kavach:   &token.Kavach{Version: token.KavachVersion, Chain: chain, Agents: m.agents},
	}
	return token.Mint(m.key, c)
}
