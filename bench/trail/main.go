// Command trail writes an audit trail for `make bench`'s measure of
// `kavach audit verify`: -n records shaped as the gateway writes them (per
// request a decision record of an MCP tools/call and its outcome record),
// through an audit.Writer into the file sink with the default checkpoints
// and fsync batching, its signing key beside it (<file>.key, <file>.pub),
// as a gateway's `audit file <file>` would leave it.
//
//	trail -n 200000 -out dir/audit.jsonl
//
// It prints the number of lines written (records, checkpoints included).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/token"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "trail:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 200_000, "records to write (decision and outcome records, half each)")
	out := flag.String("out", "", "the trail file to create (must not exist)")
	flag.Parse()
	switch {
	case *out == "":
		return errors.New("-out is required")
	case *n <= 0:
		return errors.New("-n must be positive")
	}
	if _, err := os.Stat(*out); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s exists (or cannot be checked): the trail must be new", *out)
	}
	key, err := audit.LoadOrCreateKey(*out)
	if err != nil {
		return err
	}
	sink, err := audit.OpenFile(*out, audit.FileOptions{})
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	w, err := audit.NewWriter(context.Background(), sink, key, audit.Options{
		Stream: audit.StreamID(host, time.Now()),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		sink.Close()
		return err
	}
	agents := []string{token.NewID(token.PrefixAgent), token.NewID(token.PrefixAgent)}
	chain := []string{token.NewID(token.PrefixGrant), token.NewID(token.PrefixGrant)}
	dec := &audit.Record{
		Kind: audit.KindDecision, Decision: audit.Allow, Sub: token.NewID(token.PrefixUser),
		Actor: agents[1], Agents: agents, Chain: chain, ClientID: agents[1],
		Method: "POST", Host: "127.0.0.1:8080", Path: "/mcp", MCPMethod: "tools/call", Tool: "read_diff",
	}
	outc := &audit.Record{Kind: audit.KindOutcome, Actor: agents[1], Agents: agents, Status: 200}
	for i := 0; i < *n; i++ {
		rec := dec
		if i%2 == 0 {
			// A new request: its own id and token, as the gateway sees them.
			dec.RequestID = fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", i, i%0x10000, i%0x1000, i%0x1000, i)
			dec.JTI = token.NewID(token.PrefixToken)
		} else {
			rec = outc
			outc.RequestID = dec.RequestID
			outc.Bytes = int64(3000 + i%500)
			outc.Duration = time.Duration(800+i%700) * time.Microsecond
		}
		for err := w.Write(rec); err != nil; err = w.Write(rec) {
			if !errors.Is(err, audit.ErrQueueFull) {
				w.Close()
				return err
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	fmt.Println(w.Stats().LastSeq)
	return nil
}
